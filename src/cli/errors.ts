/**
 * User-facing failures: one line on stderr and a chosen exit code, never a stack trace.
 */

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

/** The one-line text to show for any thrown value; stack traces only with HSMKIT_DEBUG=1. */
export function describeError(err: unknown): string {
  if (process.env.HSMKIT_DEBUG === "1" && err instanceof Error && err.stack) return err.stack;
  if (err instanceof Error) return err.message.split("\n")[0] ?? String(err);
  return String(err);
}
