/**
 * Child processes for tests: bounded one-shot commands (`runCommand`) and long-running peers
 * (`ManagedProcess`) that always die with the test process.
 *
 * A long-running peer is started in its own process group (so `stop()` reaches nginx's workers
 * too), under `setpriv --pdeathsig TERM` when available (so it gets SIGTERM if the test process
 * dies without running its exit handlers), and is registered for a synchronous kill on `exit`
 * and on SIGINT/SIGTERM/SIGHUP.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** What a finished command did. `output` is stdout and stderr interleaved in arrival order. */
export interface RunResult {
  /** Exit status, or null when killed by a signal. */
  exitCode: number | null;
  /** The signal that ended it, or null. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  output: string;
}

/** Options for `runCommand`. */
export interface RunOptions {
  /** Written to stdin, which is then closed. Without it stdin is closed at once. */
  input?: string | Buffer;
  /** Killed (whole process group) and rejected after this long. Default 30 s. */
  timeoutMs?: number;
  cwd?: string;
  /** Replaces the environment when given (merge with process.env yourself). */
  env?: NodeJS.ProcessEnv;
}

/** A command failed or timed out; the message carries the command line and its output. */
export class CommandError extends Error {
  /** What the command had done, when it ran at all. */
  readonly result: RunResult | undefined;

