/**
 * The master key that wraps every piece of KMS key material at rest (AES-256-GCM, with the
 * additional data naming what is wrapped, e.g. key id + version, so a blob cannot be moved
 * to another row). Two sources: a passphrase stretched with scrypt (the default), or an AES
 * key inside a PKCS#11 token that wraps and unwraps without ever leaving it.
 */

import { createSecretKey, type KeyObject, randomBytes, scrypt } from "node:crypto";
import { HsmkitError, type OptionText } from "../errors.ts";
import { aesGcmOpen, aesGcmSeal } from "./key_ops.ts";

/** Wraps and unwraps secrets; never exposes its own key. */
export interface MasterKey {
  /** "passphrase" or "pkcs11". */
  readonly kind: MasterKeyKind;
  /** Safe to print: says where the key lives, never a secret. */
  readonly description: string;
  /** Encrypts `plain` bound to `aad`. */
  wrap(plain: Buffer, aad: string): Promise<Buffer>;
  /** Decrypts a wrapped blob; rejects with {@link MasterKeyError} if it is not ours or was altered. */
  unwrap(blob: Buffer, aad: string): Promise<Buffer>;
  /** Releases token sessions or key objects. */
  close(): Promise<void>;
}

/** Where the master key comes from. */
export type MasterKeyKind = "passphrase" | "pkcs11";

/** Why the master key could not be used. */
export class MasterKeyError extends HsmkitError {
  constructor(message: string | OptionText, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MasterKeyError";
  }
}

/** Wrapped blob layout: version byte, 12-byte IV, ciphertext, 16-byte tag. */
const BLOB_VERSION = 1;

/** Builds a blob from its parts (shared by both master key kinds). */
export function packBlob(iv: Buffer, sealed: Buffer): Buffer {
  return Buffer.concat([Buffer.from([BLOB_VERSION]), iv, sealed]);
}

/** Splits a blob into IV and ciphertext||tag, or throws if it is not a blob. */
export function unpackBlob(blob: Buffer): { iv: Buffer; sealed: Buffer } {
  if (blob.length < 1 + 12 + 16 || blob[0] !== BLOB_VERSION)
    throw new MasterKeyError("not a wrapped key blob");
  return { iv: blob.subarray(1, 13), sealed: blob.subarray(13) };
}

/** scrypt parameters, stored next to the salt so they can be raised later. */
export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** Default cost: 2^15 × 8 × 128 bytes = 32 MiB, about 0.1 s. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

/** Derives the master key from a passphrase. */
export function derivePassphraseKey(
  passphrase: string,
  salt: Buffer,
  params: ScryptParams,
): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    const maxmem = 128 * params.N * params.r * 2 + 1024 * 1024;
    scrypt(passphrase.normalize("NFC"), salt, 32, { ...params, maxmem }, (err, key) => {
      if (err) reject(new MasterKeyError(`cannot derive the master key: ${err.message}`));
      else {
        resolve(createSecretKey(key));
        key.fill(0);
      }
    });
  });
}

/** A master key held in this process's memory, derived from a passphrase. */
export class PassphraseMasterKey implements MasterKey {
  readonly kind = "passphrase" as const;
  readonly description: string;
  private readonly key: KeyObject;

  constructor(key: KeyObject, description: string) {
    this.key = key;
    this.description = description;
  }

  async wrap(plain: Buffer, aad: string): Promise<Buffer> {
    const iv = randomBytes(12);
    return packBlob(iv, aesGcmSeal(this.key, iv, Buffer.from(aad, "utf8"), plain));
  }

  async unwrap(blob: Buffer, aad: string): Promise<Buffer> {
    const { iv, sealed } = unpackBlob(blob);
    const plain = aesGcmOpen(this.key, iv, Buffer.from(aad, "utf8"), sealed);
    if (!plain) throw new MasterKeyError(`wrapped secret "${aad}" does not open under this master key`);
    return plain;
  }

  async close(): Promise<void> {}
}
