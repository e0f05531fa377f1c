/**
 * Shared pieces for the benchmarks in bench/: CPU and wall-clock measurement of sequential
 * operations and of single transfers, peers run in child processes (so their CPU is not
 * counted against the process under test), and plain-text tables with ratios and targets.
 *
 * Nothing here knows about TLS; each bench/*.ts brings its own peers and cases.
 */
import { type ChildProcess, execFileSync, fork, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

/** CPU time (user + system) this process has used so far, in milliseconds. Includes libuv worker threads. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Result of running one operation many times in a row. */
export interface SequentialResult {
  /** Operations measured (warm-up excluded). */
  count: number;
  /** Process CPU per operation, ms. */
  cpuMsPerOp: number;
  /** Wall-clock per operation, ms. */
  wallMsPerOp: number;
  /** Operations per wall-clock second. */
  opsPerSec: number;
  /** Totals behind the per-operation figures (to merge rounds). */
  cpuMs: number;
  wallMs: number;
}

/** How many times to run an operation. */
export interface SequentialPlan {
  /** Unmeasured runs first, so the JIT, caches and pools settle. */
  warmup: number;
  /** Measured runs wanted. */
  iterations: number;
  /** Stop measuring early once this much wall-clock time has passed (slow peers). */
  budgetMs: number;
  /** Never measure fewer than this many runs, budget or not (default 5). */
  minIterations?: number;
}

/**
 * Runs `op` sequentially (each awaited before the next): `warmup` times unmeasured, then up to
 * `iterations` times (fewer if `budgetMs` runs out) with process CPU and wall clock around the loop.
 */
export async function measureSequential(
  plan: SequentialPlan,
  op: () => Promise<void>,
): Promise<SequentialResult> {
  for (let i = 0; i < plan.warmup; i++) await op();
  const min = Math.min(plan.minIterations ?? 5, plan.iterations);
  const cpu0 = cpuMs();
  const wall0 = performance.now();
  let count = 0;
  while (count < plan.iterations) {
    await op();
    count++;
    if (count >= min && performance.now() - wall0 > plan.budgetMs) break;
  }
  return sequentialResult(count, cpuMs() - cpu0, performance.now() - wall0);
}

function sequentialResult(count: number, cpu: number, wall: number): SequentialResult {
  return {
    count,
    cpuMsPerOp: cpu / count,
    wallMsPerOp: wall / count,
    opsPerSec: (count * 1000) / wall,
    cpuMs: cpu,
    wallMs: wall,
  };
}

/** One of the operations {@link measureInterleaved} compares. */
export interface InterleavedCase {
  name: string;
  op: () => Promise<void>;
  /** Overrides the plan's warm-up for this case (a slow peer needs fewer). */
  warmup?: number;
}

/**
 * Measures several operations fairly on a busy machine: `rounds` rounds, each running every
 * case for its share of `iterations` (and of `budgetMs`), so load that comes and goes hits all
 * cases alike. Warm-up happens in the first round only. Results are keyed by case name.
 */
export async function measureInterleaved(
  cases: readonly InterleavedCase[],
  plan: SequentialPlan & { rounds: number },
): Promise<Map<string, SequentialResult>> {
  const totals = new Map<string, { count: number; cpu: number; wall: number }>();
  const perRound = Math.max(1, Math.ceil(plan.iterations / plan.rounds));
  for (let round = 0; round < plan.rounds; round++) {
    for (const c of cases) {
      const r = await measureSequential(
        {
          warmup: round === 0 ? (c.warmup ?? plan.warmup) : 0,
          iterations: perRound,
          budgetMs: plan.budgetMs / plan.rounds,
          minIterations: Math.ceil((plan.minIterations ?? 5) / plan.rounds),
        },
        c.op,
      );
      const t = totals.get(c.name) ?? { count: 0, cpu: 0, wall: 0 };
      totals.set(c.name, { count: t.count + r.count, cpu: t.cpu + r.cpuMs, wall: t.wall + r.wallMs });
    }
  }
  return new Map([...totals].map(([name, t]) => [name, sequentialResult(t.count, t.cpu, t.wall)]));
}

/** Process CPU and wall clock of one awaited operation. */
export interface SingleResult {
  cpuMs: number;
  wallMs: number;
}

/** Measures one awaited operation (a bulk transfer, say). */
export async function measureOnce(op: () => Promise<void>): Promise<SingleResult> {
  const cpu0 = cpuMs();
  const wall0 = performance.now();
  await op();
  return { cpuMs: cpuMs() - cpu0, wallMs: performance.now() - wall0 };
}

/** Decimal megabytes per second (10^6 bytes), as throughput is usually quoted. */
export function megabytesPerSecond(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

// ---- tables ------------------------------------------------------------------------------

/** A column: its heading and whether numbers in it line up on the right. */
export interface Column {
  title: string;
  align?: "left" | "right";
}

/** Formats rows as an aligned plain-text table (a header, a rule, the rows). */
export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (columns[i]?.align === "right" ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [
    line(columns.map((c) => c.title)),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.map(line),
  ].join("\n");
}

/** A number with a fixed count of significant-looking decimals: 1234 -> "1234", 1.234 -> "1.23". */
export function fmt(value: number, decimals = 2): string {
  if (!Number.isFinite(value)) return "n/a";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(decimals);
}

/** `value / reference` as "1.23x" ("n/a" without a usable reference). */
export function fmtRatio(value: number, reference: number): string {
  if (!(reference > 0) || !Number.isFinite(value)) return "n/a";
  return `${(value / reference).toFixed(2)}x`;
}

/** A target on a ratio to a reference: at most (costs) or at least (throughput) `limit`. */
export interface RatioTarget {
  kind: "at-most" | "at-least";
  limit: number;
}

/** Whether `ratio` meets the target. */
export function targetMet(ratio: number, target: RatioTarget): boolean {
  return target.kind === "at-most" ? ratio <= target.limit : ratio >= target.limit;
}

/** "<= 1.5x: met" / ">= 0.5x: NOT met", for a table cell. */
export function fmtTarget(ratio: number, target: RatioTarget): string {
  const sign = target.kind === "at-most" ? "<=" : ">=";
  return `${sign} ${target.limit}x: ${targetMet(ratio, target) ? "met" : "NOT met"}`;
}

/** One line of a target summary: a measured ratio (undefined when not measured) and its target. */
export interface TargetLine {
  /** What is compared, e.g. "TLS 1.3 bulk, hsmkit serve vs node". */
  figure: string;
  /** The two measured values behind the ratio, e.g. "512 vs 498 MB/s". */
  detail: string;
  ratio: number | undefined;
  target: RatioTarget;
}

/**
 * The targets of an issue as one table, a line per target with met / NOT met (a figure that
 * could not be measured is not met), and whether all were met.
 */
export function formatTargetSummary(
  title: string,
  lines: readonly TargetLine[],
): { text: string; allMet: boolean } {
  const measured = (l: TargetLine): l is TargetLine & { ratio: number } =>
    l.ratio !== undefined && Number.isFinite(l.ratio);
  const allMet = lines.every((l) => measured(l) && targetMet(l.ratio, l.target));
  const rows = lines.map((l) => [
    l.figure,
    l.detail,
    measured(l) ? `${l.ratio.toFixed(2)}x` : "n/a",
    measured(l) ? fmtTarget(l.ratio, l.target) : "not measured",
  ]);
  const columns: Column[] = [
    { title: "target" },
    { title: "measured" },
    { title: "ratio", align: "right" },
    { title: "verdict" },
  ];
  const met = lines.filter((l) => measured(l) && targetMet(l.ratio, l.target)).length;
  return {
    text: `\n${title}: met ${met} of ${lines.length}\n${formatTable(columns, rows)}`,
    allMet,
  };
}

// ---- peers in child processes ------------------------------------------------------------

/** A message a peer sends back: the answer to request `id`, or its failure. */
interface PeerReply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** A peer process started by {@link startPeer}. */
export interface Peer<Ready> {
  /** What the peer reported when it was ready (its ports, say). */
  ready: Ready;
  /** Its process id. */
  pid: number;
  /** Sends a request the peer's handler answers (see {@link servePeerRequests}). */
  request<T>(body: unknown, timeoutMs?: number): Promise<T>;
  /** Stops the peer (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. */
  stop(): Promise<void>;
}

const livePeers = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of livePeers) child.kill("SIGKILL");
});

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Starts `modulePath` (a TypeScript file, run through tsx) as a child process with an IPC
 * channel and `config` as JSON in argv[2]. The child must call {@link announceReady} once it can
 * be used; this resolves with what it announced, or rejects if it exits or stays silent for
 * `startTimeoutMs`. The child is killed when this process exits, whatever happens.
 */
