/**
 * What every KMS operation shares: the per-request context the audit log reads, strict
 * request decoding, the key check (policy, state, usage, in the order that leaks least) and
 * AES-GCM sealing under a key's newest version.
 */
import { randomBytes } from "node:crypto";
import { KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import { aesGcmSeal, type LoadedKey } from "./key_ops.ts";
import { allowsKey } from "./policy.ts";
import { decodeMessage, type KmsMessageName, type KmsMessages, ProtoDecodeError } from "./proto.ts";
import { type KeyUsage, RSA_ENCRYPT_ALGORITHMS } from "./specs.ts";
import type { AccessPointRecord, KeyRecord, KeyVersionRecord } from "./store.ts";

/** Per-request facts the service fills in for the audit log. */
export interface RequestContext {
  readonly accessPoint: AccessPointRecord;
  readonly requestId: string;
  /** The key (or secret) the request resolved to, or the name it asked for. */
  keyId: string;
  /** Non-secret detail for the audit log (algorithm, message type, version). */
  detail: string;
  /** Aborts when the client's connection closes before the answer: queued work can be dropped. */
  readonly abandoned?: AbortSignal;
}

/** The first byte of Encrypt / GenerateDataKey blobs: format 1, then the 16-byte version id. */
export const BLOB_FORMAT = 0x01;
/** Format byte plus version id. */
export const BLOB_HEADER = 1 + 16;
/** Longest KeyId accepted: key-<hex> ids and aliases (alias/ + up to 200 characters) are far shorter. */
const MAX_KEY_NAME = 256;
/** Longest caller Aad accepted (it is authenticated, never stored). */
export const MAX_AAD_BYTES = 8192;

/** Decodes a request body; a malformed one is InvalidParam. */
export function decodeRequest<N extends KmsMessageName>(name: N, body: Buffer): KmsMessages[N] {
  try {
    return decodeMessage(name, body);
  } catch (err) {
    if (err instanceof ProtoDecodeError)
      throw new KmsServiceError("InvalidParam", `The body is not a valid ${name}.`);
    throw err;
  }
}

/** Resolves a key the access point may use, in a state and usage that allow the operation. */
export async function usableKey(
  instance: KmsInstance,
  name: string,
  usage: KeyUsage | undefined,
  ctx: RequestContext,
): Promise<KeyRecord> {
  if (name === "") throw new KmsServiceError("MissingParameter", "The parameter KeyId is missing.");
  // Key ids and aliases are short; a long one is refused before it reaches lookups or the audit log.
  if (name.length > MAX_KEY_NAME)
    throw new KmsServiceError("InvalidParam", "The parameter KeyId is too long.");
  ctx.keyId = name;
  const key = await instance.keys.resolve(name);
  const policy = ctx.accessPoint.policy;
  if (!key) {
    // Only say "not found" to an access point that could have used such a key.
    if (allowsKey(policy, name, name.startsWith("alias/") ? [name] : [])) {
      throw new KmsServiceError("Forbidden.KeyNotFound", `The key "${name}" does not exist.`);
    }
    throw new KmsServiceError("Forbidden.NoPermission", `This access point may not use "${name}".`);
  }
  ctx.keyId = key.id;
  const aliases = await instance.store.aliasesOf(key.id);
  if (!allowsKey(policy, key.id, name === key.id ? aliases : [...aliases, name])) {
    throw new KmsServiceError("Forbidden.NoPermission", `This access point may not use "${name}".`);
  }
  if (key.state !== "Enabled") {
    instance.keys.forget(key.id);
    throw new KmsServiceError("IncorrectKeyState", `The key is ${key.state}.`);
  }
  if (usage !== undefined && key.usage !== usage) {
    throw new KmsServiceError("UnsupportedOperation", `The key's usage is ${key.usage}, not ${usage}.`);
  }
  return key;
}

/** Refuses an Aad longer than {@link MAX_AAD_BYTES}. */
export function checkAad(aad: Buffer): void {
  if (aad.length > MAX_AAD_BYTES)
    throw new KmsServiceError("InvalidParameter", `Aad must be at most ${MAX_AAD_BYTES} bytes.`);
}

/** The AES key object of a loaded symmetric version. */
export function secretOf(key: LoadedKey) {
  if (key.kind !== "aes") throw new KmsServiceError("InternalFailure", "not a symmetric key");
  return key.secretKey;
}

/**
 * Seals with AES-GCM under the key's newest version. `header(version)` gives the bytes that
 * start the blob and are authenticated with the caller's Aad. The IV is drawn here, 96 random
 * bits per message, and never taken from a caller.
 */
export async function sealUnderNewest(
  instance: KmsInstance,
  key: KeyRecord,
  plaintext: Buffer,
  aad: Buffer,
  header: (version: KeyVersionRecord) => Buffer,
  ctx: RequestContext,
): Promise<{ header: Buffer; iv: Buffer; sealed: Buffer; version: KeyVersionRecord }> {
  checkAad(aad);
  const iv = randomBytes(12);
  const version = await instance.keys.primaryVersion(key.id);
  ctx.detail += ` v${version.seq}`;
  const loaded = await instance.keys.load(key, version);
  const head = header(version);
  const sealed = aesGcmSeal(secretOf(loaded), iv, Buffer.concat([head, aad]), plaintext);
  return { header: head, iv, sealed, version };
}

/** The Encrypt / GenerateDataKey blob (format 1, version id, then ciphertext || tag) and its IV. */
export async function sealGcm(
  instance: KmsInstance,
  key: KeyRecord,
  plaintext: Buffer,
  aad: Buffer,
  ctx: RequestContext,
): Promise<{ blob: Buffer; iv: Buffer }> {
  const header = (v: KeyVersionRecord) =>
    Buffer.concat([Buffer.from([BLOB_FORMAT]), Buffer.from(v.id, "hex")]);
  const s = await sealUnderNewest(instance, key, plaintext, aad, header, ctx);
  return { blob: Buffer.concat([s.header, s.sealed]), iv: s.iv };
}

/** The OAEP hash of an RSA encryption algorithm; InvalidParameter for any other name. */
export function rsaOaepHash(algName: string): string {
  const hash = Object.hasOwn(RSA_ENCRYPT_ALGORITHMS, algName) ? RSA_ENCRYPT_ALGORITHMS[algName] : undefined;
  if (!hash) throw new KmsServiceError("InvalidParameter", `Unknown encryption algorithm "${algName}".`);
  return hash;
}

const MAX_DATA_KEY_BYTES = 1024;

/** A data key's size from NumberOfBytes (0 means 32); InvalidParameter outside 1..1024. */
export function dataKeySize(numberOfBytes: number): number {
  const size = numberOfBytes === 0 ? 32 : numberOfBytes;
  if (!Number.isInteger(size) || size < 1 || size > MAX_DATA_KEY_BYTES) {
    throw new KmsServiceError("InvalidParameter", `NumberOfBytes must be 1..${MAX_DATA_KEY_BYTES}.`);
  }
  return size;
}
