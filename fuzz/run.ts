/**
 * `npm run fuzz`: runs every fuzz target (or those in FUZZ_TARGETS=a,b) for FUZZ_SECONDS
 * each (default 60), one worker thread per target, and fails on any exception other than
 * the parser's own typed error, any input over 1 s of CPU (or 5 s waiting; a worker stuck for
 * HANG_MS is killed), and heap growth beyond FUZZ_MAX_HEAP_GROWTH_MB (default 64) after GC.
 * Failing inputs are saved as hex under FUZZ_FINDINGS (default fuzz/findings) with the command
 * that replays them:
 *
 *   npm run fuzz -- --replay fuzz/findings/tls-records-0123456789ab.hex
 *   npm run fuzz -- --list
 */
import { createHash } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { buildCorpus, type Corpus } from "./corpus.ts";
import { BATCH_DIR_ENV, batchFileOf, supervise, triage } from "./crash.ts";
import {
  allocateShared,
  currentInput,
  type Failure,
  type SharedState,
  SLOW_INPUT_MS,
  Slot,
} from "./engine.ts";
import { TARGETS, targetByName } from "./targets/index.ts";
import type { WorkerInput, WorkerMessage } from "./worker.ts";

/**
 * A worker running one input this long is hung: it is killed and the input saved. Far above
 * the 1 s limit so that a loaded machine does not pass it; inputs that finish are measured
 * (in CPU time) inside the worker.
 */
const HANG_MS = 10_000;
/** Time a worker may spend preparing its target (seed keys, a KMS store) before fuzzing. */
const PREPARE_MS = 180_000;

interface Settings {
  seconds: number;
  seed: number;
  maxHeapGrowthMb: number;
  findings: string;
  targets: string[];
}

interface TargetResult {
  name: string;
  inputs: number;
  rejected: number;
  seconds: number;
  heapGrowthMb: number;
  failures: Failure[];
}

function positiveNumber(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!(n > 0)) throw new Error(`${name} must be a positive number, got '${text}'`);
  return n;
}

function settings(): Settings {
  const wanted = (process.env.FUZZ_TARGETS ?? "").split(",").filter((t) => t !== "");
  for (const t of wanted) targetByName(t);
  return {
    seconds: positiveNumber("FUZZ_SECONDS", 60),
    seed: Math.floor(positiveNumber("FUZZ_SEED", 1 + Math.floor(Math.random() * 0x7fffffff))),
    maxHeapGrowthMb: positiveNumber("FUZZ_MAX_HEAP_GROWTH_MB", 64),
    findings: process.env.FUZZ_FINDINGS ?? path.join(import.meta.dirname, "findings"),
    targets: wanted.length > 0 ? wanted : TARGETS.map((t) => t.name),
  };
}

/**
 * Polls a worker's progress every 200 ms; calls `stop` once one input has run past HANG_MS,
 * or preparation past PREPARE_MS.
 */
function watchdog(
  shared: SharedState,
  isReady: () => boolean,
  stop: (message: string) => void,
): NodeJS.Timeout {
  let lastCount = -1;
  let lastChange = performance.now();
  const prepareDeadline = performance.now() + PREPARE_MS;
  return setInterval(() => {
    const count = Atomics.load(shared.control, Slot.completed);
    const now = performance.now();
    if (count !== lastCount || Atomics.load(shared.control, Slot.running) === 0) {
      lastCount = count;
      lastChange = now;
    }
    if (isReady() && now - lastChange > HANG_MS) {
      stop(`hang: one input ran for over ${HANG_MS} ms (limit ${SLOW_INPUT_MS} ms)`);
    } else if (!isReady() && now > prepareDeadline) {
      stop(`target preparation took over ${PREPARE_MS} ms`);
    }
  }, 200);
}

/** Runs one target in a worker, watching for hangs and deaths. */
function runInWorker(name: string, corpus: Corpus, s: Settings): Promise<TargetResult> {
  const shared = allocateShared();
  const batchDir = process.env[BATCH_DIR_ENV];
  const batchFile = batchDir ? batchFileOf(batchDir, name) : undefined;
  // Present from the start: a process that ends while preparing the target is told apart.
  if (batchFile) writeFileSync(batchFile, Buffer.alloc(0));
  const job: WorkerInput = {
    target: name,
    seconds: s.seconds,
    seed: s.seed,
    maxHeapGrowthMb: s.maxHeapGrowthMb,
    corpus,
    shared,
    ...(batchFile ? { batchFile } : {}),
  };
  const worker = new Worker(new URL("./worker_boot.mjs", import.meta.url), {
    workerData: job,
    resourceLimits: { maxOldGenerationSizeMb: 1024 },
    stdout: false,
  });
  const result: TargetResult = { name, inputs: 0, rejected: 0, seconds: 0, heapGrowthMb: 0, failures: [] };
  let ready = false;
  let stopped = false;
  let fuzzingSince = 0;
  const lost = (message: string): void => {
    if (stopped) return;
    result.failures.push({ key: message, message, stack: message, input: currentInput(shared) });
  };
  const stop = (message: string): void => {
    lost(message);
    stopped = true;
    // The inputs completed before the kill still count.
    result.inputs = Atomics.load(shared.control, Slot.completed);
    result.seconds = ready ? (performance.now() - fuzzingSince) / 1000 : 0;
    void worker.terminate();
  };
  const timer = watchdog(shared, () => ready, stop);
  worker.on("message", (m: WorkerMessage) => {
    if (m.kind === "ready") {
      ready = true;
      fuzzingSince = performance.now();
    } else if (m.kind === "failure") result.failures.push(m);
    else {
      const { inputs, rejected, seconds, heapGrowthMb } = m;
      Object.assign(result, { inputs, rejected, seconds, heapGrowthMb });
    }
  });
  worker.on("error", (err) => lost(`worker died: ${err.name}: ${err.message.split("\n")[0]}`));
  return new Promise((resolve) => {
    worker.on("exit", () => {
      clearInterval(timer);
      if (batchFile) rmSync(batchFile, { force: true });
      if (result.inputs === 0 && result.failures.length === 0) lost("worker exited before finishing");
      resolve(result);
    });
  });
}

