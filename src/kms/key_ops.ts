/**
 * Cryptography with KMS key material, once unwrapped: generation, signatures over messages
 * or digests, RSA-OAEP and AES-GCM. Everything is node:crypto (OpenSSL); the asynchronous
 * forms run on libuv's thread pool so the server's event loop keeps serving.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPair,
  type KeyObject,
  privateDecrypt,
  privateEncrypt,
  publicDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from "node:crypto";
import { promisify } from "node:util";
import { digestInfo, emsaPssEncode } from "../keys/rsa_padding.ts";
import { ecdsaSignDigest, ecdsaVerifyDigest } from "./ecdsa_digest.ts";
import { KmsServiceError } from "./errors.ts";
import { pssVerify } from "./pss.ts";
import { KEY_SPECS, type KeySpec, type SignAlgorithmInfo } from "./specs.ts";

const generateKeyPairAsync = promisify(generateKeyPair);
const signAsync = promisify(sign);
const verifyAsync = promisify(verify);

/** Fresh key material: what gets wrapped (PKCS#8 DER or raw AES bytes) and the public SPKI DER. */
export interface NewMaterial {
  /** Secret bytes; the caller wraps them and then zeroes this buffer. */
  readonly secret: Buffer;
  /** SPKI DER for asymmetric keys (public, stored in the clear); undefined for AES. */
  readonly publicDer: Buffer | undefined;
}

/** Generates key material for a spec. */
export async function generateMaterial(spec: KeySpec): Promise<NewMaterial> {
  const info = KEY_SPECS[spec];
  if (info.kind === "aes") return { secret: randomBytes(info.bits / 8), publicDer: undefined };
  const pair =
    info.kind === "rsa"
      ? await generateKeyPairAsync("rsa", { modulusLength: info.bits })
      : await generateKeyPairAsync("ec", { namedCurve: info.curve });
  return {
    secret: pair.privateKey.export({ type: "pkcs8", format: "der" }),
    publicDer: pair.publicKey.export({ type: "spki", format: "der" }),
  };
}

/** An unwrapped key version, ready for operations. */
export type LoadedKey =
  | {
      readonly kind: "rsa" | "ec";
      readonly privateKey: KeyObject;
      readonly publicKey: KeyObject;
      /** RSA modulus length in bits (for raw-digest padding); EC field size. */
      readonly bits: number;
    }
  | { readonly kind: "aes"; readonly secretKey: KeyObject };

/** Turns unwrapped material into key objects. The caller zeroes `secret` afterwards. */
export function loadMaterial(spec: KeySpec, secret: Buffer): LoadedKey {
  const info = KEY_SPECS[spec];
  if (info.kind === "aes") return { kind: "aes", secretKey: createSecretKey(Buffer.from(secret)) };
  const privateKey = createPrivateKey({ key: secret, format: "der", type: "pkcs8" });
  const bits =
    info.kind === "rsa"
      ? (privateKey.asymmetricKeyDetails?.modulusLength ?? info.bits)
      : (info.bits as number);
  return { kind: info.kind, privateKey, publicKey: createPublicKey(privateKey), bits };
}

function asymmetric(key: LoadedKey, alg: SignAlgorithmInfo): Extract<LoadedKey, { kind: "rsa" | "ec" }> {
  if (key.kind !== alg.kind) {
    throw new KmsServiceError(
      "InvalidParameter",
      `the algorithm does not suit this ${key.kind.toUpperCase()} key`,
    );
  }
  return key as Extract<LoadedKey, { kind: "rsa" | "ec" }>;
}

function rsaOptions(alg: SignAlgorithmInfo) {
  return alg.padding === "pss"
    ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.hashLength }
    : { padding: constants.RSA_PKCS1_PADDING };
}

/** Signs a whole message (MessageType RAW). RSA gives the signature block, ECDSA DER. */
export function signMessage(key: LoadedKey, alg: SignAlgorithmInfo, message: Buffer): Promise<Buffer> {
  const k = asymmetric(key, alg);
  return signAsync(
    alg.hash,
    message,
    k.kind === "rsa" ? { key: k.privateKey, ...rsaOptions(alg) } : k.privateKey,
  );
}

