/**
 * Shared pieces of the KMS benchmarks: a closed-loop load generator with latency percentiles,
 * CPU time of other processes from /proc, and `hsmkit kms serve` children.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

/** The compiled CLI the benchmarks start. */
export const HSMKIT = fileURLToPath(new URL("../bin/hsmkit", import.meta.url));

/** Throughput and latency of one case. */
export interface Stats {
  opsPerSec: number;
  p50: number;
  p99: number;
  /** Operations that failed (after any retry the operation does itself). */
  failed: number;
}

/**
 * Runs `op` from `concurrency` loops for `seconds` (after a short warm-up); latency percentiles
 * in ms. A failing op is counted, not retried (the op may retry itself).
 */
export async function load(concurrency: number, seconds: number, op: () => Promise<unknown>): Promise<Stats> {
  const warmEnd = performance.now() + 500;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmEnd) await op();
    }),
  );
  const latencies: number[] = [];
  let failed = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await op();
          latencies.push(performance.now() - t0);
        } catch {
          failed++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return { opsPerSec: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), failed };
}

/** CPU seconds a process has used (utime + stime from /proc); 0 once it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds used so far by process `root` and its live descendants (a database server and
 * its backends, which PostgreSQL puts in process groups of their own).
 */
export function treeCpuSeconds(root: number): number {
  const children = new Map<number, number[]>();
  const cpu = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      const parent = Number(fields[1]);
      children.set(parent, [...(children.get(parent) ?? []), Number(name)]);
      cpu.set(Number(name), (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // gone meanwhile
    }
  }
  let total = 0;
  const queue = [root];
  for (let pid = queue.pop(); pid !== undefined; pid = queue.pop()) {
    total += cpu.get(pid) ?? 0;
    queue.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** A `hsmkit kms serve` child. */
export interface KmsNode {
  readonly child: ChildProcess;
  readonly endpoint: string;
}

const nodes = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of nodes) child.kill("SIGKILL");
});

/** Starts `hsmkit kms serve` with `args` (the store) and `env`; resolves once it listens. */
export function startKmsNode(args: readonly string[], env: NodeJS.ProcessEnv): Promise<KmsNode> {
  const child = spawn(HSMKIT, ["kms", "serve", ...args, "--listen", "127.0.0.1:0", "--quiet"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  nodes.add(child);
  child.once("exit", () => nodes.delete(child));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m?.[1]) resolve({ child, endpoint: m[1] });
    });
    child.once("exit", (code) => reject(new Error(`kms serve exited (${code}): ${out}`)));
  });
}

/** Stops a node (SIGTERM) and waits for it to exit. */
export async function stopKmsNode(node: KmsNode): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  const exited = new Promise((resolve) => node.child.once("exit", resolve));
  node.child.kill("SIGTERM");
  await exited;
}
