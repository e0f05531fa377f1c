/**
 * The common part of every real peer: start it on 127.0.0.1 with a port, wait until it accepts,
 * retry on a port another process took in between, and stop it leaving nothing behind.
 */
import { rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { freePort, waitForOutput, waitForPort } from "./net.ts";
import { ManagedProcess } from "./process.ts";

/** A running peer server on 127.0.0.1. */
export interface Peer {
  /** Always 127.0.0.1 (gnutls-serv also listens on the other addresses; it has no bind option). */
  readonly host: string;
  readonly port: number;
  /** Pid of the main process, which is also its process group id. */
  readonly pid: number;
  /**
   * Everything the peer printed on stdout and stderr so far (nginx: its error log). It arrives
   * through a pipe, a moment after the client saw its answer: wait with `waitForOutput(peer.process,
   * ...)` or `waitForVerifications` rather than reading it straight after a request.
   */
  output(): string;
  /** Stops the peer's whole process group and removes its temp files; safe to call twice. */
  stop(): Promise<void>;
  /** The process, for `waitForOutput(peer.process, ...)` and stdin writes. */
  readonly process: ManagedProcess;
}

/** How to start one kind of peer. */
export interface PeerLaunch {
  /** Short name for error messages. */
  name: string;
  command: string;
  /** Arguments for the given port; port 0 when `portFromOutput` is set. */
  args(port: number): string[];
  /**
   * When the peer binds port 0 itself and prints the port it got: a regex whose group 1 is the
   * port. Otherwise a free port is chosen here and the start retried if it was taken.
   */
  portFromOutput?: RegExp;
  /** Printed once the peer is ready, when the port alone is not enough. */
  readyPattern?: RegExp;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Removed on stop (a temp directory the peer works in). */
  tempDir?: string;
  /** Startup bound. Default 15 s. */
  timeoutMs?: number;
}

// Temp directories of peers still running, removed if the process exits before `stop()`.
const liveTempDirs = new Set<string>();
process.on("exit", () => {
  for (const dir of liveTempDirs) rmSync(dir, { recursive: true, force: true });
});

const ADDRESS_IN_USE = /address already in use|EADDRINUSE|bind\(\) .*failed \(98/i;

/** Starts a peer and resolves once it accepts TCP connections on 127.0.0.1. */
export async function startPeer(launch: PeerLaunch): Promise<Peer> {
  const timeoutMs = launch.timeoutMs ?? 15_000;
  if (launch.tempDir) liveTempDirs.add(launch.tempDir);
  for (let attempt = 1; ; attempt++) {
    const chosen = launch.portFromOutput ? 0 : await freePort();
    const proc = await ManagedProcess.start(launch.command, launch.args(chosen), {
      cwd: launch.cwd,
      env: launch.env,
    });
    try {
      const port = launch.portFromOutput
        ? Number((await waitForOutput(proc, launch.portFromOutput, timeoutMs))[1])
        : chosen;
      if (launch.readyPattern) await waitForOutput(proc, launch.readyPattern, timeoutMs);
      await waitForPort(port, timeoutMs, { process: proc });
      return makePeer(proc, port, launch.tempDir);
    } catch (err) {
      await proc.stop();
      if (attempt < 5 && !launch.portFromOutput && ADDRESS_IN_USE.test(proc.output())) continue;
      if (launch.tempDir) await removeTempDir(launch.tempDir);
      throw new Error(`${launch.name} did not start: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function makePeer(proc: ManagedProcess, port: number, tempDir: string | undefined): Peer {
  let stopping: Promise<void> | undefined;
  return {
    host: "127.0.0.1",
    port,
    pid: proc.pid,
    process: proc,
    output: () => proc.output(),
    stop() {
      stopping ??= (async () => {
        await proc.stop();
        if (tempDir) await removeTempDir(tempDir);
      })();
      return stopping;
    },
  };
}

async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveTempDirs.delete(dir);
}
