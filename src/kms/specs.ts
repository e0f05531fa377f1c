/**
 * What a KMS key can be (specs), what it is for (usages) and which algorithms it accepts.
 * One table per concept; the service, the admin CLI and the client all consult these.
 */

/** Key specs. `Aliyun_AES_256` and `AES_256` are the same thing under two names. */
export const KEY_SPECS = {
  RSA_2048: { kind: "rsa", bits: 2048, curve: undefined },
  RSA_3072: { kind: "rsa", bits: 3072, curve: undefined },
  RSA_4096: { kind: "rsa", bits: 4096, curve: undefined },
  EC_P256: { kind: "ec", bits: 256, curve: "prime256v1" },
  EC_P384: { kind: "ec", bits: 384, curve: "secp384r1" },
  Aliyun_AES_256: { kind: "aes", bits: 256, curve: undefined },
  AES_256: { kind: "aes", bits: 256, curve: undefined },
} as const;

/** A key spec name. */
export type KeySpec = keyof typeof KEY_SPECS;

/** The algorithm family of a spec. */
export type KeyKind = (typeof KEY_SPECS)[KeySpec]["kind"];

/** True when `name` is a spec. */
export function isKeySpec(name: string): name is KeySpec {
  return Object.hasOwn(KEY_SPECS, name);
}

/** Key usages. */
export const KEY_USAGES = ["SIGN/VERIFY", "ENCRYPT/DECRYPT"] as const;

/** A key usage. */
export type KeyUsage = (typeof KEY_USAGES)[number];

/** True when `name` is a usage. */
export function isKeyUsage(name: string): name is KeyUsage {
  return (KEY_USAGES as readonly string[]).includes(name);
}

/** The usages a spec allows: RSA both, EC signing only, AES encryption only. */
export function usagesFor(spec: KeySpec): readonly KeyUsage[] {
  const kind = KEY_SPECS[spec].kind;
  if (kind === "rsa") return KEY_USAGES;
  if (kind === "ec") return ["SIGN/VERIFY"];
  return ["ENCRYPT/DECRYPT"];
}

/** Key lifecycle states. Only Enabled keys do cryptography. */
export const KEY_STATES = ["Enabled", "Disabled", "PendingDeletion"] as const;

/** A key state. */
export type KeyState = (typeof KEY_STATES)[number];

/** Digest names as node:crypto spells them. */
export type DigestName = "sha256" | "sha384" | "sha512";

/** Facts about one signature algorithm. */
export interface SignAlgorithmInfo {
  readonly kind: "rsa" | "ec";
  readonly padding: "pss" | "pkcs1" | "ecdsa";
  readonly hash: DigestName;
  /** Digest length in bytes: the PSS salt length and the size a DIGEST message must have. */
  readonly hashLength: number;
}

/** Signature algorithms by protocol name. PSS always uses salt length = hash length. */
export const SIGN_ALGORITHMS: Readonly<Record<string, SignAlgorithmInfo>> = {
  RSA_PSS_SHA_256: { kind: "rsa", padding: "pss", hash: "sha256", hashLength: 32 },
  RSA_PSS_SHA_384: { kind: "rsa", padding: "pss", hash: "sha384", hashLength: 48 },
  RSA_PSS_SHA_512: { kind: "rsa", padding: "pss", hash: "sha512", hashLength: 64 },
  RSA_PKCS1_SHA_256: { kind: "rsa", padding: "pkcs1", hash: "sha256", hashLength: 32 },
  RSA_PKCS1_SHA_384: { kind: "rsa", padding: "pkcs1", hash: "sha384", hashLength: 48 },
  RSA_PKCS1_SHA_512: { kind: "rsa", padding: "pkcs1", hash: "sha512", hashLength: 64 },
  ECDSA_SHA_256: { kind: "ec", padding: "ecdsa", hash: "sha256", hashLength: 32 },
  ECDSA_SHA_384: { kind: "ec", padding: "ecdsa", hash: "sha384", hashLength: 48 },
  ECDSA_SHA_512: { kind: "ec", padding: "ecdsa", hash: "sha512", hashLength: 64 },
};

/** Looks a signature algorithm up by name. */
export function signAlgorithm(name: string): SignAlgorithmInfo | undefined {
  return Object.hasOwn(SIGN_ALGORITHMS, name) ? SIGN_ALGORITHMS[name] : undefined;
}

/** RSA encryption algorithms and their OAEP hash. */
export const RSA_ENCRYPT_ALGORITHMS: Readonly<Record<string, "sha256" | "sha1">> = {
  RSAES_OAEP_SHA_256: "sha256",
  RSAES_OAEP_SHA_1: "sha1",
};

/** The symmetric algorithm (AES-256-GCM, 12-byte IV, 16-byte tag). */
export const SYMMETRIC_ALGORITHM = "AES_GCM";

/** The algorithm a client gets when it names none, per key kind and operation. */
export function defaultAlgorithm(kind: KeyKind, operation: "sign" | "encrypt"): string {
  if (operation === "sign") return kind === "ec" ? "ECDSA_SHA_256" : "RSA_PSS_SHA_256";
  return kind === "aes" ? SYMMETRIC_ALGORITHM : "RSAES_OAEP_SHA_256";
}
