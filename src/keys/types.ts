/**
 * The one seam for private keys hsmkit cannot see: a file, a PKCS#11 token or a KMS.
 * Everything above keys/ (TLS, the CA, file signing) talks to a key only through this.
 */
import type { KeyObject } from "node:crypto";
import type { SignatureScheme } from "./schemes.ts";

/** The algorithm family of a key pair. */
export type KeyType = "rsa" | "ec";

/** Named elliptic curves hsmkit handles. */
export type NamedCurve = "P-256" | "P-384" | "P-521";

/** Message input to {@link PrivateKeyHandle.sign}: bytes in memory, or a stream hashed as it arrives. */
export type SignInput = Uint8Array | AsyncIterable<Uint8Array>;

/**
 * An asynchronous private key. The private half never leaves its backend; the handle
 * exposes the public key and performs signatures and RSA decryptions on request.
 */
export interface PrivateKeyHandle {
  /** RSA or EC. */
  readonly type: KeyType;
  /** RSA modulus length or EC field size, in bits. */
  readonly bits: number;
  /** The curve for EC keys; undefined for RSA. */
  readonly curve: NamedCurve | undefined;
  /** The public key as a Node KeyObject (type "public"). */
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER of the public key. */
  readonly spki: Buffer;
  /** Signature schemes this key can perform, in preference order. */
  readonly schemes: readonly SignatureScheme[];
  /** A description safe to print in messages and logs (never a PIN or passphrase). */
  readonly description: string;

  /**
   * Signs a message with the given scheme; the handle hashes it (streaming input is
   * hashed as it arrives). RSA returns the signature block, ECDSA a DER `Ecdsa-Sig-Value`.
   */
  sign(scheme: SignatureScheme, message: SignInput): Promise<Buffer>;

  /**
   * Signs a precomputed digest (the scheme's hash; for rsa_pkcs1_md5_sha1, MD5||SHA-1).
   * Absent where the backend can only sign whole messages.
   */
  signDigest?(scheme: SignatureScheme, digest: Uint8Array): Promise<Buffer>;

  /**
   * RSA PKCS#1 v1.5 decryption. Rejects with a {@link KeyError} of kind "decrypt" on any
   * padding failure, without saying why; TLS callers apply implicit rejection on top.
   */
  decrypt(ciphertext: Uint8Array): Promise<Buffer>;

  /**
   * RSA PKCS#1 v1.5 decryption with implicit rejection: resolves with the message when the
   * padding is right and the message is exactly `length` bytes, else with `fallback`, choosing
   * without branching or throwing on anything secret (the defence RFC 5246 §7.4.7.1 asks of
   * a TLS server against padding oracles). Present where the backend can do the raw RSA
   * operation itself (file keys); a token's CKM_RSA_PKCS can only fail loudly.
   */
  decryptImplicit?(ciphertext: Uint8Array, length: number, fallback: Buffer): Promise<Buffer>;

  /** Releases sessions, sockets or memory the handle holds. Idempotent. */
  close(): Promise<void>;
}

/** Why a key operation failed; each kind maps to one clear message for users. */
export type KeyErrorKind =
  | "bad-reference" // the key reference string cannot be parsed
  | "not-found" // no such file, token or object
  | "bad-pin" // the token refused the PIN
  | "bad-passphrase" // an encrypted key file could not be opened
  | "unsupported" // the key cannot do the requested scheme or operation
  | "decrypt" // RSA decryption failed (deliberately vague)
  | "exists" // key generation refused: the file or token object already exists
  | "backend"; // the token, module or service failed

/** An error from a key backend, carrying a precise kind and a one-line message. */
export class KeyError extends Error {
  /** What went wrong, for callers that branch on it. */
  readonly kind: KeyErrorKind;

  constructor(kind: KeyErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KeyError";
    this.kind = kind;
  }
}
