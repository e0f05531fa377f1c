/**
 * Signature algorithms and public keys: what a certificate or CRL says it was signed
 * with, whether that is acceptable, and the node:crypto call that checks it. Policy
 * (web PKI): RSA PKCS#1 v1.5 and RSA-PSS with SHA-256/384/512, ECDSA with
 * SHA-256/384/512, Ed25519 and Ed448 are accepted; SHA-1, MD5, SHA-224 and DSA are not.
 * Keys: RSA of 2048 to 8192 bits with an odd exponent from 3 to 2^32, EC on P-256/P-384/P-521,
 * Ed25519, Ed448.
 */
import { constants, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { children, DerReader, decodeOid, decodeSmallInteger, readSingle, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";

/** Hash functions that can appear in certificate signatures. */
export type HashName = "md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512";

/** The signature family, which decides the node:crypto options and the key type needed. */
export type SignatureKind = "rsa-pkcs1" | "rsa-pss" | "ecdsa" | "eddsa" | "dsa" | "unknown";

/** A decoded AlgorithmIdentifier of a signature. */
export interface SignatureAlgorithm {
  /** The algorithm OID. */
  readonly oid: string;
  /** A readable name, e.g. "sha256WithRSAEncryption", "rsassaPss(sha384, salt 48)". */
  readonly name: string;
  readonly kind: SignatureKind;
  /** The message digest; null for EdDSA (which hashes internally). */
  readonly hash: HashName | null;
  /** RSA-PSS salt length in bytes. */
  readonly saltLength?: number;
  /** Why this algorithm is refused; undefined when it is acceptable. */
  readonly weakness?: string;
}

/** Public key families. */
export type KeyKind = "rsa" | "rsa-pss" | "ec" | "ed25519" | "ed448" | "dsa" | "other";

/** What the validator needs to know about a public key. */
export interface KeyInfo {
  readonly kind: KeyKind;
  /** RSA/DSA modulus size or EC/EdDSA field size in bits (0 when unknown). */
  readonly bits: number;
  /** Standard curve name for EC keys: "P-256", "P-384", "P-521", or OpenSSL's name for others. */
  readonly curve?: string;
  /** Why this key is refused; undefined when acceptable. */
  readonly weakness?: string;
}

/** The outcome of checking one signature. */
export type SignatureCheck =
  | { ok: true }
  | { ok: false; code: "bad-signature" | "weak-signature"; detail: string };

const HASH_OIDS: Record<string, HashName> = {
  "1.2.840.113549.2.5": "md5",
  "1.3.14.3.2.26": "sha1",
  "2.16.840.1.101.3.4.2.4": "sha224",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

/** Fixed (non-parameterised) signature algorithms by OID. */
const FIXED: Record<string, { name: string; kind: SignatureKind; hash: HashName | null }> = {
  "1.2.840.113549.1.1.4": { name: "md5WithRSAEncryption", kind: "rsa-pkcs1", hash: "md5" },
  "1.2.840.113549.1.1.5": { name: "sha1WithRSAEncryption", kind: "rsa-pkcs1", hash: "sha1" },
  "1.2.840.113549.1.1.14": { name: "sha224WithRSAEncryption", kind: "rsa-pkcs1", hash: "sha224" },
  "1.2.840.113549.1.1.11": { name: "sha256WithRSAEncryption", kind: "rsa-pkcs1", hash: "sha256" },
  "1.2.840.113549.1.1.12": { name: "sha384WithRSAEncryption", kind: "rsa-pkcs1", hash: "sha384" },
  "1.2.840.113549.1.1.13": { name: "sha512WithRSAEncryption", kind: "rsa-pkcs1", hash: "sha512" },
  "1.2.840.10045.4.1": { name: "ecdsa-with-SHA1", kind: "ecdsa", hash: "sha1" },
  "1.2.840.10045.4.3.1": { name: "ecdsa-with-SHA224", kind: "ecdsa", hash: "sha224" },
  "1.2.840.10045.4.3.2": { name: "ecdsa-with-SHA256", kind: "ecdsa", hash: "sha256" },
  "1.2.840.10045.4.3.3": { name: "ecdsa-with-SHA384", kind: "ecdsa", hash: "sha384" },
  "1.2.840.10045.4.3.4": { name: "ecdsa-with-SHA512", kind: "ecdsa", hash: "sha512" },
  "1.3.101.112": { name: "Ed25519", kind: "eddsa", hash: null },
  "1.3.101.113": { name: "Ed448", kind: "eddsa", hash: null },
  "1.2.840.10040.4.3": { name: "dsa-with-sha1", kind: "dsa", hash: "sha1" },
  "2.16.840.1.101.3.4.3.2": { name: "dsa-with-sha256", kind: "dsa", hash: "sha256" },
};

const RSASSA_PSS = "1.2.840.113549.1.1.10";
const MGF1 = "1.2.840.113549.1.1.8";
const STRONG_HASHES: ReadonlySet<HashName | null> = new Set(["sha256", "sha384", "sha512", null]);

/** Decodes a signature AlgorithmIdentifier (full DER SEQUENCE). Unknown algorithms decode with a weakness. */
export function parseSignatureAlgorithm(der: Buffer): SignatureAlgorithm {
  const seq = readSingle(der, Tag.SEQUENCE, "signature algorithm");
  const reader = new DerReader(seq.content, "signature algorithm");
  const oid = decodeOid(reader.read(Tag.OID).content, "signature algorithm");
  const params = reader.done ? undefined : reader.read();
  reader.end();
  if (oid === RSASSA_PSS) return parsePss(params?.bytes);
  const fixed = FIXED[oid];
  if (!fixed)
    return { oid, name: oid, kind: "unknown", hash: null, weakness: `unsupported algorithm ${oid}` };
  // RFC 4055 puts NULL parameters on PKCS#1 algorithms; ECDSA and EdDSA must have none.
  const paramsOk =
    params === undefined ||
    (fixed.kind === "rsa-pkcs1" && params.tag === Tag.NULL && params.content.length === 0);
  if (!paramsOk) throw new X509ParseError(`signature algorithm ${fixed.name}: unexpected parameters`);
  let weakness: string | undefined;
  if (fixed.kind === "dsa") weakness = "DSA signatures are not accepted";
  else if (!STRONG_HASHES.has(fixed.hash))
    weakness = `${fixed.hash?.toUpperCase()} signatures are not accepted`;
  return { oid, ...fixed, ...(weakness ? { weakness } : {}) };
}

function parsePss(params: Buffer | undefined): SignatureAlgorithm {
  if (!params) throw new X509ParseError("RSASSA-PSS: missing parameters");
  const seq = readSingle(params, Tag.SEQUENCE, "RSASSA-PSS parameters");
  // RFC 4055 defaults: SHA-1, MGF1 with SHA-1, 20-byte salt, trailer 1.
  let hash: HashName | undefined = "sha1";
  let mgfHash: HashName | undefined = "sha1";
  let saltLength = 20;
  for (const field of children(seq, "RSASSA-PSS parameters")) {
    const inner = readSingle(
      field.content,
      field.tag === 0xa2 || field.tag === 0xa3 ? Tag.INTEGER : Tag.SEQUENCE,
      "RSASSA-PSS parameters",
    );
    if (field.tag === 0xa0) hash = hashFromAlgorithmId(inner.bytes);
    else if (field.tag === 0xa1) {
      const mgf = new DerReader(inner.content, "RSASSA-PSS mask generation");
      if (decodeOid(mgf.read(Tag.OID).content) !== MGF1)
        throw new X509ParseError("RSASSA-PSS: mask generation is not MGF1");
      mgfHash = hashFromAlgorithmId(mgf.read(Tag.SEQUENCE).bytes);
      mgf.end();
    } else if (field.tag === 0xa2) saltLength = decodeSmallInteger(inner.content, "RSASSA-PSS salt length");
    else if (field.tag === 0xa3) {
      if (decodeSmallInteger(inner.content, "RSASSA-PSS trailer") !== 1)
        throw new X509ParseError("RSASSA-PSS: trailer field must be 1");
    } else throw new X509ParseError("RSASSA-PSS: unexpected parameter field");
  }
  const name = `rsassaPss(${hash ?? "unknown hash"}, salt ${saltLength})`;
  let weakness: string | undefined;
  if (!hash || !STRONG_HASHES.has(hash))
    weakness = `RSA-PSS with ${hash?.toUpperCase() ?? "an unknown hash"} is not accepted`;
  else if (mgfHash !== hash)
    weakness = "RSA-PSS with an MGF1 hash different from the message hash is not accepted";
  return {
    oid: RSASSA_PSS,
    name,
    kind: "rsa-pss",
    hash: hash ?? null,
    saltLength,
    ...(weakness ? { weakness } : {}),
  };
}

function hashFromAlgorithmId(der: Buffer): HashName | undefined {
  const seq = readSingle(der, Tag.SEQUENCE, "hash algorithm");
  const reader = new DerReader(seq.content, "hash algorithm");
  const oid = decodeOid(reader.read(Tag.OID).content);
  const params = reader.done ? undefined : reader.read(Tag.NULL);
  reader.end();
  if (params && params.content.length !== 0) throw new X509ParseError("hash algorithm: bad NULL parameters");
  return HASH_OIDS[oid];
}

const EC_CURVES: Record<string, { name: string; bits: number }> = {
  prime256v1: { name: "P-256", bits: 256 },
  secp384r1: { name: "P-384", bits: 384 },
  secp521r1: { name: "P-521", bits: 521 },
  prime192v1: { name: "P-192", bits: 192 },
  secp224r1: { name: "P-224", bits: 224 },
};
const ACCEPTED_CURVES = new Set(["P-256", "P-384", "P-521"]);
/** Smallest RSA modulus accepted anywhere in a chain. */
export const MIN_RSA_BITS = 2048;
/** Largest RSA modulus accepted: bigger keys make each signature check cost far more and serve no one. */
export const MAX_RSA_BITS = 8192;
/** Largest RSA public exponent accepted, as Go: a huge exponent makes verification as slow as signing. */
export const MAX_RSA_EXPONENT = 2n ** 32n;

/**
 * Why using this key would cost far more than any honest key (an RSA modulus over
 * {@link MAX_RSA_BITS} bits or an exponent over {@link MAX_RSA_EXPONENT}), or undefined.
 * Checked before a peer's key is used at all, even where its certificate is not verified.
 */
export function costlyKeyReason(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType !== "rsa" && key.asymmetricKeyType !== "rsa-pss") return undefined;
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  const exponent = key.asymmetricKeyDetails?.publicExponent ?? 0n;
  if (bits > MAX_RSA_BITS) return `RSA-${bits} is above the ${MAX_RSA_BITS}-bit maximum`;
  if (exponent > MAX_RSA_EXPONENT)
    return `RSA public exponent of ${exponent.toString(2).length} bits is above the maximum of 2^32`;
  return undefined;
}

/** Describes a public key and decides whether its strength is acceptable. */
export function describeKey(key: KeyObject): KeyInfo {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "rsa":
    case "rsa-pss": {
      const bits = details.modulusLength ?? 0;
      const exponent = details.publicExponent ?? 0n;
      let weakness: string | undefined;
      if (bits < MIN_RSA_BITS) weakness = `RSA-${bits} is below the ${MIN_RSA_BITS}-bit minimum`;
      else weakness = costlyKeyReason(key);
      if (!weakness && (exponent < 3n || exponent % 2n === 0n))
        weakness = `RSA public exponent ${exponent} is not acceptable (it must be odd and at least 3)`;
      return { kind: key.asymmetricKeyType, bits, ...(weakness ? { weakness } : {}) };
    }
    case "ec": {
      const openSslName = details.namedCurve ?? "unknown";
      const curve = EC_CURVES[openSslName];
      const name = curve?.name ?? openSslName;
      const weakness = ACCEPTED_CURVES.has(name) ? undefined : `EC curve ${name} is not accepted`;
      return { kind: "ec", bits: curve?.bits ?? 0, curve: name, ...(weakness ? { weakness } : {}) };
    }
    case "ed25519":
      return { kind: "ed25519", bits: 256 };
    case "ed448":
      return { kind: "ed448", bits: 448 };
    case "dsa":
      return { kind: "dsa", bits: details.modulusLength ?? 0, weakness: "DSA keys are not accepted" };
    default:
      return {
        kind: "other",
        bits: 0,
        weakness: `${key.asymmetricKeyType ?? "unknown"} keys are not accepted`,
      };
  }
}

/** The key types able to produce a signature of `alg` (EdDSA is tied to one curve per OID). */
function keyTypesFor(alg: SignatureAlgorithm): readonly string[] {
  switch (alg.kind) {
    case "rsa-pkcs1":
      return ["rsa"];
    case "rsa-pss":
      return ["rsa", "rsa-pss"];
    case "ecdsa":
      return ["ec"];
    case "eddsa":
      return alg.oid === "1.3.101.112" ? ["ed25519"] : ["ed448"];
    case "dsa":
      return ["dsa"];
    default:
      return [];
  }
}

/**
 * Checks `signature` over `data` with `key` under `alg`, refusing weak algorithms before
 * any cryptography runs. Never throws: malformed signatures are reported as bad.
 */
export function verifySignature(
  alg: SignatureAlgorithm,
  data: Buffer,
  signature: Buffer,
  key: KeyObject,
): SignatureCheck {
  if (alg.weakness)
    return { ok: false, code: "weak-signature", detail: `signed with ${alg.name}: ${alg.weakness}` };
  if (!keyTypesFor(alg).includes(key.asymmetricKeyType ?? "")) {
    return {
      ok: false,
      code: "bad-signature",
      detail: `${alg.name} signature cannot come from a ${key.asymmetricKeyType} key`,
    };
  }
  try {
    const options =
      alg.kind === "rsa-pss"
        ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.saltLength ?? 20 }
        : alg.kind === "rsa-pkcs1"
          ? { key, padding: constants.RSA_PKCS1_PADDING }
          : alg.kind === "ecdsa"
            ? { key, dsaEncoding: "der" as const }
            : key;
    if (cryptoVerify(alg.hash, data, options, signature)) return { ok: true };
  } catch {
    // OpenSSL throws on structurally broken signatures (e.g. a mangled ECDSA DER); that is a bad signature too.
  }
  return { ok: false, code: "bad-signature", detail: `${alg.name} signature does not verify` };
}
