/**
 * Reading small secret files (passphrases, PINs) with clear errors. The trailing newline
 * editors and `echo` add is not part of the secret.
 */
import { statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { KeyError, type KeyErrorKind } from "./types.ts";

/** Secrets larger than this are certainly not a passphrase or PIN. */
const MAX_SECRET_BYTES = 4096;

/**
 * Reads a secret file and drops one trailing "\n" or "\r\n". Missing or unreadable files
 * are KeyError("not-found"); empty ones and those over `maxBytes` (default 4096) are
 * KeyError(`emptyKind`). The caller should zero the returned buffer when done.
 */
export async function readSecretFile(
  path: string,
  what: string,
  emptyKind: KeyErrorKind,
  maxBytes = MAX_SECRET_BYTES,
): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new KeyError("not-found", `cannot read ${what} '${path}': ${fsReason(err)}`, { cause: err });
  }
  if (data.length > maxBytes) {
    data.fill(0);
    throw new KeyError(emptyKind, `${what} '${path}' is larger than ${maxBytes} bytes`);
  }
  let end = data.length;
  if (end > 0 && data[end - 1] === 0x0a) end--;
  if (end > 0 && data[end - 1] === 0x0d) end--;
  const secret = Buffer.from(data.subarray(0, end));
  data.fill(0);
  if (secret.length === 0) throw new KeyError(emptyKind, `${what} '${path}' is empty`);
  // Warned only once the file is used: a missing or empty one gets its own error alone.
  warnIfSecretFileExposed(path, what);
  return secret;
}

const warned = new Set<string>();

/**
 * Writes one line on stderr (once per file and process) when a secret file can be read by
 * its group or by others. A warning, not a refusal: mounted secrets (Kubernetes, Docker) are
 * often 0644 inside a container that is the only reader. Errors are left to the reader.
 */
export function warnIfSecretFileExposed(path: string, what: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    return;
  }
  if ((mode & 0o077) === 0 || warned.has(path)) return;
  warned.add(path);
  process.stderr.write(
    `hsmkit: warning: ${what} '${path}' can be read by group or others (mode ${mode.toString(8).padStart(4, "0")}); chmod 600 it\n`,
  );
}

/** A short reason for a failed file system call ("no such file", "permission denied"...). */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    case "EEXIST":
      return "already exists";
    default:
      return code ?? (err instanceof Error ? err.message : String(err));
  }
}
