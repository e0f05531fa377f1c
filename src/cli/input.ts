/**
 * What several commands read from the user the same way: a text file named by a flag, a
 * `--listen HOST:PORT`, a `--tls-min`/`--tls-max` version, and the signal that stops a server.
 */
import { readFileSync } from "node:fs";
import { CliError } from "./errors.ts";

/** A text file's contents, or a one-line CliError with `exitCode` naming `what` could not be read. */
export function readTextFile(path: string, what: string, exitCode: number): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    throw new CliError(`cannot read ${what} '${path}': ${why}`, exitCode);
  }
}

/** Parses HOST:PORT or [IPv6]:PORT (port 0 picks a free one); undefined when it is neither. */
export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  const host = m?.[1] ?? m?.[2];
  return host === undefined || port > 65535 ? undefined : { host, port };
}

/** A `--tls-min`/`--tls-max` value (undefined when not given), or a usage error. */
export function tlsVersionFlag(v: string | undefined): "1.1" | "1.2" | "1.3" | undefined {
  if (v === undefined || v === "1.1" || v === "1.2" || v === "1.3") return v;
  throw new CliError(`unknown TLS version '${v}' (use 1.1, 1.2 or 1.3)`, 2);
}

/** Resolves with the signal when SIGTERM or SIGINT arrives. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
      resolve(signal);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}
