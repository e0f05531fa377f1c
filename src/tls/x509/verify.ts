/**
 * Certificate path validation: the one code path behind the TLS client and server
 * handshakes and `hsmkit cert verify`. Strict, in the web-PKI spirit:
 *
 * - Building: from the leaf, issuers are looked up among `roots` and `intermediates`
 *   (any order, duplicates and unrelated certificates ignored) by exact issuer/subject
 *   name bytes, skipping candidates whose subjectKeyIdentifier contradicts the child's
 *   authorityKeyIdentifier, and verifying each link's signature with node:crypto. All
 *   alternatives are tried depth-first (roots before intermediates); a certificate never
 *   appears twice in a path (loops end the branch); at most `maxDepth` intermediates
 *   (self-issued ones not counted, 32 in all); issuers with a refused key (e.g. RSA over
 *   8192 bits or with an exponent over 2^32) are dropped before any signature check; at
 *   most 16 issuer candidates per certificate and 100 signature checks per call.
 *   A path ends at a certificate byte-identical to one in `roots` (the trust anchor,
 *   whose own self-signature is not checked).
 * - Each candidate path is then validated; the first that passes is returned. Checks:
 *   unknown critical extensions; key strength (see algorithms.ts) on every certificate
 *   including the anchor; validity at `at` on every certificate including the anchor;
 *   every issuer (anchor included) must be v3 ("v1-ca" otherwise: v1 trust anchors are
 *   refused too), have basicConstraints cA=true, keyCertSign when keyUsage is present,
 *   satisfy its pathLenConstraint (self-issued intermediates not counted) and, when it
 *   has extendedKeyUsage, allow the purpose (anyExtendedKeyUsage is accepted on CAs);
 *   name constraints of every issuer (anchor included); the certificate profile
 *   (profile.ts: "strict" by default, "rfc5280" on request); the leaf's extendedKeyUsage
 *   must list serverAuth/clientAuth for the purpose (under "strict" it must be present and
 *   anyExtendedKeyUsage does not count; under "rfc5280" an absent extension or
 *   anyExtendedKeyUsage means unrestricted, as RFC 5280 says); the leaf's keyUsage, when present, must allow a TLS signature or key exchange; host/IP
 *   (hostname.ts); revocation when CRLs are given (crl.ts).
 * - When nothing validates, the reported failure is that of the first complete path, or
 *   else the most telling building failure (a failed signature, then depth, then an
 *   unknown issuer).
 */

import { type Certificate, EkuOid, ExtensionOid, type KeyUsageName } from "./certificate.ts";
import { MAX_PATH_INTERMEDIATES, PathBuilder } from "./chain_builder.ts";
import { type Crl, checkRevocation } from "./crl.ts";
import type { VerifyErrorCode } from "./errors.ts";
import { firstUnknownCritical } from "./extensions.ts";
import { checkHost, checkIp } from "./hostname.ts";
import { checkNameConstraints } from "./nameconstraints.ts";
import { profileProblem, VALIDATION_PROFILES, type ValidationProfile } from "./profile.ts";

export type { VerifyErrorCode } from "./errors.ts";

/** What the leaf will be used for: a TLS server (serverAuth) or a TLS client (clientAuth). */
export type Purpose = "server" | "client";

/** Inputs to {@link verifyChain}. */
export interface VerifyOptions {
  /** Trust anchors. A path must end at a certificate byte-identical to one of these. */
  roots: readonly Certificate[];
  /** Untrusted certificates that may complete the path (a peer's chain, a bundle); order is irrelevant. */
  intermediates?: readonly Certificate[];
  /** Defaults to "server". */
  purpose?: Purpose;
  /** A host name to match against DNS SANs; an IP literal here is matched against IP SANs. */
  host?: string;
  /** An IP address (v4 or v6 text) to match against IP SANs. */
  ip?: string;
  /** Verification time; defaults to now. */
  at?: Date;
  /**
   * Most intermediate CA certificates allowed between leaf and anchor (neither counts),
   * as OpenSSL's -verify_depth. Default {@link DEFAULT_MAX_DEPTH}; 0..{@link MAX_MAX_DEPTH}.
   */
  maxDepth?: number;
  /** Parsed CRLs (see {@link Crl.parse} to read DER or PEM files). When non-empty, revocation is checked. */
  crls?: readonly Crl[];
  /**
   * "strict" (default): RFC 5280 plus the web PKI's leaf and root rules (the leaf must carry
   * an extendedKeyUsage for the purpose). "rfc5280": only RFC 5280's rules, for private
   * PKIs whose leaves have no extendedKeyUsage. See profile.ts.
   */
  profile?: ValidationProfile;
}

/** A validated chain (leaf first, anchor last), or the one reason it was refused. */
export type VerifyResult = (
  | { ok: true; chain: Certificate[] }
  | { ok: false; code: VerifyErrorCode; reason: string; certificate?: Certificate }
) & {
  /** Signature verifications spent building paths (bounded by {@link MAX_SIGNATURE_CHECKS}). */
  signatureChecks: number;
};