  constructor(message: string, result?: RunResult) {
    super(message);
    this.name = "CommandError";
    this.result = result;
  }
}

/** Captured output of a child, readable at any time, with a way to wait for more. */
export interface OutputCapture {
  /** Everything the child wrote so far on stdout and stderr. */
  text(): string;
  /** Called on every new chunk (and once when the child exits, with chunk ""). Returns an unsubscribe. */
  onData(listener: (chunk: string) => void): () => void;
  /** Whether the child has exited. */
  exited(): boolean;
}

const captures = new WeakMap<ChildProcess, OutputCapture>();

/**
 * Starts (once per child) recording its stdout and stderr. Call it right after spawning: data
 * written before the first call is lost.
 */
export function captureOutput(child: ChildProcess): OutputCapture {
  const existing = captures.get(child);
  if (existing) return existing;
  let buffered = "";
  let done = child.exitCode !== null || child.signalCode !== null;
  const listeners = new Set<(chunk: string) => void>();
  const push = (chunk: string): void => {
    buffered += chunk;
    for (const l of [...listeners]) l(chunk);
  };
  child.stdout?.setEncoding("utf8").on("data", push);
  child.stderr?.setEncoding("utf8").on("data", push);
  // "close" (not "exit") so the last chunks of output are in before listeners learn of the exit.
  child.once("close", () => {
    done = true;
    push("");
  });
  const capture: OutputCapture = {
    text: () => buffered,
    onData(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    exited: () => done,
  };
  captures.set(child, capture);
  return capture;
}

/** Runs a command to completion, bounded by a timeout; resolves whatever its exit status. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
      output += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
      output += c;
    });
    const line = [command, ...args].join(" ");
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGKILL");
    }, timeoutMs);
    const forget = track(child.pid);
    child.once("error", (err) => {
      clearTimeout(timer);
      forget();
      reject(new CommandError(`cannot run ${line}: ${err.message}`));
    });
    child.once("close", (exitCode, signal) => {
      clearTimeout(timer);
      forget();
      const result: RunResult = { exitCode, signal, stdout, stderr, output };
      if (timedOut) reject(new CommandError(`timed out after ${timeoutMs} ms: ${line}\n${output}`, result));
      else resolve(result);
    });
    // A peer that exits early closes its stdin; that EPIPE is not our failure.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");
  });
}

/** Like `runCommand`, but rejects with the command's output unless it exits 0. */
export async function runChecked(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const result = await runCommand(command, args, options);
  if (result.exitCode !== 0) {
    throw new CommandError(
      `${command} ${args.join(" ")} exited with ${result.exitCode ?? result.signal}:\n${result.output}`,
      result,
    );
  }
  return result;
}

/** Options for `ManagedProcess.start`. */
export interface StartOptions {
  cwd?: string;
  /** Replaces the environment when given. */
  env?: NodeJS.ProcessEnv;
}

/** How a managed process ended. */
export interface ExitStatus {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running child in its own process group, stopped by `stop()` or when the test process ends. */
export class ManagedProcess {
  /** The underlying child (its pid is also the process group id). */
  readonly child: ChildProcess;
  /** The child's pid, which is also its process group id. */
  readonly pid: number;
  /** Resolves when the child has exited and its output is complete. */
  readonly exited: Promise<ExitStatus>;
  private readonly capture: OutputCapture;
  private readonly forget: () => void;

  private constructor(child: ChildProcess, pid: number) {
    this.child = child;
    this.pid = pid;
    this.capture = captureOutput(child);
    this.forget = track(pid);
    this.exited = new Promise((resolve) => {
      child.once("close", (exitCode: number | null, signal: NodeJS.Signals | null) =>
        resolve({ exitCode, signal }),
      );
    });
    // A process that dies on its own must not leave its group members behind either.
    void this.exited.then(() => {
      if (groupMembers(pid).length === 0) this.forget();
    });
  }

  /** Spawns `command` in a new process group with stdin piped (see `write`). Rejects if it cannot start. */
  static start(
    command: string,
    args: readonly string[],
    options: StartOptions = {},
  ): Promise<ManagedProcess> {
    const [cmd, argv] = SETPRIV
      ? [SETPRIV, ["--pdeathsig", "TERM", "--", command, ...args]]
      : [command, args];
    const child = spawn(cmd, argv, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    child.stdin?.on("error", () => {});
    return new Promise((resolve, reject) => {
      child.once("error", (err) => reject(new CommandError(`cannot start ${command}: ${err.message}`)));
      child.once("spawn", () => resolve(new ManagedProcess(child, child.pid!)));
    });
  }

  /** Everything the process wrote on stdout and stderr so far. */
  output(): string {
    return this.capture.text();
  }

  /** The live output recorder (for `waitForOutput`). */
  outputCapture(): OutputCapture {
    return this.capture;
  }

  /** Whether the main process is still running. */
  running(): boolean {
    return !this.capture.exited();
  }

  /** Writes to the process's stdin. */
  write(data: string | Buffer): void {
    this.child.stdin?.write(data);
  }

  /**
   * Stops the whole process group: SIGTERM, then SIGKILL after `graceMs`; resolves when no
   * process of the group is left (rejects if one survives SIGKILL for 5 s, which should not happen).
   */
  async stop(graceMs = 3000): Promise<void> {
    killGroup(this.pid, "SIGTERM");
    if (!(await waitUntil(() => groupMembers(this.pid).length === 0 && !this.running(), graceMs))) {
      killGroup(this.pid, "SIGKILL");
      if (!(await waitUntil(() => groupMembers(this.pid).length === 0, 5000))) {
        throw new Error(`process group ${this.pid} survived SIGKILL: ${groupMembers(this.pid).join(", ")}`);
      }
    }
    await this.exited;
    this.forget();
  }
}

/** The pids of live (non-zombie) processes whose process group is `pgid`, read from /proc. */
export function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // Fields after the parenthesised command name: state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z") pids.push(Number(name));
  }
  return pids;
}

/** Whether a process with this pid is alive (not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Polls `condition` every 25 ms for up to `timeoutMs`; resolves whether it became true. */
export async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (condition()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

function killGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (pgid === undefined) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

// Process groups still to kill if the test process ends before they are stopped.
const liveGroups = new Set<number>();
let handlersInstalled = false;

function track(pgid: number | undefined): () => void {
  if (pgid === undefined) return () => {};
  installHandlers();
  liveGroups.add(pgid);
  return () => liveGroups.delete(pgid);
}

function killAllSync(): void {
  for (const pgid of liveGroups) killGroup(pgid, "SIGKILL");
  liveGroups.clear();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAllSync);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      killAllSync();
      process.removeListener(signal, onSignal);
      // Let the default action (or another handler) decide how the process ends.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
