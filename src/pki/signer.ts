/**
 * Bridges @peculiar/x509 to a {@link PrivateKeyHandle}: the library builds the
 * to-be-signed bytes and asks a WebCrypto-shaped provider to sign them; our provider
 * passes them to the handle, so a CA key in a token or KMS signs without ever leaving it.
 */
import { webcrypto } from "node:crypto";
import * as asn1js from "asn1js";
import type { SignatureScheme } from "../keys/schemes.ts";
import { SCHEMES } from "../keys/schemes.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { PkiError } from "./errors.ts";

/** The WebCrypto algorithm description @peculiar/x509 turns into an AlgorithmIdentifier. */
export interface WebSigningAlgorithm {
  readonly name: "RSASSA-PKCS1-v1_5" | "RSA-PSS" | "ECDSA";
  readonly hash: "SHA-256" | "SHA-384" | "SHA-512";
  readonly saltLength?: number;
  readonly namedCurve?: string;
}

/** Everything a @peculiar/x509 generator needs to sign with a handle. */
export interface HandleSigner {
  /** Pass as the generator's `crypto` argument. */
  readonly crypto: Crypto;
  /** Pass as the generator's `signingKey`. */
  readonly signingKey: CryptoKey;
  /** Pass as the generator's `signingAlgorithm`. */
  readonly signingAlgorithm: WebSigningAlgorithm;
}

/** Signature schemes a CA may sign certificates and CRLs with (no SHA-1, no MD5). */
export const CA_SIGNATURE_SCHEMES = [
  "rsa_pkcs1_sha256",
  "rsa_pkcs1_sha384",
  "rsa_pkcs1_sha512",
  "rsa_pss_rsae_sha256",
  "rsa_pss_rsae_sha384",
  "rsa_pss_rsae_sha512",
  "ecdsa_secp256r1_sha256",
  "ecdsa_secp384r1_sha384",
  "ecdsa_secp521r1_sha512",
] as const satisfies readonly SignatureScheme[];

/** A scheme a CA may sign with. */
export type CaSignatureScheme = (typeof CA_SIGNATURE_SCHEMES)[number];

/** True when `name` is a scheme a CA may sign with. */
export function isCaSignatureScheme(name: string): name is CaSignatureScheme {
  return (CA_SIGNATURE_SCHEMES as readonly string[]).includes(name);
}

/** The default certificate signature scheme for a key: SHA-256 PKCS#1 for RSA, the curve's own hash for EC. */
export function defaultSchemeFor(handle: PrivateKeyHandle, pss = false): CaSignatureScheme {
  if (handle.type === "rsa") return pss ? "rsa_pss_rsae_sha256" : "rsa_pkcs1_sha256";
  if (handle.curve === "P-384") return "ecdsa_secp384r1_sha384";
  if (handle.curve === "P-521") return "ecdsa_secp521r1_sha512";
  return "ecdsa_secp256r1_sha256";
}

/** Checks that `scheme` suits the key, with a message that names both. */
export function checkSchemeForKey(handle: PrivateKeyHandle, scheme: CaSignatureScheme): void {
  if (SCHEMES[scheme].keyType !== handle.type) {
    throw new PkiError("bad-input", `signature algorithm ${scheme} does not suit the ${handle.type} key`);
  }
}

const webHash = { sha256: "SHA-256", sha384: "SHA-384", sha512: "SHA-512" } as const;

/** The WebCrypto algorithm for a scheme, as @peculiar/x509 maps it to an AlgorithmIdentifier. */
function webAlgorithmFor(scheme: CaSignatureScheme, handle: PrivateKeyHandle): WebSigningAlgorithm {
  const info = SCHEMES[scheme];
  const hash = webHash[info.hash as keyof typeof webHash];
  switch (info.padding) {
    case "pkcs1":
      return { name: "RSASSA-PKCS1-v1_5", hash };
    case "pss":
      // RFC 4055: salt as long as the digest, MGF1 with the same hash.
      return { name: "RSA-PSS", hash, saltLength: info.hashLength };
    case "ecdsa":
      return { name: "ECDSA", hash, namedCurve: handle.curve ?? "P-256" };
  }
}