export async function startPeer<Ready>(
  modulePath: string,
  config: unknown,
  startTimeoutMs = 30_000,
): Promise<Peer<Ready>> {
  const child = fork(modulePath, [JSON.stringify(config)], {
    execArgv: ["--no-warnings", "--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  livePeers.add(child);
  child.once("exit", () => livePeers.delete(child));
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`peer ${modulePath} did not start within ${startTimeoutMs} ms`));
    }, startTimeoutMs);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`peer ${modulePath} exited (code ${code}) before it was ready`));
    };
    child.once("exit", onExit);
    child.on("message", (msg: unknown) => {
      const m = msg as { ready?: Ready } & Partial<PeerReply>;
      if (m.ready !== undefined) {
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(m.ready);
        return;
      }
      const waiter = typeof m.id === "number" ? pending.get(m.id) : undefined;
      if (!waiter) return;
      pending.delete(m.id!);
      if (m.ok) waiter.resolve(m.value);
      else waiter.reject(new Error(m.error ?? "peer request failed"));
    });
  });
  child.once("exit", (code) => {
    for (const w of pending.values()) w.reject(new Error(`peer exited (code ${code})`));
    pending.clear();
  });
  return {
    ready,
    pid: child.pid!,
    request<T>(body: unknown, timeoutMs = 30_000): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`peer request timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ id, body });
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      if (!(await waitForExit(child, 5000))) {
        child.kill("SIGKILL");
        await waitForExit(child, 5000);
      }
    },
  };
}

/** In a peer: reads the JSON config its parent passed to {@link startPeer}. */
export function peerConfig<T>(): T {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error("this peer is started by bench/lib.ts startPeer()");
  return JSON.parse(raw) as T;
}

/** In a peer: tells the parent it is ready, with whatever it needs to know (ports...). */
export function announceReady(ready: unknown): void {
  process.send?.({ ready });
}

/**
 * In a peer: answers the parent's requests with `handler` (errors travel back as messages), and
 * exits when the parent goes away so no peer outlives its benchmark.
 */
export function servePeerRequests(handler: (body: unknown) => unknown | Promise<unknown>): void {
  process.on("message", (msg: unknown) => {
    const { id, body } = msg as { id: number; body: unknown };
    Promise.resolve()
      .then(() => handler(body))
      .then(
        (value) => process.send?.({ id, ok: true, value } satisfies PeerReply),
        (err: unknown) =>
          process.send?.({
            id,
            ok: false,
            error: err instanceof Error ? err.message : String(err),
          } satisfies PeerReply),
      );
  });
  process.on("disconnect", () => process.exit(0));
}

/**
 * The first two CPUs this process may run on (its affinity, from /proc), when `taskset` works;
 * undefined otherwise. Benchmarks put the two ends of a transfer on these, one each, so a
 * figure does not depend on where the scheduler put them.
 */
export function twoAllowedCpus(): [number, number] | undefined {
  if (spawnSync("taskset", ["--version"]).status !== 0) return undefined;
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "";
  const cpus = list.split(",").flatMap((range) => {
    const [from, to = from] = range.split("-").map(Number) as [number, number?];
    return Array.from({ length: Math.max(0, Math.min(2, to - from + 1)) }, (_, i) => from + i);
  });
  return cpus.length >= 2 ? [cpus[0]!, cpus[1]!] : undefined;
}

/** Binds every thread of process `pid` to `cpus` (a taskset list such as "0" or "0,1"); throws on failure. */
export function pinProcess(pid: number, cpus: string): void {
  execFileSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: "ignore" });
}
