/**
 * Certificate profiles: the shape every certificate of a path must have, beyond what the
 * path algorithm of RFC 5280 §6 checks. Two levels:
 *
 * - "rfc5280": the MUSTs of RFC 5280 §4 that OpenSSL's -x509_strict and webpki enforce,
 *   on the leaf and every intermediate: a positive serial of at most 20 octets, a
 *   non-empty issuer, CAs with a subject, a critical SAN when the subject is empty, an
 *   authorityKeyIdentifier on every certificate that is not self-issued and never
 *   critical, CAs with a subjectKeyIdentifier and a critical basicConstraints, a
 *   well-formed authorityInfoAccess, and nameConstraints only in a CA and only critical.
 *   The trust anchor is exempt, as in Go and webpki (RFC 5280 §6.1.1(d) makes it an
 *   input, not a certificate to validate): trusted roots such as GoDaddy's G2 (serial 0)
 *   or TWCA's (no subjectKeyIdentifier) would otherwise fail every chain.
 * - "strict" (the default): all of that plus the web PKI's rules: no critical SAN next to
 *   a non-empty subject; the leaf is not a CA, has no keyCertSign and carries an
 *   extendedKeyUsage naming the purpose; the root has no extendedKeyUsage and its
 *   authorityKeyIdentifier, if any, is just its own key id (the CA/Browser Forum rules
 *   for roots; two QuoVadis roots of the system store break the last one).
 *
 * Private PKIs whose leaves lack extendedKeyUsage choose "rfc5280".
 */
import { type Certificate, ExtensionOid } from "./certificate.ts";
import { nameRdns } from "./dn.ts";
import type { VerifyErrorCode } from "./errors.ts";
import { AUTHORITY_INFO_ACCESS, checkAuthorityInfoAccess } from "./extensions.ts";

/** How strictly certificates are held to the profiles (see the module comment). */
export type ValidationProfile = "strict" | "rfc5280";

/** Every profile name, for option checking. */
export const VALIDATION_PROFILES: readonly ValidationProfile[] = ["strict", "rfc5280"];

/** The largest serial number RFC 5280 §4.1.2.2 allows, in octets. */
const MAX_SERIAL_OCTETS = 20;

/** One refusal: the code, and the reason with the certificate's label in it. */
export interface ProfileProblem {
  readonly code: VerifyErrorCode;
  readonly reason: string;
  readonly certificate: Certificate;
}

type Role = "leaf" | "intermediate" | "root";

/**
 * The first profile violation in `path` (leaf first, anchor last), or undefined. A path
 * of one certificate (a directly trusted leaf) is checked as a leaf only.
 */
export function profileProblem(
  path: readonly Certificate[],
  profile: ValidationProfile,
): ProfileProblem | undefined {
  for (let i = 0; i < path.length; i++) {
    const cert = path[i]!;
    const role: Role = i === 0 ? "leaf" : i === path.length - 1 ? "root" : "intermediate";
    // Self-signed (RFC 5280 §3.2): self-issued and verified by its own key, which in a path
    // means the anchor itself or an issuer holding the same key. A key-rollover certificate is
    // self-issued under another key, and needs its authorityKeyIdentifier like any other.
    const issuer = path[i + 1];
    const selfSigned = cert.isSelfIssued && (!issuer || issuer.spki.equals(cert.spki));
    const problem = certificateFinding(cert, role, selfSigned, profile);
    if (problem)
      return { code: problem.code, reason: `certificate ${cert.label} ${problem.text}`, certificate: cert };
  }
  return undefined;
}

type Finding = { code: VerifyErrorCode; text: string } | undefined;

/**
 * What each certificate was found to be, per place in a path and profile. The checks read only
 * the certificate (immutable once parsed), and a server meets the same client chains on every
 * handshake: rerunning them was a third of validating a chain whose signatures are already known good.
 */
const findings = new WeakMap<Certificate, Map<string, Finding>>();

function certificateFinding(
  cert: Certificate,
  role: Role,
  selfSigned: boolean,
  profile: ValidationProfile,
): Finding {
  const key = `${role} ${selfSigned} ${profile}`;
  let known = findings.get(cert);
  if (known?.has(key)) return known.get(key);
  const shape = role === "root" ? undefined : rfc5280Problem(cert, selfSigned);
  const problem = shape ?? (profile === "strict" ? webProblem(cert, role) : undefined);
  if (!known) {
    known = new Map();
    findings.set(cert, known);
  }
  known.set(key, problem);
  return problem;
}

const finding = (text: string, code: VerifyErrorCode = "profile"): Finding => ({ code, text });

function extension(cert: Certificate, oid: string) {
  return cert.extensions.find((e) => e.oid === oid);
}