/** Field size in bytes of an EC key's curve: the width of r and s in a raw signature. */
function ecFieldBytes(handle: PrivateKeyHandle): number {
  return Math.ceil(handle.bits / 8);
}

/**
 * DER Ecdsa-Sig-Value (what handles return) to the fixed-width r||s WebCrypto returns,
 * which @peculiar/x509 converts back to DER itself.
 */
export function ecdsaDerToRaw(der: Uint8Array, fieldBytes: number): Uint8Array {
  const parsed = asn1js.fromBER(der);
  const seq = parsed.result;
  const parts = seq instanceof asn1js.Sequence ? seq.valueBlock.value : [];
  const [r, s] = parts;
  if (
    parsed.offset !== der.length ||
    parts.length !== 2 ||
    !(r instanceof asn1js.Integer) ||
    !(s instanceof asn1js.Integer)
  ) {
    throw new PkiError("key", "the key returned a malformed ECDSA signature");
  }
  const out = new Uint8Array(fieldBytes * 2);
  const put = (int: asn1js.Integer, at: number): void => {
    let bytes = int.valueBlock.valueHexView;
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    bytes = bytes.subarray(start);
    if (bytes.length > fieldBytes) throw new PkiError("key", "the key returned an oversized ECDSA signature");
    out.set(bytes, at + fieldBytes - bytes.length);
  };
  put(r, 0);
  put(s, fieldBytes);
  return out;
}

/** The key object handed to @peculiar/x509: a CryptoKey look-alike that carries our handle. */
interface HandleCryptoKey {
  readonly type: "private";
  readonly extractable: false;
  readonly algorithm: { readonly name: string; readonly namedCurve?: string };
  readonly usages: readonly ["sign"];
  readonly handle: PrivateKeyHandle;
  readonly scheme: CaSignatureScheme;
}

function isHandleKey(key: unknown): key is HandleCryptoKey {
  return typeof key === "object" && key !== null && "handle" in key && "scheme" in key;
}

/**
 * A signer for @peculiar/x509 generators that signs through `handle` with `scheme`.
 * The provider is passed per call rather than registered globally, so several CAs can
 * sign at once in one process.
 */
export function handleSigner(handle: PrivateKeyHandle, scheme: CaSignatureScheme): HandleSigner {
  checkSchemeForKey(handle, scheme);
  const signingAlgorithm = webAlgorithmFor(scheme, handle);
  const key: HandleCryptoKey = {
    type: "private",
    extractable: false,
    // The generator merges the key's algorithm over signingAlgorithm, so it only names
    // the family (and curve) and leaves the hash to signingAlgorithm.
    algorithm:
      signingAlgorithm.namedCurve === undefined
        ? { name: signingAlgorithm.name }
        : { name: signingAlgorithm.name, namedCurve: signingAlgorithm.namedCurve },
    usages: ["sign"],
    handle,
    scheme,
  };
  const subtle = {
    async sign(_algorithm: unknown, signingKey: unknown, data: BufferSource): Promise<ArrayBuffer> {
      if (!isHandleKey(signingKey)) throw new PkiError("internal", "signing key is not a key handle");
      const bytes = toBytes(data);
      const signature = await signingKey.handle.sign(signingKey.scheme, bytes);
      const out =
        SCHEMES[signingKey.scheme].padding === "ecdsa"
          ? ecdsaDerToRaw(signature, ecFieldBytes(signingKey.handle))
          : new Uint8Array(signature);
      return out.slice().buffer;
    },
    digest: (algorithm: AlgorithmIdentifier, data: BufferSource) => webcrypto.subtle.digest(algorithm, data),
  };
  const provider = {
    subtle,
    getRandomValues: (array: Uint8Array) => webcrypto.getRandomValues(array),
    randomUUID: () => webcrypto.randomUUID(),
  };
  // The generators call only subtle.sign/digest and getRandomValues; the casts describe
  // our partial implementation to their DOM-typed signatures.
  return {
    crypto: provider as unknown as Crypto,
    signingKey: key as unknown as CryptoKey,
    signingAlgorithm,
  };
}

/** A byte view over any BufferSource. */
function toBytes(data: BufferSource): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
