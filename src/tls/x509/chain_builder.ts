/**
 * Chain building for path validation: depth-first enumeration of candidate paths from a
 * leaf to a trust anchor, with each link's signature verified, loops cut, depth and work
 * bounded, and a record of why each dead branch died.
 */
import { type SignatureCheck, verifySignature } from "./algorithms.ts";
import type { Certificate } from "./certificate.ts";
import type { VerifyErrorCode } from "./errors.ts";

/**
 * Certificate links whose signature verified, process-wide, as "child fingerprint:issuer
 * fingerprint" (SHA-256 over each whole DER, so the same key means the same signed bytes and the
 * same issuer key). A server sees the same client chains again and again; a link verified once
 * need not be verified again. Only successes are kept, so a peer sending bad chains still pays
 * for each check, and the oldest entry goes first past {@link MAX_VERIFIED_LINKS}. Validity
 * dates, names, usages and revocation are still checked on every path: this caches the
 * signature arithmetic only.
 */
const VERIFIED_LINKS = new Set<string>();
const MAX_VERIFIED_LINKS = 4096;
const LINK_OK: SignatureCheck = { ok: true };

function rememberVerifiedLink(key: string): void {
  if (VERIFIED_LINKS.size >= MAX_VERIFIED_LINKS) {
    const oldest = VERIFIED_LINKS.values().next().value;
    if (oldest !== undefined) VERIFIED_LINKS.delete(oldest);
  }
  VERIFIED_LINKS.add(key);
}

/** A refusal from the builder or the validator. */
export interface PathFailure {
  readonly ok: false;
  readonly code: VerifyErrorCode;
  readonly reason: string;
  readonly certificate?: Certificate;
}

/**
 * Signature verifications one call may spend building paths, as Go's crypto/x509: bounds
 * adversarial meshes of cross-certificates and chains of costly keys before anything is proven.
 */
export const MAX_SIGNATURE_CHECKS = 100;
/** Complete paths one call may validate. */
const MAX_PATHS = 16;
/** Issuer candidates tried per certificate, so that one name shared by many certificates cannot spend the whole budget. */
export const MAX_ISSUER_CANDIDATES = 16;
/** Intermediates in any path, self-issued ones included (which `maxDepth` does not count). */
export const MAX_PATH_INTERMEDIATES = 32;
/**
 * Issuer candidates one call may consider, cached links included. The signature budget alone
 * does not bound the search: in a mesh where every certificate has two issuers that share a
 * key, each link is checked once and cached, yet depth-first search walks 2^n paths.
 */
export const MAX_CANDIDATES_CONSIDERED = 1000;

/** Depth-first enumeration of candidate paths, recording why branches died. */
export class PathBuilder {
  private readonly roots: Map<string, Certificate>;
  private readonly pool: Certificate[];
  private readonly maxDepth: number;
  private readonly signatureCache = new Map<string, SignatureCheck>();
  private checksSpent = 0;
  private candidatesConsidered = 0;
  private pathsFound = 0;
  /** The most telling failure so far (kept alone, so dead ends cost no memory). */
  private best: (PathFailure & { rank: number; length: number }) | undefined;

  /** `maxDepth` counts intermediates only, as OpenSSL's -verify_depth. */
  constructor(roots: readonly Certificate[], intermediates: readonly Certificate[], maxDepth: number) {
    this.roots = new Map(roots.map((r) => [r.fingerprintSha256, r]));
    const seen = new Set<string>();
    // Roots first so the shortest path to an anchor is tried first; duplicates dropped.
    this.pool = [...roots, ...intermediates].filter((c) => {
      if (seen.has(c.fingerprintSha256)) return false;
      seen.add(c.fingerprintSha256);
      return true;
    });
    this.maxDepth = maxDepth;
  }

  /** Signature verifications spent so far. */
  get signatureChecks(): number {
    return this.checksSpent;
  }

  /** Yields complete paths (leaf first, anchor last) in preference order. */
  *paths(leaf: Certificate): Generator<Certificate[]> {
    yield* this.extend([leaf]);
  }

  private *extend(path: Certificate[]): Generator<Certificate[]> {
    const current = path[path.length - 1]!;
    if (this.roots.has(current.fingerprintSha256)) {
      this.pathsFound++;
      yield path;
      return;
    }
    const candidates = this.issuersOf(current);
    if (candidates.length === 0) {
      const detail = current.isSelfIssued
        ? `certificate ${current.label} is self-signed and not a trusted root`
        : `certificate ${current.label} was issued by '${current.issuer}', which is not a trusted root${path.length > 1 ? "" : " and was not among the given intermediates"}`;
      this.fail("untrusted-root", detail, current, path.length, 0);
      return;
    }
    for (const issuer of candidates) {
      if (this.pathsFound >= MAX_PATHS) return;
      const link = this.link(path, issuer);
      if (link === "stop") return;
      if (link === "ok") yield* this.extend([...path, issuer]);
    }
  }

