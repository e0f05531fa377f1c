/**
 * The Advance ciphertext blob: what AdvanceEncrypt, AdvanceGenerateDataKey and the Advance
 * data key pair operations return. The format is the server's own (SDKs pass it back
 * unread), so it names the key and the version that sealed it, and AdvanceDecrypt needs no
 * KeyId and keeps working after rotation:
 *
 * ```
 * offset  size  field
 * 0       1     format: 0x02 (Advance, version 1)
 * 1       1     algorithm: 0x01 AES_GCM, 0x02 RSAES_OAEP_SHA_256, 0x03 RSAES_OAEP_SHA_1
 * 2       1     n, the key id's length (1..64)
 * 3       n     key id (ASCII: letters, digits, '-')
 * 3+n     16    key version id
 * 19+n    12    IV (AES_GCM only)
 * ...           AES_GCM: ciphertext || 16-byte tag;  RSAES_OAEP_*: the RSA ciphertext
 * ```
 *
 * The header (everything before the IV) is authenticated with the caller's Aad: the GCM
 * additional data, or the OAEP label. A blob re-labelled to another key or version, or with
 * its algorithm byte changed, does not open. Parsing reads only declared lengths, refuses
 * anything out of bounds, and never allocates more than the blob.
 */

/** The first byte of every Advance blob. */
export const ADVANCE_FORMAT = 0x02;

/** Algorithms an Advance blob can carry, by their byte. */
export const ADVANCE_ALGORITHMS = {
  1: "AES_GCM",
  2: "RSAES_OAEP_SHA_256",
  3: "RSAES_OAEP_SHA_1",
} as const;

/** An algorithm name an Advance blob can carry. */
export type AdvanceAlgorithm = (typeof ADVANCE_ALGORITHMS)[keyof typeof ADVANCE_ALGORITHMS];

const MAX_KEY_ID = 64;
const VERSION_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** An RSA-4096 ciphertext is 512 bytes; nothing RSA is longer. */
const MAX_RSA_CIPHERTEXT = 512;

/** Why a blob is not an Advance blob this server can read (becomes InvalidCiphertext). */
export class AdvanceBlobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdvanceBlobError";
  }
}

/** The parts of an Advance blob. */
export interface AdvanceBlob {
  readonly algorithm: AdvanceAlgorithm;
  readonly keyId: string;
  /** The version id, lower-case hex (as the store keeps it). */
  readonly versionId: string;
  /** Bytes authenticated with the caller's Aad. */
  readonly header: Buffer;
  /** Empty for RSA. */
  readonly iv: Buffer;
  /** AES_GCM: ciphertext || tag; RSA: the RSA ciphertext. */
  readonly sealed: Buffer;
}

function algorithmByte(name: AdvanceAlgorithm): number {
  for (const [byte, alg] of Object.entries(ADVANCE_ALGORITHMS)) if (alg === name) return Number(byte);
  throw new AdvanceBlobError(`no Advance algorithm ${name}`);
}

/** The header for a key version and algorithm (what the seal authenticates). */
export function advanceHeader(algorithm: AdvanceAlgorithm, keyId: string, versionId: string): Buffer {
  const id = Buffer.from(keyId, "ascii");
  const version = Buffer.from(versionId, "hex");
  if (id.length < 1 || id.length > MAX_KEY_ID || version.length !== VERSION_BYTES)
    throw new AdvanceBlobError("the key id or version id does not fit an Advance blob");
  return Buffer.concat([Buffer.from([ADVANCE_FORMAT, algorithmByte(algorithm), id.length]), id, version]);
}

/** Assembles a blob from its header, the IV (AES_GCM) and the sealed bytes. */
export function encodeAdvanceBlob(header: Buffer, iv: Buffer, sealed: Buffer): Buffer {
  return Buffer.concat([header, iv, sealed]);
}

/** True when the blob starts like an Advance blob (the format byte). */
export function looksAdvance(blob: Buffer): boolean {
  return blob.length > 0 && blob[0] === ADVANCE_FORMAT;
}

/** Splits a blob, checking every length; {@link AdvanceBlobError} on anything malformed. */
export function parseAdvanceBlob(blob: Buffer): AdvanceBlob {
  if (blob.length < 3 || blob[0] !== ADVANCE_FORMAT)
    throw new AdvanceBlobError("not an Advance ciphertext blob");
  const algorithm = Object.hasOwn(ADVANCE_ALGORITHMS, blob[1] as number)
    ? ADVANCE_ALGORITHMS[blob[1] as keyof typeof ADVANCE_ALGORITHMS]
    : undefined;
  if (!algorithm) throw new AdvanceBlobError("unknown algorithm in the ciphertext blob");
  const idLength = blob[2] as number;
  if (idLength < 1 || idLength > MAX_KEY_ID) throw new AdvanceBlobError("bad key id length in the blob");
  const headerEnd = 3 + idLength + VERSION_BYTES;
  if (blob.length < headerEnd) throw new AdvanceBlobError("the ciphertext blob is truncated");
  const keyId = blob.subarray(3, 3 + idLength).toString("latin1");
  if (!/^[A-Za-z0-9-]+$/.test(keyId)) throw new AdvanceBlobError("bad key id in the blob");
  const header = blob.subarray(0, headerEnd);
  const versionId = blob.subarray(3 + idLength, headerEnd).toString("hex");
  if (algorithm === "AES_GCM") {
    if (blob.length < headerEnd + IV_BYTES + TAG_BYTES)
      throw new AdvanceBlobError("the ciphertext blob is truncated");
    const iv = blob.subarray(headerEnd, headerEnd + IV_BYTES);
    return { algorithm, keyId, versionId, header, iv, sealed: blob.subarray(headerEnd + IV_BYTES) };
  }
  const sealed = blob.subarray(headerEnd);
  if (sealed.length < 1 || sealed.length > MAX_RSA_CIPHERTEXT)
    throw new AdvanceBlobError("bad RSA ciphertext length in the blob");
  return { algorithm, keyId, versionId, header, iv: Buffer.alloc(0), sealed };
}
