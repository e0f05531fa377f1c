/**
 * Errors from the private CA, each with a precise kind and a one-line message for users.
 */
import { HsmkitError, type OptionText } from "../errors.ts";

/** Why a CA operation failed. */
export type PkiErrorKind =
  | "bad-input" // an argument, SAN, CSR, validity or file the user gave is unacceptable
  | "ca-dir" // the CA directory is missing, corrupted or inconsistent
  | "key" // the CA or leaf key could not be opened or used
  | "locked" // another process held the CA lock for too long
  | "not-exportable" // the private key lives in a token or KMS and cannot go into a file
  | "io" // a file could not be read or written
  | "internal"; // a bug: an invariant of ours did not hold

/** A CA failure whose message is fit to print as is (with API option names; see HsmkitError). */
export class PkiError extends HsmkitError {
  /** What went wrong, for callers that branch on it. */
  readonly kind: PkiErrorKind;

  constructor(kind: PkiErrorKind, message: string | OptionText, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PkiError";
    this.kind = kind;
  }
}

/** The first line of any thrown value's message, for wrapping into a PkiError. */
export function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0] ?? text;
}
