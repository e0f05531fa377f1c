/**
 * pki/: the private CA. Keys come from keys/ (files, PKCS#11 tokens, the KMS) and sign
 * through their handles, so a CA key in hardware never leaves it. Two layers:
 *
 *  - in memory: {@link signCertificate} / {@link signCrl} with any key handle (used by tests
 *    and fixtures);
 *  - CA directories: {@link initCa}, {@link createIntermediate}, {@link issueCertificate},
 *    {@link revokeCertificate}, {@link publishCrl}, all-or-nothing and safe across processes.
 */

export {
  PfxError,
  type Pkcs12Contents,
  readPfx,
  writeLegacyPfxContents,
  writeModernPfx,
} from "../keys/pkcs12/index.ts";
export {
  type CreatedCa,
  createIntermediate,
  type IntermediateOptions,
  initCa,
  type NewCaOptions,
} from "./ca_init.ts";
export { openIssuer } from "./ca_key.ts";
export {
  CA_FILES,
  type CaConfig,
  type CaDirectory,
  type CaIndex,
  type IssuedCertificate,
  loadCaDirectory,
  REVOCATION_REASONS,
  type RevocationReason,
} from "./cadir.ts";
export {
  type CertificateTemplate,
  type Issuer,
  normalizeSerial,
  planValidity,
  randomSerial,
  signCertificate,
  type Validity,
} from "./certificate.ts";
export { type CrlTemplate, type RevokedEntry, signCrl } from "./crl.ts";
export { PkiError, type PkiErrorKind } from "./errors.ts";
export { chainPem, type IssuedFiles, type IssueOptions, issueCertificate } from "./issue.ts";
export { isHardwareKeyRef, parseKeyType, readFileKey, readPasswordFile } from "./keyfile.ts";
export {
  type NameConstraint,
  parseNameConstraints,
  parseSanList,
  type SanEntry,
  subjectName,
} from "./names.ts";
export { type Profile, profileExtensions } from "./profiles.ts";
export { parseReason, publishCrl, revokeCertificate } from "./revoke.ts";
export { describeFile } from "./show.ts";
export {
  CA_SIGNATURE_SCHEMES,
  type CaSignatureScheme,
  defaultSchemeFor,
  handleSigner,
  isCaSignatureScheme,
} from "./signer.ts";
