/**
 * Checking a detached file signature against a public key, streaming the file through
 * node:crypto's verifier (constant memory for any size).
 */
import { constants, createVerify, type KeyObject } from "node:crypto";
import { checkKeyFits, fileAlgorithm } from "./algorithms.ts";
import { fileChunks } from "./file_hash.ts";
import type { ProgressListener } from "./progress.ts";

/** What to verify. */
export interface VerifyFileRequest {
  readonly publicKey: KeyObject;
  readonly algorithm: string;
  readonly input: string;
  readonly signature: Buffer;
  readonly onProgress?: ProgressListener;
}

/** True when `signature` is a valid signature over the file. */
export async function verifyFile(req: VerifyFileRequest): Promise<boolean> {
  const info = fileAlgorithm(req.algorithm);
  checkKeyFits(req.algorithm, info, req.publicKey.asymmetricKeyType);
  const verifier = createVerify(info.hash);
  for await (const chunk of fileChunks(req.input, req.onProgress)) verifier.update(chunk);
  const key =
    info.padding === "pss"
      ? { key: req.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: info.hashLength }
      : info.padding === "pkcs1"
        ? { key: req.publicKey, padding: constants.RSA_PKCS1_PADDING }
        : { key: req.publicKey, dsaEncoding: "der" as const };
  try {
    return verifier.verify(key, req.signature);
  } catch {
    return false; // malformed signature bytes are a failed verification
  }
}
