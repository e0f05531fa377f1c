/**
 * AdvanceEncrypt, AdvanceDecrypt and AdvanceGenerateDataKey: like Encrypt, Decrypt and
 * GenerateDataKey, but the ciphertext is an Advance blob (advance_blob.ts) that names its
 * key and version, so AdvanceDecrypt needs no KeyId and keeps working after rotation.
 * AES keys seal with AES-GCM; RSA keys (ENCRYPT/DECRYPT) with RSA-OAEP, the blob's header
 * and the caller's Aad as the OAEP label.
 */
import { randomBytes } from "node:crypto";
import {
  type AdvanceAlgorithm,
  AdvanceBlobError,
  advanceHeader,
  encodeAdvanceBlob,
  parseAdvanceBlob,
} from "./advance_blob.ts";
import { KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import { aesGcmOpen, rsaOaepDecrypt, rsaOaepEncrypt } from "./key_ops.ts";
import { encodeMessage, type KmsMessages } from "./proto.ts";
import {
  checkAad,
  dataKeySize,
  type RequestContext,
  rsaOaepHash,
  sealUnderNewest,
  secretOf,
  usableKey,
} from "./service_common.ts";
import { defaultAlgorithm, KEY_SPECS, SYMMETRIC_ALGORITHM } from "./specs.ts";
import type { KeyRecord, KeyVersionRecord } from "./store.ts";

/** An Advance blob and the facts the reply names. */
export interface AdvanceSealed {
  readonly blob: Buffer;
  readonly iv: Buffer;
  readonly version: KeyVersionRecord;
}

/** Seals under an AES key's newest version into an Advance blob. */
export async function advanceSealGcm(
  instance: KmsInstance,
  key: KeyRecord,
  plaintext: Buffer,
  aad: Buffer,
  ctx: RequestContext,
): Promise<AdvanceSealed> {
  const header = (v: KeyVersionRecord) => advanceHeader("AES_GCM", key.id, v.id);
  const s = await sealUnderNewest(instance, key, plaintext, aad, header, ctx);
  return { blob: encodeAdvanceBlob(s.header, s.iv, s.sealed), iv: s.iv, version: s.version };
}

/** The IV must be left empty: the KMS draws it (see Encrypt). */
function refuseCallerIv(iv: Buffer): void {
  if (iv.length !== 0) {
    throw new KmsServiceError(
      "InvalidParameter",
      "Iv must be left empty: the KMS chooses a fresh random IV and returns it in the response.",
    );
  }
}

/** AdvanceEncrypt: AES_GCM under an AES key, RSAES_OAEP_* under an RSA ENCRYPT/DECRYPT key. */
export async function advanceEncrypt(
  instance: KmsInstance,
  req: KmsMessages["AdvanceEncryptRequest"],
  ctx: RequestContext,
): Promise<Buffer> {
  const key = await usableKey(instance, req.KeyId, "ENCRYPT/DECRYPT", ctx);
  if (req.Plaintext.length === 0)
    throw new KmsServiceError("MissingParameter", "The parameter Plaintext is missing.");
  refuseCallerIv(req.Iv);
  const kind = KEY_SPECS[key.spec].kind;
  const algName = req.Algorithm === "" ? defaultAlgorithm(kind, "encrypt") : req.Algorithm;
  ctx.detail = algName;
  let sealed: AdvanceSealed;
  if (kind === "aes") {
    if (algName !== SYMMETRIC_ALGORITHM)
      throw new KmsServiceError("InvalidParameter", "Use Algorithm AES_GCM.");
    sealed = await advanceSealGcm(instance, key, req.Plaintext, req.Aad, ctx);
  } else {
    const oaepHash = rsaOaepHash(algName);
    checkAad(req.Aad);
    const version = await instance.keys.primaryVersion(key.id);
    ctx.detail += ` v${version.seq}`;
    const header = advanceHeader(algName as AdvanceAlgorithm, key.id, version.id);
    const loaded = await instance.keys.load(key, version);
    const label = Buffer.concat([header, req.Aad]);
    const ciphertext = rsaOaepEncrypt(loaded, oaepHash, req.Plaintext, label);
    sealed = { blob: encodeAdvanceBlob(header, Buffer.alloc(0), ciphertext), iv: Buffer.alloc(0), version };
  }
  return encodeMessage("AdvanceEncryptResponse", {
    KeyId: key.id,
    CiphertextBlob: sealed.blob,
    Iv: sealed.iv,
    RequestId: ctx.requestId,
    Algorithm: algName,
    KeyVersionId: sealed.version.id,
  });
}

/** AdvanceDecrypt: the blob names the key and version; KeyId, when given, must name the same key. */
export async function advanceDecrypt(
  instance: KmsInstance,
  req: KmsMessages["AdvanceDecryptRequest"],
  ctx: RequestContext,
): Promise<Buffer> {
  if (req.CiphertextBlob.length === 0)
    throw new KmsServiceError("MissingParameter", "The parameter CiphertextBlob is missing.");
  checkAad(req.Aad);
  let blob: ReturnType<typeof parseAdvanceBlob>;
  try {
    blob = parseAdvanceBlob(req.CiphertextBlob);
  } catch (err) {
    if (err instanceof AdvanceBlobError) throw new KmsServiceError("InvalidCiphertext", err.message);
    throw err;
  }
  const key = await usableKey(instance, blob.keyId, "ENCRYPT/DECRYPT", ctx);
  if (req.KeyId !== "" && (await usableKey(instance, req.KeyId, "ENCRYPT/DECRYPT", ctx)).id !== key.id) {
    ctx.keyId = key.id;
    throw new KmsServiceError("InvalidCiphertext", "The ciphertext was not made under this KeyId.");
  }
  const kind = KEY_SPECS[key.spec].kind;
  if (req.Algorithm !== "" && req.Algorithm !== blob.algorithm)
    throw new KmsServiceError("InvalidParameter", `The ciphertext was made with ${blob.algorithm}.`);
  if (req.Iv.length !== 0 && !req.Iv.equals(blob.iv))
    throw new KmsServiceError("InvalidParameter", "Iv differs from the one the ciphertext carries.");
  ctx.detail = blob.algorithm;
  const version = await instance.store.version(blob.versionId);
  let plaintext: Buffer | undefined;
  if (version && version.keyId === key.id && (kind === "aes") === (blob.algorithm === "AES_GCM")) {
    ctx.detail += ` v${version.seq}`;
    const loaded = await instance.keys.load(key, version);
    const aad = Buffer.concat([blob.header, req.Aad]);
    plaintext =
      blob.algorithm === "AES_GCM"
        ? aesGcmOpen(secretOf(loaded), blob.iv, aad, blob.sealed)
        : rsaOaepDecrypt(loaded, rsaOaepHash(blob.algorithm), blob.sealed, aad);
  }
  if (!plaintext)
    throw new KmsServiceError("InvalidCiphertext", "The ciphertext does not decrypt under this key.");
  return encodeMessage("AdvanceDecryptResponse", {
    KeyId: key.id,
    Plaintext: plaintext,
    RequestId: ctx.requestId,
    Algorithm: blob.algorithm,
    KeyVersionId: blob.versionId,
  });
}

/** AdvanceGenerateDataKey: a random data key, in the clear and in an AES_GCM Advance blob. */
export async function advanceGenerateDataKey(
  instance: KmsInstance,
  req: KmsMessages["AdvanceGenerateDataKeyRequest"],
  ctx: RequestContext,
): Promise<Buffer> {
  const key = await usableKey(instance, req.KeyId, "ENCRYPT/DECRYPT", ctx);
  if (KEY_SPECS[key.spec].kind !== "aes")
    throw new KmsServiceError("UnsupportedOperation", "AdvanceGenerateDataKey needs a symmetric key.");
  const size = dataKeySize(req.NumberOfBytes);
  ctx.detail = `${SYMMETRIC_ALGORITHM} ${size}B`;
  const plaintext = randomBytes(size);
  try {
    const sealed = await advanceSealGcm(instance, key, plaintext, req.Aad, ctx);
    return encodeMessage("AdvanceGenerateDataKeyResponse", {
      KeyId: key.id,
      Iv: sealed.iv,
      Plaintext: plaintext,
      CiphertextBlob: sealed.blob,
      RequestId: ctx.requestId,
      Algorithm: SYMMETRIC_ALGORITHM,
      KeyVersionId: sealed.version.id,
    });
  } finally {
    plaintext.fill(0);
  }
}