async function saveFailures(r: TargetResult, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const f of r.failures) {
    const input = Buffer.from(f.input);
    const file = path.join(
      dir,
      `${r.name}-${createHash("sha256").update(input).digest("hex").slice(0, 12)}.hex`,
    );
    await writeFile(file, `${input.toString("hex")}\n`);
    console.log(`  FAIL ${f.message}`);
    console.log(`    ${f.stack.split("\n").slice(1, 4).join("\n    ").trim()}`);
    console.log(
      `    input: ${input.length} bytes -> replay: npm run fuzz -- --replay ${path.relative(process.cwd(), file)}`,
    );
  }
}

async function fuzzAll(s: Settings): Promise<number> {
  console.log(`fuzz: ${s.targets.length} targets x ${s.seconds} s, seed ${s.seed} (FUZZ_SEED to repeat)`);
  const corpus = await buildCorpus();
  let failed = 0;
  for (const name of s.targets) {
    const r = await runInWorker(name, corpus, s);
    const rate = r.seconds > 0 ? Math.round(r.inputs / r.seconds) : 0;
    console.log(
      `${name.padEnd(28)} ${String(r.inputs).padStart(9)} inputs ${String(rate).padStart(7)}/s ` +
        `${String(r.rejected).padStart(9)} typed refusals ${r.heapGrowthMb.toFixed(1).padStart(6)} MiB heap growth  ` +
        `${r.failures.length} distinct failures`,
    );
    await saveFailures(r, s.findings);
    if (r.failures.length > 0) failed++;
  }
  console.log(failed === 0 ? "fuzz: no failures" : `fuzz: ${failed} target(s) failed`);
  return failed === 0 ? 0 : 1;
}

/** Runs one saved input in this process and prints what it did, with the full stack. */
async function replay(file: string, targetName: string | undefined): Promise<number> {
  const name = targetName ?? path.basename(file).replace(/-[0-9a-f]{12}\.hex$/, "");
  const target = targetByName(name);
  const input = Buffer.from((await readFile(file, "utf8")).replace(/\s+/g, ""), "hex");
  const prepared = await target.prepare(await buildCorpus());
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  let code = 0;
  try {
    await prepared.run(input);
    console.log(`${name}: input accepted`);
  } catch (err) {
    const typed = prepared.expected(err);
    console.log(`${name}: ${typed ? "typed refusal" : "UNTYPED EXCEPTION"}`);
    console.log(typed ? String(err) : err instanceof Error ? (err.stack ?? String(err)) : String(err));
    if (!typed) code = 1;
  } finally {
    await prepared.close?.();
  }
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(
    `${input.length} bytes in ${(performance.now() - began).toFixed(1)} ms (${cpuMs.toFixed(1)} ms of CPU)`,
  );
  return cpuMs > SLOW_INPUT_MS ? 1 : code;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes("--list")) {
    for (const t of TARGETS) console.log(`${t.name.padEnd(28)} ${t.about}`);
    return 0;
  }
  const at = argv.indexOf("--replay");
  if (at >= 0) {
    const file = argv[at + 1];
    if (!file) throw new Error("--replay needs a file");
    const t = argv.indexOf("--target");
    return replay(file, t >= 0 ? argv[t + 1] : undefined);
  }
  const triageAt = argv.indexOf("--triage");
  if (triageAt >= 0) {
    const batchFile = argv[triageAt + 1] ?? "";
    const prepared = await targetByName(argv[argv.indexOf("--target") + 1] ?? "").prepare(
      await buildCorpus(),
    );
    try {
      return await triage(batchFile, prepared);
    } finally {
      await prepared.close?.();
    }
  }
  const s = settings();
  if (process.env[BATCH_DIR_ENV]) return fuzzAll(s);
  // The supervisor: fuzzing runs in child processes so that an input ending one is found.
  const code = await supervise(s.targets, s.findings, s.seed);
  if (code !== 0) console.log("fuzz: failures found (see above)");
  return code;
}

// Interrupted runs still remove the corpus's temp files (they are removed on 'exit').
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
process.exitCode = await main(process.argv.slice(2));
