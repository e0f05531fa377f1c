/**
 * Public face of certificate handling: parsing, path validation, host name checks, CRLs.
 * Callers (TLS handshakes, the CA, the CLI) import from here.
 */
export type { HashName, KeyInfo, KeyKind, SignatureAlgorithm } from "./algorithms.ts";
export {
  type BasicConstraints,
  Certificate,
  type CertificateExtension,
  EkuOid,
  ExtensionOid,
  type KeyUsageName,
  MAX_CERTIFICATE_BYTES,
  type NameConstraints,
  parsePemBundle,
} from "./certificate.ts";
export { Crl, checkRevocation, type RevocationCheck, type RevokedEntry } from "./crl.ts";
export { type VerifyErrorCode, X509ParseError } from "./errors.ts";
export type { GeneralName } from "./generalnames.ts";
export {
  checkHost,
  checkIp,
  type IdentityCheck,
  matchesDnsName,
  parseReferenceIdentity,
} from "./hostname.ts";
export { formatIpAddress, parseIpAddress } from "./ip.ts";
export { type ConstraintCheck, checkNames } from "./nameconstraints.ts";
export { decodePemBlocks, encodePem, type PemBlock } from "./pem.ts";
export {
  DEFAULT_MAX_DEPTH,
  loadPemCertificates,
  loadSystemRoots,
  MAX_SIGNATURE_CHECKS,
  type Purpose,
  SYSTEM_ROOTS_PATH,
  VALIDATION_PROFILES,
  type ValidationProfile,
  type VerifyOptions,
  type VerifyResult,
  verifyChain,
} from "./verify.ts";