  /**
   * Whether `issuer` extends `path`: "ok", a dead branch ("skip", its failure recorded), or
   * "stop" when the work budget is spent.
   */
  private link(path: readonly Certificate[], issuer: Certificate): "ok" | "skip" | "stop" {
    const current = path[path.length - 1]!;
    if (++this.candidatesConsidered > MAX_CANDIDATES_CONSIDERED) {
      this.fail(
        "depth",
        `gave up after considering ${MAX_CANDIDATES_CONSIDERED} candidate issuers while building the chain`,
        current,
        path.length,
        2,
      );
      return "stop";
    }
    const refusal = this.refusal(path, issuer);
    if (refusal) {
      this.fail(refusal.code, refusal.reason, refusal.certificate, path.length, refusal.rank);
      return "skip";
    }
    const signature = this.checkLink(current, issuer);
    if (signature === undefined) {
      const reason = `gave up after ${MAX_SIGNATURE_CHECKS} signature checks while building the chain`;
      this.fail("depth", reason, current, path.length, 2);
      return "stop";
    }
    if (!signature.ok) {
      const reason = `certificate ${current.label}: ${signature.detail} with the key of ${issuer.label}`;
      this.fail(signature.code, reason, current, path.length, 3);
      return "skip";
    }
    return "ok";
  }

  /** Why `issuer` cannot extend `path` before any signature is checked: a loop, the depth, a weak key. */
  private refusal(
    path: readonly Certificate[],
    issuer: Certificate,
  ): { code: VerifyErrorCode; reason: string; certificate: Certificate; rank: number } | undefined {
    const current = path[path.length - 1]!;
    if (
      path.some(
        (c) => c.equals(issuer) || (c.subjectDer.equals(issuer.subjectDer) && c.spki.equals(issuer.spki)),
      )
    ) {
      const reason = `certificate chain loops back to ${issuer.label} without reaching a trusted root`;
      return { code: "untrusted-root", reason, certificate: current, rank: 0 };
    }
    if (this.tooDeep(path, issuer)) {
      const reason = `chain from ${path[0]!.label} needs more than ${this.maxDepth} intermediate certificates`;
      return { code: "depth", reason, certificate: current, rank: 2 };
    }
    // A refused issuer key costs no signature check: RSA with a huge modulus or exponent
    // is exactly what would make the check expensive (Go's CVE-2023-29409).
    if (issuer.keyInfo.weakness) {
      const reason = `certificate ${issuer.label} has a weak key: ${issuer.keyInfo.weakness}`;
      return { code: "weak-key", reason, certificate: issuer, rank: 3 };
    }
    return undefined;
  }

  /**
   * Whether adding `issuer` to `path` exceeds the depth: self-issued intermediates (key
   * rollover) do not count toward `maxDepth` (RFC 5280 §6.1.4(l)), but every intermediate
   * counts toward {@link MAX_PATH_INTERMEDIATES}.
   */
  private tooDeep(path: readonly Certificate[], issuer: Certificate): boolean {
    const intermediates = this.roots.has(issuer.fingerprintSha256)
      ? path.slice(1)
      : [...path.slice(1), issuer];
    const counted = intermediates.filter((c) => !c.isSelfIssued).length;
    return counted > this.maxDepth || intermediates.length > MAX_PATH_INTERMEDIATES;
  }

  /** Certificates whose subject is this certificate's issuer and whose key id does not contradict it. */
  private issuersOf(cert: Certificate): Certificate[] {
    const byName = this.pool.filter((c) => c.subjectDer.equals(cert.issuerDer));
    const aki = cert.authorityKeyId;
    if (!aki) return byName.slice(0, MAX_ISSUER_CANDIDATES);
    const compatible = byName.filter((c) => !c.subjectKeyId || c.subjectKeyId.equals(aki));
    // Exact key-id matches first, then candidates without a subjectKeyIdentifier.
    return [...compatible.filter((c) => c.subjectKeyId), ...compatible.filter((c) => !c.subjectKeyId)].slice(
      0,
      MAX_ISSUER_CANDIDATES,
    );
  }

  /** The cached signature check of `child` under `issuer`'s key; undefined when the budget is spent. */
  private checkLink(child: Certificate, issuer: Certificate): SignatureCheck | undefined {
    const key = `${child.fingerprintSha256}:${issuer.fingerprintSha256}`;
    const cached = this.signatureCache.get(key) ?? (VERIFIED_LINKS.has(key) ? LINK_OK : undefined);
    if (cached) return cached;
    if (this.checksSpent >= MAX_SIGNATURE_CHECKS) return undefined;
    this.checksSpent++;
    const result = verifySignature(
      child.signatureAlgorithm,
      child.tbs,
      child.signatureValue,
      issuer.publicKey,
    );
    this.signatureCache.set(key, result);
    if (result.ok) rememberVerifiedLink(key);
    return result;
  }

  private fail(
    code: VerifyErrorCode,
    reason: string,
    certificate: Certificate,
    length: number,
    rank: number,
  ): void {
    const best = this.best;
    // Highest rank wins, then the longest partial path; the first of equals stays.
    if (!best || rank > best.rank || (rank === best.rank && length > best.length)) {
      this.best = { ok: false, code, reason, certificate, rank, length };
    }
  }

  /** The most telling reason no path was found: highest rank, then the longest partial path. */
  bestFailure(leaf: Certificate): PathFailure {
    const best = this.best;
    if (!best)
      return {
        ok: false,
        code: "untrusted-root",
        reason: `no path from ${leaf.label} to a trusted root`,
        certificate: leaf,
      };
    return { ok: false, code: best.code, reason: best.reason, certificate: best.certificate };
  }
}
