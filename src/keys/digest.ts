/**
 * Message hashing for signature schemes: one place that turns a scheme's hash name into
 * digest bytes, for whole buffers and for streams hashed as they arrive.
 */
import { createHash, type Hash } from "node:crypto";
import type { HashName } from "./schemes.ts";
import type { SignInput } from "./types.ts";

/** The node:crypto digest names behind each scheme hash (md5-sha1 is two hashes side by side). */
const NODE_HASHES: Readonly<Record<HashName, readonly string[]>> = {
  "md5-sha1": ["md5", "sha1"],
  sha1: ["sha1"],
  sha256: ["sha256"],
  sha384: ["sha384"],
  sha512: ["sha512"],
};

/** True when the input is an in-memory buffer rather than a stream. */
export function isBytes(input: SignInput): input is Uint8Array {
  return input instanceof Uint8Array;
}

/**
 * Hashes a message with a scheme's hash. Streams are consumed chunk by chunk, so a large
 * file never has to fit in memory. For md5-sha1 the result is MD5 || SHA-1 (36 bytes).
 */
export async function digestMessage(hash: HashName, input: SignInput): Promise<Buffer> {
  const hashes: Hash[] = NODE_HASHES[hash].map((name) => createHash(name));
  if (isBytes(input)) {
    for (const h of hashes) h.update(input);
  } else {
    for await (const chunk of input) {
      for (const h of hashes) h.update(chunk);
    }
  }
  return Buffer.concat(hashes.map((h) => h.digest()));
}