function isEmptyName(der: Buffer): boolean {
  return nameRdns(der).length === 0;
}

/** RFC 5280 §4.1.2.2: positive, non-zero, at most 20 octets (a sign octet aside). */
function serialProblem(cert: Certificate): Finding {
  const octets = Buffer.from(cert.serialHex, "hex");
  if (octets[0]! & 0x80) return finding(`has a negative serial number (${cert.serialHex})`);
  if (octets.every((b) => b === 0)) return finding("has serial number zero");
  // A leading 0x00 only keeps a 20-octet value positive; it is not part of the number.
  const magnitude = octets[0] === 0 ? octets.length - 1 : octets.length;
  if (magnitude > MAX_SERIAL_OCTETS) {
    return finding(
      `has a serial number of ${magnitude} octets (RFC 5280 allows at most ${MAX_SERIAL_OCTETS})`,
    );
  }
  return undefined;
}

/** The RFC 5280 MUSTs, for the leaf and every intermediate (not the trust anchor). */
function rfc5280Problem(cert: Certificate, selfSigned: boolean): Finding {
  const isCa = cert.basicConstraints?.ca === true;
  const subjectEmpty = isEmptyName(cert.subjectDer);
  const san = extension(cert, ExtensionOid.subjectAltName);
  const aki = extension(cert, ExtensionOid.authorityKeyIdentifier);
  const nc = extension(cert, ExtensionOid.nameConstraints);
  const checks: Array<() => Finding> = [
    () => serialProblem(cert),
    () => (isEmptyName(cert.issuerDer) ? finding("has an empty issuer name") : undefined),
    () => (isCa && subjectEmpty ? finding("is a CA certificate with an empty subject name") : undefined),
    () =>
      subjectEmpty && !san?.critical
        ? finding(
            san
              ? "has an empty subject name but its subjectAltName is not critical"
              : "has an empty subject name and no subjectAltName",
          )
        : undefined,
    () =>
      aki?.critical ? finding("marks authorityKeyIdentifier critical (RFC 5280 forbids it)") : undefined,
    () =>
      !aki && !selfSigned
        ? finding("has no authorityKeyIdentifier (required on every certificate that is not self-signed)")
        : undefined,
    () =>
      isCa && !cert.subjectKeyId ? finding("is a CA certificate without subjectKeyIdentifier") : undefined,
    () =>
      isCa && !extension(cert, ExtensionOid.basicConstraints)?.critical
        ? finding("is a CA certificate whose basicConstraints is not critical")
        : undefined,
    () => aiaProblem(cert),
    () => (nc && !nc.critical ? finding("has nameConstraints not marked critical") : undefined),
    () => (nc && !isCa ? finding("is an end-entity certificate with nameConstraints") : undefined),
  ];
  for (const check of checks) {
    const problem = check();
    if (problem) return problem;
  }
  return undefined;
}

function aiaProblem(cert: Certificate): Finding {
  const aia = extension(cert, AUTHORITY_INFO_ACCESS);
  if (!aia) return undefined;
  try {
    checkAuthorityInfoAccess(aia.value);
    return undefined;
  } catch (err) {
    return finding(
      `has a malformed authorityInfoAccess (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}

/** The web PKI rules of the strict profile, by position. */
function webProblem(cert: Certificate, role: Role): Finding {
  const san = extension(cert, ExtensionOid.subjectAltName);
  if (san?.critical && !isEmptyName(cert.subjectDer)) {
    return finding("marks subjectAltName critical although its subject is not empty");
  }
  if (role === "leaf") return leafProblem(cert);
  if (role === "root") return rootProblem(cert);
  return undefined;
}

function leafProblem(cert: Certificate): Finding {
  if (cert.basicConstraints?.ca)
    return finding("is a CA certificate (basicConstraints cA=TRUE) used as an end-entity");
  if (cert.keyUsage?.has("keyCertSign"))
    return finding("is an end-entity certificate with keyUsage keyCertSign");
  if (!cert.extKeyUsage) {
    return finding(
      'has no extendedKeyUsage; the strict profile needs serverAuth or clientAuth (profile "rfc5280" accepts a leaf without it)',
      "bad-purpose",
    );
  }
  return undefined;
}

function rootProblem(cert: Certificate): Finding {
  if (cert.extKeyUsage) return finding("is a root certificate with extendedKeyUsage");
  if (cert.authorityKeyIdHasIssuerSerial) {
    return finding("is a root certificate whose authorityKeyIdentifier names an issuer and serial number");
  }
  if (cert.authorityKeyId && cert.subjectKeyId && !cert.authorityKeyId.equals(cert.subjectKeyId)) {
    return finding(
      "is a root certificate whose authorityKeyIdentifier differs from its subjectKeyIdentifier",
    );
  }
  return undefined;
}
