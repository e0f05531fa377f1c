/**
 * EMSA-PSS verification (RFC 8017 §9.1.2) over a precomputed digest; the encoding side is
 * keys/rsa_padding.ts's emsaPssEncode.
 *
 * Why this exists: node:crypto only verifies PSS over a message it hashes itself, but a
 * client that streamed a 2 GiB file sends only the digest (MessageType DIGEST). The raw RSA
 * operation is `crypto.publicDecrypt(RSA_NO_PADDING)` (OpenSSL's arithmetic); only the byte
 * layout of the padding is checked here. Hashes come from node:crypto.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { DigestName } from "./specs.ts";

function hash(name: DigestName, ...parts: Uint8Array[]): Buffer {
  const h = createHash(name);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MGF1 (RFC 8017 §B.2.1): counter-mode hash expansion of `seed` to `length` bytes. */
export function mgf1(name: DigestName, seed: Uint8Array, length: number): Buffer {
  const out = Buffer.alloc(length);
  const counter = Buffer.alloc(4);
  for (let offset = 0, i = 0; offset < length; i++) {
    counter.writeUInt32BE(i);
    const block = hash(name, seed, counter);
    offset += block.copy(out, offset);
  }
  return out;
}

/**
 * EMSA-PSS-VERIFY with salt length = digest length. `block` is the output of the raw RSA
 * public operation (modulus length). Returns whether it encodes `digest`.
 */
export function pssVerify(
  name: DigestName,
  digest: Uint8Array,
  block: Uint8Array,
  modulusBits: number,
): boolean {
  const hLen = digest.length;
  const sLen = hLen;
  const emBits = modulusBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const modulusBytes = Math.ceil(modulusBits / 8);
  if (block.length !== modulusBytes || emLen < hLen + sLen + 2) return false;
  // The bytes in front of EM (at most one, when modBits ≡ 1 mod 8) must be zero.
  for (let i = 0; i < modulusBytes - emLen; i++) if (block[i] !== 0) return false;
  const em = block.subarray(modulusBytes - emLen);
  if (em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const topMask = 0xff >> (8 * emLen - emBits);
  if (((maskedDb[0] ?? 0) & ~topMask) !== 0) return false;
  const mask = mgf1(name, h, maskedDb.length);
  const db = Buffer.alloc(maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] = (maskedDb[i] ?? 0) ^ (mask[i] ?? 0);
  db[0] = (db[0] ?? 0) & topMask;
  const separator = emLen - hLen - sLen - 2;
  for (let i = 0; i < separator; i++) if (db[i] !== 0) return false;
  if (db[separator] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  const expected = hash(name, Buffer.alloc(8), digest, salt);
  return timingSafeEqual(expected, h);
}
