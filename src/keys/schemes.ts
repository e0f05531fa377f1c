/**
 * Signature schemes by their TLS names (RFC 8446 §4.2.3), plus the TLS 1.0/1.1 forms.
 * The table is the single place that says which hash, padding and key each scheme uses.
 */
import type { KeyType, NamedCurve } from "./types.ts";

/** Hash functions used by signature schemes. */
export type HashName = "md5-sha1" | "sha1" | "sha256" | "sha384" | "sha512";

/** How the digest becomes a signature. */
export type SignaturePadding = "pkcs1" | "pss" | "ecdsa";

/** The facts about one signature scheme. */
export interface SchemeInfo {
  /** The TLS name, e.g. rsa_pss_rsae_sha256. */
  readonly name: SignatureScheme;
  /** The TLS SignatureScheme code point; undefined for forms that have none (TLS 1.0/1.1). */
  readonly code: number | undefined;
  /** Which key type can produce it. */
  readonly keyType: KeyType;
  /** The hash applied to the message. */
  readonly hash: HashName;
  /** Digest length in bytes (also the PSS salt length). */
  readonly hashLength: number;
  /** PKCS#1 v1.5, PSS or ECDSA. */
  readonly padding: SignaturePadding;
  /** For TLS 1.3 ECDSA schemes, the curve the key must be on. */
  readonly curve: NamedCurve | undefined;
}

const table = {
  rsa_pkcs1_md5_sha1: [undefined, "rsa", "md5-sha1", 36, "pkcs1", undefined],
  rsa_pkcs1_sha1: [0x0201, "rsa", "sha1", 20, "pkcs1", undefined],
  rsa_pkcs1_sha256: [0x0401, "rsa", "sha256", 32, "pkcs1", undefined],
  rsa_pkcs1_sha384: [0x0501, "rsa", "sha384", 48, "pkcs1", undefined],
  rsa_pkcs1_sha512: [0x0601, "rsa", "sha512", 64, "pkcs1", undefined],
  rsa_pss_rsae_sha256: [0x0804, "rsa", "sha256", 32, "pss", undefined],
  rsa_pss_rsae_sha384: [0x0805, "rsa", "sha384", 48, "pss", undefined],
  rsa_pss_rsae_sha512: [0x0806, "rsa", "sha512", 64, "pss", undefined],
  ecdsa_sha1: [0x0203, "ec", "sha1", 20, "ecdsa", undefined],
  ecdsa_secp256r1_sha256: [0x0403, "ec", "sha256", 32, "ecdsa", "P-256"],
  ecdsa_secp384r1_sha384: [0x0503, "ec", "sha384", 48, "ecdsa", "P-384"],
  ecdsa_secp521r1_sha512: [0x0603, "ec", "sha512", 64, "ecdsa", "P-521"],
} as const satisfies Record<
  string,
  readonly [number | undefined, KeyType, HashName, number, SignaturePadding, NamedCurve | undefined]
>;

/** A signature scheme name. */
export type SignatureScheme = keyof typeof table;

/** All schemes, keyed by name. */
export const SCHEMES: Readonly<Record<SignatureScheme, SchemeInfo>> = Object.fromEntries(
  Object.entries(table).map(([name, [code, keyType, hash, hashLength, padding, curve]]) => [
    name,
    { name, code, keyType, hash, hashLength, padding, curve },
  ]),
) as Record<SignatureScheme, SchemeInfo>;

const byCode = new Map<number, SchemeInfo>(
  Object.values(SCHEMES)
    .filter((s) => s.code !== undefined)
    .map((s) => [s.code as number, s]),
);

/** Looks a scheme up by its TLS code point. */
export function schemeByCode(code: number): SchemeInfo | undefined {
  return byCode.get(code);
}

/** True when `name` is a known scheme name. */
export function isSignatureScheme(name: string): name is SignatureScheme {
  return Object.hasOwn(SCHEMES, name);
}

/**
 * The schemes a key of this type (and curve) can produce, strongest-first within each
 * family. ECDSA schemes in the table name a curve for TLS 1.3, but in TLS 1.2 any curve
 * may be used with any hash, so they are all listed for every EC key.
 */
export function schemesForKey(type: KeyType, curve: NamedCurve | undefined): SignatureScheme[] {
  if (type === "rsa") {
    return [
      "rsa_pss_rsae_sha256",
      "rsa_pss_rsae_sha384",
      "rsa_pss_rsae_sha512",
      "rsa_pkcs1_sha256",
      "rsa_pkcs1_sha384",
      "rsa_pkcs1_sha512",
      "rsa_pkcs1_sha1",
      "rsa_pkcs1_md5_sha1",
    ];
  }
  const own: Record<NamedCurve, SignatureScheme> = {
    "P-256": "ecdsa_secp256r1_sha256",
    "P-384": "ecdsa_secp384r1_sha384",
    "P-521": "ecdsa_secp521r1_sha512",
  };
  const first = curve ? [own[curve]] : [];
  const rest: SignatureScheme[] = [
    "ecdsa_secp256r1_sha256",
    "ecdsa_secp384r1_sha384",
    "ecdsa_secp521r1_sha512",
  ];
  return [...first, ...rest.filter((s) => !first.includes(s)), "ecdsa_sha1"];
}
