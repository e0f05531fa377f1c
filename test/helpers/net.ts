/**
 * Small network waits for tests: a free port, a port that accepts, a line a child prints.
 * Every wait is bounded and fails with what the child said, never hangs.
 */
import type { ChildProcess } from "node:child_process";
import net from "node:net";
import { captureOutput, ManagedProcess, type OutputCapture } from "./process.ts";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0). Another
 * process may take it before you bind it; peers that need a fixed port retry on "address in use".
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

/** Options for `waitForPort`. */
export interface WaitForPortOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Give up early (with its output) if this process exits first. */
  process?: ManagedProcess | ChildProcess;
}

/**
 * Resolves once a TCP connection to host:port succeeds (the probe connection is closed at once);
 * rejects after `timeoutMs`, or as soon as the given process exits, with its output.
 */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  options: WaitForPortOptions = {},
): Promise<void> {
  const host = options.host ?? "127.0.0.1";
  const capture = options.process ? captureOf(options.process) : undefined;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(host, port, Math.max(50, Math.min(1000, deadline - Date.now())))) return;
    if (capture?.exited()) {
      throw new Error(`process exited before ${host}:${port} accepted connections:\n${capture.text()}`);
    }
    if (Date.now() >= deadline) {
      const said = capture ? `:\n${capture.text()}` : "";
      throw new Error(`${host}:${port} did not accept connections within ${timeoutMs} ms${said}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Resolves with the first match of `pattern` in the child's combined stdout+stderr (output it
 * printed before this call counts too, provided it was captured: `ManagedProcess` always is, a
 * raw ChildProcess from the moment it is first passed here or to `captureOutput`). Rejects after
 * `timeoutMs`, or when the child exits without printing it, with everything it printed.
 */
export function waitForOutput(
  child: ManagedProcess | ChildProcess,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  const capture = captureOf(child);
  // A global or sticky regex would keep lastIndex state between calls.
  const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
  return new Promise((resolve, reject) => {
    const settle = (): boolean => {
      const match = capture.text().match(re);
      if (match) {
        finish();
        resolve(match);
        return true;
      }
      if (capture.exited()) {
        finish();
        reject(new Error(`process exited without printing ${re}:\n${capture.text()}`));
        return true;
      }
      return false;
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`no output matching ${re} within ${timeoutMs} ms:\n${capture.text()}`));
    }, timeoutMs);
    const unsubscribe = capture.onData(() => settle());
    function finish(): void {
      clearTimeout(timer);
      unsubscribe();
    }
    settle();
  });
}

function captureOf(child: ManagedProcess | ChildProcess): OutputCapture {
  return child instanceof ManagedProcess ? child.outputCapture() : captureOutput(child);
}

function canConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