type Failure = { ok: false; code: VerifyErrorCode; reason: string; certificate?: Certificate };
type PathResult = { ok: true; chain: Certificate[] } | Failure;

export { MAX_SIGNATURE_CHECKS } from "./chain_builder.ts";
export { VALIDATION_PROFILES, type ValidationProfile } from "./profile.ts";
export { loadPemCertificates, loadSystemRoots, SYSTEM_ROOTS_PATH } from "./roots.ts";

/** Default limit on intermediates. */
export const DEFAULT_MAX_DEPTH = 8;
/** Largest accepted `maxDepth`. */
export const MAX_MAX_DEPTH = MAX_PATH_INTERMEDIATES;

/** Extensions this validator processes; any other critical extension is refused. */
const UNDERSTOOD: ReadonlySet<string> = new Set(Object.values(ExtensionOid));

const PURPOSE_EKU: Record<Purpose, string> = { server: EkuOid.serverAuth, client: EkuOid.clientAuth };
const PURPOSE_TEXT: Record<Purpose, string> = {
  server: "TLS server authentication",
  client: "TLS client authentication",
};

/** Validates the path from `leaf` to a trusted root. Never throws. */
export function verifyChain(leaf: Certificate, options: VerifyOptions): VerifyResult {
  const inputProblem = checkOptions(options);
  if (inputProblem) return { ok: false, code: "bad-input", reason: inputProblem, signatureChecks: 0 };
  const builder = new PathBuilder(
    options.roots,
    options.intermediates ?? [],
    options.maxDepth ?? DEFAULT_MAX_DEPTH,
  );
  let firstPathFailure: Failure | undefined;
  for (const path of builder.paths(leaf)) {
    const result = validatePath(path, options);
    if (result.ok) return { ...result, signatureChecks: builder.signatureChecks };
    firstPathFailure ??= result;
  }
  return { ...(firstPathFailure ?? builder.bestFailure(leaf)), signatureChecks: builder.signatureChecks };
}

function checkOptions(options: VerifyOptions): string | undefined {
  const depth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!Number.isInteger(depth) || depth < 0 || depth > MAX_MAX_DEPTH) {
    return `maxDepth must be an integer from 0 to ${MAX_MAX_DEPTH}`;
  }
  if (options.at && Number.isNaN(options.at.getTime())) return "verification time is not a valid date";
  if (options.purpose && !(options.purpose in PURPOSE_EKU))
    return `unknown purpose "${String(options.purpose)}"`;
  if (options.profile !== undefined && !VALIDATION_PROFILES.includes(options.profile))
    return `unknown profile "${String(options.profile)}" (use "strict" or "rfc5280")`;
  return undefined;
}

/** Runs every non-building check on one complete path (leaf first, anchor last). */
function validatePath(path: readonly Certificate[], options: VerifyOptions): PathResult {
  const at = options.at ?? new Date();
  const purpose = options.purpose ?? "server";
  const profile = options.profile ?? "strict";
  const fail = (code: VerifyErrorCode, reason: string, certificate: Certificate): Failure => ({
    ok: false,
    code,
    reason,
    certificate,
  });

  for (const cert of path) {
    const problem = validityProblem(cert, at);
    if (problem) return fail(problem.code, problem.reason, cert);
  }

  for (let i = 1; i < path.length; i++) {
    const problem = issuerProblem(path, i, purpose);
    if (problem) return fail(problem.code, problem.reason, path[i]!);
  }

  const constrained = nameConstraintsProblem(path);
  if (constrained) return fail("name-constraints", constrained.reason, constrained.certificate);

  // After the path checks, so that a v1 or non-CA issuer is reported as such first.
  const nonConforming = profileProblem(path, profile);
  if (nonConforming) return fail(nonConforming.code, nonConforming.reason, nonConforming.certificate);

  const leaf = path[0]!;
  const leafProblem = leafPurposeProblem(leaf, purpose, profile);
  if (leafProblem) return fail(leafProblem.code, leafProblem.reason, leaf);

  for (const identity of [
    options.host === undefined ? undefined : checkHost(leaf, options.host),
    options.ip === undefined ? undefined : checkIp(leaf, options.ip),
  ]) {
    if (identity && !identity.ok) return fail("hostname", identity.reason, leaf);
  }

  const crls = options.crls ?? [];
  if (crls.length > 0) {
    for (let i = 0; i < path.length - 1; i++) {
      const check = checkRevocation(path[i]!, path[i + 1]!, crls, at, i === 0);
      if (!check.ok) return fail(check.code, check.detail, path[i]!);
    }
  }
  return { ok: true, chain: [...path] };
}

