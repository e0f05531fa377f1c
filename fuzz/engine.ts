/**
 * The fuzzing loop that runs inside a worker thread: draws inputs from fast-check (mutated
 * seeds, the target's structure-aware generator, random bytes), runs each one, and reports
 * every distinct untyped exception, every input over the time bound, and heap growth.
 * The input being run is mirrored into shared memory so the parent can save it when the
 * worker hangs or dies.
 */
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";
import fc from "fast-check";
import { encodeBatch } from "./batch.ts";
import { mutatedSeeds, randomBytesArb } from "./mutate.ts";
import type { PreparedTarget } from "./target.ts";

/** Slots of the shared control array. */
export const Slot = { completed: 0, running: 1, length: 2 } as const;

/** Largest input mirrored to the parent (inputs are capped below this by the generators). */
export const SHARED_INPUT_BYTES = 1024 * 1024;

/** An input taking more CPU time than this is a failure (a hang or a quadratic blow-up). */
export const SLOW_INPUT_MS = 1000;

/** Memory shared with the parent: counters and the input being run. */
export interface SharedState {
  control: Int32Array;
  input: Uint8Array;
}

/** Allocates the shared memory for one worker. */
export function allocateShared(): SharedState {
  return {
    control: new Int32Array(new SharedArrayBuffer(4 * 4)),
    input: new Uint8Array(new SharedArrayBuffer(SHARED_INPUT_BYTES)),
  };
}

/** The input a hung or dead worker was running. */
export function currentInput(shared: SharedState): Buffer {
  const length = Math.min(Atomics.load(shared.control, Slot.length), SHARED_INPUT_BYTES);
  return Buffer.from(shared.input.subarray(0, length));
}

/** A failing input as the loop reports it. */
export interface Failure {
  /** Groups failures with one cause: error name, message shape and the throwing frame. */
  key: string;
  /** What happened, one line. */
  message: string;
  stack: string;
  input: Uint8Array;
}

/** Totals of one run. */
export interface LoopStats {
  inputs: number;
  /** Inputs refused with the parser's typed error. */
  rejected: number;
  seconds: number;
  /** Heap growth (MiB, after GC) from the end of warm-up to the end of the run. */
  heapGrowthMb: number;
}

/** How the loop is driven. */
export interface LoopOptions {
  seconds: number;
  /** fast-check seed of the first batch (later batches count up from it). */
  seed: number;
  shared: SharedState;
  /** Heap growth over this is a failure. */
  maxHeapGrowthMb: number;
  /**
   * Where each batch's inputs are written before the batch runs, so that an input that ends the
   * whole process (a native abort) can be found afterwards (see fuzz/crash.ts).
   */
  batchFile?: string;
  onFailure(failure: Failure): void;
}

v8.setFlagsFromString("--expose-gc");
const collectGarbage = vm.runInNewContext("gc") as () => void;

function heapAfterGc(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed / (1024 * 1024);
}

/** The input source: mostly mutated seeds, then the structured generator, then noise. */
function inputArbitrary(target: PreparedTarget): fc.Arbitrary<Buffer> {
  const parts: { weight: number; arbitrary: fc.Arbitrary<Buffer> }[] = [
    { weight: 1, arbitrary: randomBytesArb },
  ];
  if (target.seeds.length > 0) parts.push({ weight: 5, arbitrary: mutatedSeeds(target.seeds) });
  if (target.generate) parts.push({ weight: 4, arbitrary: target.generate });
  return fc.oneof(...parts);
}

/** The frame that threw, for grouping: the first stack line inside src/, else the first one. */
function throwingFrame(stack: string): string {
  const frames = stack.split("\n").filter((l) => l.trimStart().startsWith("at "));
  const ours = frames.find((l) => l.includes("/src/")) ?? frames[0] ?? "";
  return ours.trim().replace(/:\d+\)?$/, "");
}

function describe(err: unknown): { key: string; message: string; stack: string } {
  const e = err instanceof Error ? err : new Error(`non-Error thrown: ${String(err)}`);
  const message = `${e.name}: ${e.message.split("\n")[0]}`;
  const stack = e.stack ?? message;
  return { key: `${message.replace(/\d+/g, "N").slice(0, 160)} ${throwingFrame(stack)}`, message, stack };
}

async function runOne(target: PreparedTarget, input: Buffer, shared: SharedState): Promise<unknown> {
  const length = Math.min(input.length, SHARED_INPUT_BYTES);
  shared.input.set(input.subarray(0, length));
  Atomics.store(shared.control, Slot.length, length);
  Atomics.store(shared.control, Slot.running, 1);
  try {
    const result = target.run(input);
    if (result instanceof Promise) await result;
    return undefined;
  } catch (err) {
    return err ?? new Error("undefined thrown");
  } finally {
    Atomics.store(shared.control, Slot.running, 0);
    Atomics.add(shared.control, Slot.completed, 1);
  }
}

/** An input still running after this much wall time (waiting, not computing) is too slow as well. */
const SLOW_WAIT_MS = 5000;

/**
 * Runs one input and measures it. CPU time (all threads of this process, the main thread
 * being idle) is what the 1 s limit applies to: on a loaded machine wall time grows for cheap
 * inputs too, CPU time does not. Wall time still catches inputs that wait instead of computing.
 */
async function measured(target: PreparedTarget, input: Buffer, shared: SharedState) {
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  const err = await runOne(target, input, shared);
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const wallMs = performance.now() - began;
  const slow = cpuMs > SLOW_INPUT_MS || wallMs > SLOW_WAIT_MS;
  return { err, slow, cpuMs, wallMs };
}

/** Runs `target` until the time is up. */
export async function fuzzLoop(target: PreparedTarget, o: LoopOptions): Promise<LoopStats> {
  const arbitrary = inputArbitrary(target);
  const start = performance.now();
  const end = start + o.seconds * 1000;
  const warmUpEnd = start + Math.min(2000, (o.seconds * 1000) / 10);
  let baseline: number | undefined;
  let inputs = 0;
  let rejected = 0;
  for (let batch = 0; performance.now() < end; batch++) {
    const batchInputs = fc.sample(arbitrary, { numRuns: 256, seed: o.seed + batch });
    if (o.batchFile) writeFileSync(o.batchFile, encodeBatch(batchInputs));
    for (const input of batchInputs) {
      const { err, slow, cpuMs, wallMs } = await measured(target, input, o.shared);
      inputs++;
      if (err !== undefined && target.expected(err)) rejected++;
      else if (err !== undefined) o.onFailure({ ...describe(err), input });
      if (slow) {
        const message =
          `input of ${input.length} bytes took ${Math.round(cpuMs)} ms of CPU, ${Math.round(wallMs)} ms in all ` +
          `(limits ${SLOW_INPUT_MS} ms CPU, ${SLOW_WAIT_MS} ms in all)`;
        o.onFailure({ key: "slow input", message, stack: message, input });
      }
      if (baseline === undefined && performance.now() >= warmUpEnd) baseline = heapAfterGc();
      if (performance.now() >= end) break;
    }
  }
  const growth = baseline === undefined ? 0 : heapAfterGc() - baseline;
  if (baseline !== undefined && growth > o.maxHeapGrowthMb) {
    const message = `heap grew by ${growth.toFixed(1)} MiB after GC (limit ${o.maxHeapGrowthMb} MiB)`;
    o.onFailure({ key: "memory growth", message, stack: message, input: new Uint8Array() });
  }
  return { inputs, rejected, seconds: (performance.now() - start) / 1000, heapGrowthMb: growth };
}
