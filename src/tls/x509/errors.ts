/**
 * Error values of the x509 module: a parse error type for bad encodings and the closed
 * set of reasons a certificate path can be refused.
 */

/** Thrown when certificate, CRL or PEM input is malformed; the message is one clear line. */
export class X509ParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "X509ParseError";
  }
}

/**
 * Why path validation refused a certificate. Each failure carries exactly one code;
 * the accompanying reason names the certificate concerned.
 */
export type VerifyErrorCode =
  /** No path from the leaf reaches a certificate in `roots` (unknown issuer, or a loop). */
  | "untrusted-root"
  /** The leaf was built a path, but the path needs more intermediates than `maxDepth` allows. */
  | "depth"
  /** notAfter is before the verification time. */
  | "expired"
  /** notBefore is after the verification time. */
  | "not-yet-valid"
  /** A signature in the chain does not verify with its issuer's key. */
  | "bad-signature"
  /** The signature algorithm is too weak (SHA-1, MD5, DSA) or unknown. */
  | "weak-signature"
  /** The public key is too weak or of a refused kind (RSA < 2048, P-192, DSA, unknown curves). */
  | "weak-key"
  /** An issuing certificate lacks basicConstraints cA=true. */
  | "not-ca"
  /** A version 1 or 2 certificate in an issuing position. */
  | "v1-ca"
  /** A pathLenConstraint is exceeded. */
  | "path-length"
  /** keyUsage forbids the use made of the key (keyCertSign, cRLSign, or the leaf's TLS use). */
  | "key-usage"
  /** extendedKeyUsage does not allow the requested purpose. */
  | "bad-purpose"
  /** A name lies outside an issuer's permitted subtrees or inside its excluded subtrees. */
  | "name-constraints"
  /** The leaf does not match the requested host name or IP address. */
  | "hostname"
  /** A critical extension this validator does not process. */
  | "unsupported-critical-extension"
  /** A CRL lists the certificate as revoked. */
  | "revoked"
  /** A CRL was given but is unusable (bad signature, stale, missing for the leaf's issuer...). */
  | "crl"
  /** A certificate breaks the RFC 5280 or the strict (web) profile: see profile.ts. */
  | "profile"
  /** The options themselves are unusable (bad host syntax, maxDepth out of range...). */
  | "bad-input";