/** Per-certificate checks: critical extensions understood, a strong key, inside its validity. */
function validityProblem(cert: Certificate, at: Date): { code: VerifyErrorCode; reason: string } | undefined {
  const unknown = firstUnknownCritical(cert.extensions, UNDERSTOOD);
  if (unknown) {
    const reason = `certificate ${cert.label} has unsupported critical extension ${unknown.oid}`;
    return { code: "unsupported-critical-extension", reason };
  }
  if (cert.keyInfo.weakness)
    return { code: "weak-key", reason: `certificate ${cert.label} has a weak key: ${cert.keyInfo.weakness}` };
  if (at.getTime() > cert.notAfter.getTime()) {
    const reason = `certificate ${cert.label} expired at ${cert.notAfter.toISOString()} (checked at ${at.toISOString()})`;
    return { code: "expired", reason };
  }
  if (at.getTime() < cert.notBefore.getTime()) {
    const reason = `certificate ${cert.label} is not valid before ${cert.notBefore.toISOString()} (checked at ${at.toISOString()})`;
    return { code: "not-yet-valid", reason };
  }
  return undefined;
}

/** The first certificate below a name-constrained CA that violates its constraints. */
function nameConstraintsProblem(
  path: readonly Certificate[],
): { reason: string; certificate: Certificate } | undefined {
  for (let i = 1; i < path.length; i++) {
    const constraints = path[i]!.nameConstraints;
    if (!constraints) continue;
    for (let j = 0; j < i; j++) {
      // RFC 5280 §6.1.3(b): constraints do not apply to self-issued intermediates.
      if (j > 0 && path[j]!.isSelfIssued) continue;
      const check = checkNameConstraints(constraints, path[j]!);
      if (!check.ok) {
        const reason = `certificate ${path[j]!.label} violates the name constraints of ${path[i]!.label}: ${check.detail}`;
        return { reason, certificate: path[j]! };
      }
    }
  }
  return undefined;
}

/** Issuer-position checks for path[i] (i >= 1). */
function issuerProblem(
  path: readonly Certificate[],
  i: number,
  purpose: Purpose,
): { code: VerifyErrorCode; reason: string } | undefined {
  const ca = path[i]!;
  if (ca.version < 3)
    return {
      code: "v1-ca",
      reason: `certificate ${ca.label} is a version ${ca.version} certificate and cannot act as a CA`,
    };
  if (!ca.basicConstraints?.ca) {
    return {
      code: "not-ca",
      reason: `certificate ${ca.label} issued ${path[i - 1]!.label} but is not a CA (basicConstraints cA is not true)`,
    };
  }
  if (ca.keyUsage && !ca.keyUsage.has("keyCertSign")) {
    return { code: "key-usage", reason: `CA certificate ${ca.label} has a keyUsage without keyCertSign` };
  }
  const pathLen = ca.basicConstraints.pathLen;
  if (pathLen !== undefined) {
    const below = path.slice(1, i).filter((c) => !c.isSelfIssued).length;
    if (below > pathLen) {
      return {
        code: "path-length",
        reason: `CA certificate ${ca.label} allows ${pathLen} intermediate CA certificate(s) below it (pathLenConstraint), but the chain has ${below}`,
      };
    }
  }
  const eku = ca.extKeyUsage;
  if (eku && !eku.includes(PURPOSE_EKU[purpose]) && !eku.includes(EkuOid.any)) {
    return {
      code: "bad-purpose",
      reason: `CA certificate ${ca.label} restricts extendedKeyUsage and does not allow ${PURPOSE_TEXT[purpose]}`,
    };
  }
  return undefined;
}

/** extendedKeyUsage and keyUsage of the leaf for TLS. */
function leafPurposeProblem(
  leaf: Certificate,
  purpose: Purpose,
  profile: ValidationProfile,
): { code: VerifyErrorCode; reason: string } | undefined {
  const eku = leaf.extKeyUsage;
  // RFC 5280 §4.2.1.12 reads anyExtendedKeyUsage as "any purpose"; the web profile does not.
  const anyAccepted = profile === "rfc5280" && eku?.includes(EkuOid.any);
  if (eku && !eku.includes(PURPOSE_EKU[purpose]) && !anyAccepted) {
    const any = eku.includes(EkuOid.any)
      ? ' (anyExtendedKeyUsage is not accepted on a leaf under the strict profile; profile "rfc5280" accepts it)'
      : "";
    return {
      code: "bad-purpose",
      reason: `certificate ${leaf.label} is not valid for ${PURPOSE_TEXT[purpose]}: its extendedKeyUsage lacks ${purpose === "server" ? "serverAuth" : "clientAuth"}${any}`,
    };
  }
  const ku = leaf.keyUsage;
  // Servers sign (ECDHE, TLS 1.3), decrypt (RSA key exchange) or agree (static ECDH); clients sign.
  const allowed: KeyUsageName[] =
    purpose === "server"
      ? ["digitalSignature", "keyEncipherment", "keyAgreement"]
      : ["digitalSignature", "keyAgreement"];
  if (ku && !allowed.some((u) => ku.has(u))) {
    return {
      code: "key-usage",
      reason: `certificate ${leaf.label} has a keyUsage that allows no ${PURPOSE_TEXT[purpose]} (needs ${allowed.join(" or ")})`,
    };
  }
  return undefined;
}
