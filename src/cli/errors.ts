/**
 * User-facing failures: one line on stderr and a chosen exit code, never a stack trace.
 * Library errors name API options (`pathLen`); here they are told with the flags that set
 * them (`--path-len`).
 */
import { HsmkitError, type OptionNamer } from "../errors.ts";

/** An error meant for the user: its message is printed as is and the process exits with `exitCode`. */
export class CliError extends Error {
  /** The process exit status to use. */
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** API options whose flag is not simply their kebab-case name. */
const FLAG_OF_OPTION: Readonly<Record<string, string>> = {
  algorithm: "--alg",
  // The TLS client's trust anchors (`hsmkit curl --cacert`); no message names a CA directory `ca`.
  ca: "--cacert",
  maxVersion: "--tls-max",
  minVersion: "--tls-min",
  pkcs11: "--master-key",
  pss: "--rsa-pss",
};

/** The flag that sets an API option (`pathLen` is `--path-len`), followed by its placeholder. */
export const flagName: OptionNamer = (option, placeholder) => {
  const flag = FLAG_OF_OPTION[option] ?? `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  return placeholder === undefined ? flag : `${flag} ${placeholder}`;
};

/** An error's message as the CLI tells it: options named by their flags. */
export function messageWithFlags(err: unknown): string {
  if (err instanceof HsmkitError) return err.describeWith(flagName);
  return err instanceof Error ? err.message : String(err);
}

/** The one-line text to show for any thrown value; stack traces only with HSMKIT_DEBUG=1. */
export function describeError(err: unknown): string {
  if (process.env.HSMKIT_DEBUG === "1" && err instanceof Error && err.stack) return err.stack;
  const text = messageWithFlags(err);
  return text.split("\n")[0] ?? text;
}