/** Signs a precomputed digest (MessageType DIGEST); its length must match the algorithm's hash. */
export async function signDigest(key: LoadedKey, alg: SignAlgorithmInfo, digest: Buffer): Promise<Buffer> {
  const k = asymmetric(key, alg);
  checkDigestLength(alg, digest);
  if (k.kind === "ec") return ecdsaSignDigest(k.privateKey, digest);
  const block =
    alg.padding === "pss" ? emsaPssEncode(alg.hash, digest, k.bits) : digestInfo(alg.hash, digest);
  const padding = alg.padding === "pss" ? constants.RSA_NO_PADDING : constants.RSA_PKCS1_PADDING;
  return privateEncrypt({ key: k.privateKey, padding }, block);
}

/** Verifies a signature over a whole message. */
export async function verifyMessage(
  key: LoadedKey,
  alg: SignAlgorithmInfo,
  message: Buffer,
  signature: Buffer,
): Promise<boolean> {
  const k = asymmetric(key, alg);
  try {
    return await verifyAsync(
      alg.hash,
      message,
      k.kind === "rsa" ? { key: k.publicKey, ...rsaOptions(alg) } : k.publicKey,
      signature,
    );
  } catch {
    return false; // malformed signature bytes are a failed verification, not a fault
  }
}

/** Verifies a signature over a precomputed digest. */
export async function verifyDigest(
  key: LoadedKey,
  alg: SignAlgorithmInfo,
  digest: Buffer,
  signature: Buffer,
): Promise<boolean> {
  const k = asymmetric(key, alg);
  checkDigestLength(alg, digest);
  if (k.kind === "ec") return ecdsaVerifyDigest(k.publicKey, digest, signature);
  if (signature.length !== Math.ceil(k.bits / 8)) return false;
  try {
    if (alg.padding === "pss") {
      const block = publicDecrypt({ key: k.publicKey, padding: constants.RSA_NO_PADDING }, signature);
      return pssVerify(alg.hash, digest, block, k.bits);
    }
    const recovered = publicDecrypt({ key: k.publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
    const expected = digestInfo(alg.hash, digest);
    return recovered.length === expected.length && timingSafeEqual(recovered, expected);
  } catch {
    return false;
  }
}

function checkDigestLength(alg: SignAlgorithmInfo, digest: Buffer): void {
  if (digest.length !== alg.hashLength) {
    throw new KmsServiceError(
      "InvalidParameter",
      `a ${alg.hash.toUpperCase()} digest is ${alg.hashLength} bytes, got ${digest.length}`,
    );
  }
}

/** RSA-OAEP encryption with the key's public half (and an OAEP label, for Advance blobs). */
export function rsaOaepEncrypt(key: LoadedKey, oaepHash: string, plaintext: Buffer, label?: Buffer): Buffer {
  if (key.kind !== "rsa") throw new KmsServiceError("InvalidParameter", "RSAES_OAEP needs an RSA key");
  try {
    return publicEncrypt(
      {
        key: key.publicKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash,
        ...(label ? { oaepLabel: label } : {}),
      },
      plaintext,
    );
  } catch {
    throw new KmsServiceError("InvalidParameter", "the plaintext is too long for this RSA key and padding");
  }
}

/**
 * RSA-OAEP decryption; undefined when the ciphertext does not decrypt under this key (or with
 * this label: the Advance blob's header and Aad).
 */
export function rsaOaepDecrypt(
  key: LoadedKey,
  oaepHash: string,
  ciphertext: Buffer,
  label?: Buffer,
): Buffer | undefined {
  if (key.kind !== "rsa") throw new KmsServiceError("InvalidParameter", "RSAES_OAEP needs an RSA key");
  try {
    return privateDecrypt(
      {
        key: key.privateKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash,
        ...(label ? { oaepLabel: label } : {}),
      },
      ciphertext,
    );
  } catch {
    return undefined;
  }
}

/** AES-256-GCM sealing: returns ciphertext || 16-byte tag. */
export function aesGcmSeal(key: KeyObject, iv: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(aad);
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** AES-256-GCM opening of ciphertext || tag; undefined when authentication fails. */
export function aesGcmOpen(key: KeyObject, iv: Buffer, aad: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < 16 || iv.length !== 12) return undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
  } catch {
    return undefined;
  }
}
