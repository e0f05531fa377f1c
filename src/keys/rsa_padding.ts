/**
 * RSA encodings for backends that only offer the raw RSA operation: the PKCS#1 v1.5
 * DigestInfo prefix, EMSA-PSS encoding (RFC 8017 §9.1.1), and a constant-time PKCS#1 v1.5
 * type 2 unpadding for decryption. Hashing and randomness come from node:crypto.
 */
import { createHash, randomBytes } from "node:crypto";
import type { HashName, SchemeInfo } from "./schemes.ts";
import { KeyError } from "./types.ts";

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1); md5-sha1 is signed bare, as TLS 1.0/1.1 do. */
const DIGEST_INFO_PREFIX: Readonly<Record<HashName, Buffer>> = {
  "md5-sha1": Buffer.alloc(0),
  sha1: Buffer.from("3021300906052b0e03021a05000414", "hex"),
  sha256: Buffer.from("3031300d060960864801650304020105000420", "hex"),
  sha384: Buffer.from("3041300d060960864801650304020205000430", "hex"),
  sha512: Buffer.from("3051300d060960864801650304020305000440", "hex"),
};

/** Throws unless `digest` has the length the scheme's hash produces. */
export function checkDigestLength(scheme: SchemeInfo, digest: Uint8Array): void {
  if (digest.length !== scheme.hashLength) {
    throw new KeyError(
      "unsupported",
      `${scheme.name} needs a ${scheme.hashLength}-byte digest, got ${digest.length} bytes`,
    );
  }
}

/** DigestInfo || digest, the block CKM_RSA_PKCS / RSA_PKCS1_PADDING sign for PKCS#1 v1.5. */
export function digestInfo(hash: HashName, digest: Uint8Array): Buffer {
  return Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]);
}

function hashName(hash: HashName): string {
  if (hash === "md5-sha1") throw new KeyError("unsupported", "PSS cannot use the MD5+SHA-1 hash");
  return hash;
}

/** MGF1 (RFC 8017 §B.2.1) with the given hash. */
function mgf1(hash: string, seed: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  const counter = Buffer.alloc(4);
  let produced = 0;
  for (let i = 0; produced < length; i++) {
    counter.writeUInt32BE(i);
    const block = createHash(hash).update(seed).update(counter).digest();
    blocks.push(block);
    produced += block.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/**
 * EMSA-PSS-ENCODE of a digest with salt length = hash length, returned left-padded to the
 * modulus length so it can go straight into a raw (no padding) RSA private operation.
 */
export function emsaPssEncode(hash: HashName, digest: Uint8Array, modulusBits: number): Buffer {
  const name = hashName(hash);
  const hLen = digest.length;
  const sLen = hLen;
  const emBits = modulusBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2)
    throw new KeyError("unsupported", `a ${modulusBits}-bit key is too small for PSS`);
  const salt = randomBytes(sLen);
  const mPrime = Buffer.concat([Buffer.alloc(8), digest, salt]);
  const h = createHash(name).update(mPrime).digest();
  const db = Buffer.alloc(emLen - hLen - 1);
  db[db.length - sLen - 1] = 0x01;
  salt.copy(db, db.length - sLen);
  const mask = mgf1(name, h, db.length);
  for (let i = 0; i < db.length; i++) db[i] = (db[i] as number) ^ (mask[i] as number);
  // Clear the leftmost 8*emLen - emBits bits so the encoded integer is below the modulus.
  db[0] = (db[0] as number) & (0xff >>> (8 * emLen - emBits));
  const k = Math.ceil(modulusBits / 8);
  const em = Buffer.alloc(k);
  db.copy(em, k - emLen);
  h.copy(em, k - emLen + db.length);
  em[k - 1] = 0xbc;
  return em;
}

// Branch-free helpers on byte values (0..255): 1 when the condition holds, else 0.
function isZeroByte(x: number): number {
  return ((x | -x) >>> 31) ^ 1;
}
function equalBytes(a: number, b: number): number {
  return isZeroByte(a ^ b);
}

/**
 * Removes PKCS#1 v1.5 type 2 padding from a raw RSA decryption result (k bytes), in time
 * that does not depend on where or whether the padding is wrong. Throws KeyError("decrypt")
 * with a fixed message on any failure; the caller learns nothing more.
 */
export function unpadPkcs1Type2(em: Uint8Array): Buffer {
  const k = em.length;
  let good = equalBytes(em[0] ?? 1, 0x00) & equalBytes(em[1] ?? 0, 0x02);
  let lookingForZero = 1;
  let zeroIndex = 0;
  for (let i = 2; i < k; i++) {
    const isZero = isZeroByte(em[i] as number);
    // Record the first zero only: (isZero & lookingForZero) selects i, otherwise keep.
    const take = isZero & lookingForZero;
    zeroIndex = (zeroIndex & (take - 1)) | (i & -take);
    lookingForZero &= isZero ^ 1;
  }
  good &= lookingForZero ^ 1;
  // At least 8 bytes of non-zero padding: the separator sits at index 10 or later.
  good &= ((zeroIndex - 10) >>> 31) ^ 1;
  if (good !== 1) throw new KeyError("decrypt", "RSA decryption failed");
  return Buffer.from(em.subarray(zeroIndex + 1));
}

/**
 * Implicit-rejection form of {@link unpadPkcs1Type2}: the message of exactly `length` bytes
 * when em is 00 02 PS(8+ non-zero bytes) 00 M, else `fallback`, selected by a mask. The
 * position checked depends only on the public lengths, never on em's contents.
 */
export function unpadPkcs1Type2Implicit(em: Uint8Array, length: number, fallback: Uint8Array): Buffer {
  const k = em.length;
  const start = k - length;
  if (fallback.length !== length || start < 11) return Buffer.from(fallback); // public sizes only
  let bad = (em[0] as number) | ((em[1] as number) ^ 0x02) | (em[start - 1] as number);
  for (let i = 2; i < start - 1; i++) bad |= isZeroByte(em[i] as number);
  const good = ((bad - 1) >> 31) & 0xff; // 0xff when bad is 0
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++)
    out[i] = ((em[start + i] as number) & good) | ((fallback[i] as number) & ~good & 0xff);
  return out;
}
