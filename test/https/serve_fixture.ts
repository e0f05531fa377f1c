/**
 * `hsmkit serve` as a child process for tests: started with the given flags on an
 * ephemeral port, ready once it prints 'listening on HOST:PORT', always stopped.
 */
import { readFileSync } from "node:fs";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { waitForOutput } from "../helpers/net.ts";
import { ManagedProcess } from "../helpers/process.ts";

/** A running `hsmkit serve`. */
export interface ServeProcess {
  proc: ManagedProcess;
  port: number;
  /** The access log lines printed so far (stdout lines after 'listening on'). */
  accessLog(): string[];
  /** Resident memory of the server process, in KiB. */
  rssKiB(): number;
  stop(): Promise<void>;
}

/** Starts `hsmkit serve FLAGS --listen 127.0.0.1:0`. */
export async function startServe(flags: string[], env?: NodeJS.ProcessEnv): Promise<ServeProcess> {
  const proc = await ManagedProcess.start(HSMKIT_BIN, ["serve", ...flags, "--listen", "127.0.0.1:0"], {
    env: env ?? process.env,
  });
  let port: number;
  try {
    const m = await waitForOutput(proc, /^listening on 127\.0\.0\.1:(\d+)$/m, 30_000);
    port = Number(m[1]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    proc,
    port,
    accessLog: () =>
      proc
        .output()
        .split("\n")
        .filter((l) => /^\d{4}-\d\d-\d\dT\S+Z \S+ "/.test(l)),
    rssKiB: () =>
      Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))?.[1] ?? 0),
    stop: () => proc.stop(),
  };
}
