/**
 * Detached file signatures with any key handle. The file is streamed: hashed here when the
 * handle signs digests (KMS, tokens, RSA files), or fed to the handle, which hashes it as
 * it arrives. The output is the raw signature (RSA block or DER ECDSA), the same bytes
 * `openssl dgst -sign` writes, so `openssl dgst -verify` checks it.
 */
import { randomBytes } from "node:crypto";
import { rename, rm, stat, writeFile } from "node:fs/promises";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { checkKeyFits, fileAlgorithm } from "./algorithms.ts";
import { fileChunks, hashFile } from "./file_hash.ts";
import type { ProgressListener } from "./progress.ts";

/** What to sign and where the signature goes. */
export interface SignFileRequest {
  readonly key: PrivateKeyHandle;
  /** RSA_PSS_SHA_256, ECDSA_SHA_256, ... */
  readonly algorithm: string;
  readonly input: string;
  readonly output: string;
  readonly onProgress?: ProgressListener;
}

/** Signs a file; writes the signature atomically and returns it. */
export async function signFile(req: SignFileRequest): Promise<Buffer> {
  const info = fileAlgorithm(req.algorithm);
  checkKeyFits(req.algorithm, info, req.key.type);
  await stat(req.input); // a missing input fails here, before any key work
  const signature = req.key.signDigest
    ? await req.key.signDigest(info.name, await hashFile(req.input, info.hash, req.onProgress))
    : await req.key.sign(info.name, fileChunks(req.input, req.onProgress));
  const temp = `${req.output}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temp, signature, { mode: 0o644 });
    await rename(temp, req.output);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return signature;
}
