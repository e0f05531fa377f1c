/**
 * Bridges the handshakes to x509 path validation: one verifier per connection that turns
 * a refused chain into the alert RFC 5246 §7.2.2 names for it.
 */
import { type KeyObject, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { AlertDescription, TlsError } from "./alert.ts";
import type { ChainVerdict } from "./config.ts";
import { costlyKeyReason } from "./x509/algorithms.ts";
import { Certificate } from "./x509/certificate.ts";
import type { VerifyErrorCode } from "./x509/errors.ts";
import { spkiProblem } from "./x509/spki.ts";
import { type Purpose, type ValidationProfile, verifyChain } from "./x509/verify.ts";

const ALERT_FOR: Partial<Record<VerifyErrorCode, AlertDescription>> = {
  "untrusted-root": AlertDescription.unknown_ca,
  expired: AlertDescription.certificate_expired,
  "not-yet-valid": AlertDescription.certificate_expired,
  revoked: AlertDescription.certificate_revoked,
  "weak-key": AlertDescription.unsupported_certificate,
  "weak-signature": AlertDescription.unsupported_certificate,
  "unsupported-critical-extension": AlertDescription.unsupported_certificate,
  hostname: AlertDescription.certificate_unknown,
  "bad-purpose": AlertDescription.unsupported_certificate,
  profile: AlertDescription.bad_certificate,
};

const CACHE_SIZE = 512;
const parsed = new Map<string, Certificate>();

/**
 * Parses a DER certificate, remembering the last few hundred: a client meets the same
 * server chain on every connection, and parsing (with OpenSSL's cross-check) is most of
 * a handshake's CPU otherwise. Parsed certificates are immutable, so sharing is safe.
 */
export function certificateFromDer(der: Buffer): Certificate {
  const key = der.toString("latin1");
  const hit = parsed.get(key);
  if (hit) {
    parsed.delete(key);
    parsed.set(key, hit);
    return hit;
  }
  const cert = Certificate.fromDer(der);
  parsed.set(key, cert);
  if (parsed.size > CACHE_SIZE) parsed.delete(parsed.keys().next().value as string);
  return cert;
}

/**
 * The public key of a peer's leaf certificate, for its CertificateVerify or key exchange.
 * It comes from the parse cache the chain verifier shares (building a Node X509Certificate
 * costs about half a millisecond, a sizeable part of a handshake). A certificate our strict
 * parser refuses is read with OpenSSL's, since that only matters where verification is off
 * or optional; one that neither can read is bad_certificate.
 */
export function leafPublicKey(der: Buffer, peer: "client" | "server"): KeyObject {
  const key = parseLeafKey(der, peer);
  // Verification may be off or optional: a key that makes every operation costly is refused
  // before its CertificateVerify or key exchange runs, verified or not.
  const costly = costlyKeyReason(key);
  if (costly) {
    throw new TlsError(
      AlertDescription.bad_certificate,
      `${peer} certificate key refused: ${costly}`,
      "certificate",
    );
  }
  return key;
}

function parseLeafKey(der: Buffer, peer: "client" | "server"): KeyObject {
  let reason: string;
  try {
    return certificateFromDer(der).publicKey;
  } catch (err) {
    reason = err instanceof Error ? err.message : String(err);
  }
  // OpenSSL's parser is the fallback where verification is off or optional (certificates
  // outside hsmkit's profile), but its key must still pass the SPKI check: OpenSSL imports a
  // malformed EC point as a key that ends the process when Node reads it.
  try {
    const key = new X509Certificate(der).publicKey;
    const problem = spkiProblem(key.export({ type: "spki", format: "der" }));
    if (problem === undefined) return key;
    reason = problem;
  } catch {
    // Unparsable by both: the first reason stands.
  }
  throw new TlsError(
    AlertDescription.bad_certificate,
    `${peer} certificate cannot be parsed (${reason})`,
    "certificate",
  );
}

/** Parses and validates a peer chain (leaf first) for a purpose, host or IP, under a profile (default strict). */
export function verifyPeerChain(
  chain: readonly Buffer[],
  roots: readonly Certificate[],
  purpose: Purpose,
  name: string | undefined,
  profile: ValidationProfile = "strict",
): ChainVerdict {
  let certs: Certificate[];
  try {
    certs = chain.map(certificateFromDer);
  } catch (err) {
    return {
      ok: false,
      reason: `peer certificate cannot be parsed: ${(err as Error).message}`,
      alert: AlertDescription.bad_certificate,
    };
  }
  const [leaf, ...intermediates] = certs;
  if (!leaf)
    return { ok: false, reason: "peer sent no certificate", alert: AlertDescription.bad_certificate };
  const target = name === undefined ? {} : isIP(name) ? { ip: name } : { host: name };
  const result = verifyChain(leaf, { roots: [...roots], intermediates, purpose, profile, ...target });
  if (result.ok) return { ok: true };
  return {
    ok: false,
    reason: result.reason,
    alert: ALERT_FOR[result.code] ?? AlertDescription.bad_certificate,
  };
}

/** A server-certificate verifier for a client connecting to `host`. */
export function serverVerifier(
  roots: readonly Certificate[],
  host: string,
  profile: ValidationProfile = "strict",
): (chain: Buffer[]) => ChainVerdict {
  return (chain) => verifyPeerChain(chain, roots, "server", host.replace(/^\[|\]$/g, ""), profile);
}

/** The client's verdict on a server chain, after applying rejectUnauthorized. */
export interface ServerJudgement {
  authorized: boolean;
  authorizationError: string | undefined;
}

/**
 * Validates the server chain as the client is configured to (throwing the right alert when
 * an untrusted server must be refused). Without a verifier the server is never "authorized".
 */
export function judgeServerChain(
  cfg: { verifyServer: ((chain: Buffer[]) => ChainVerdict) | undefined; rejectUnauthorized: boolean },
  chain: Buffer[],
): ServerJudgement {
  if (!cfg.verifyServer) return { authorized: false, authorizationError: "server certificate not verified" };
  const verdict = cfg.verifyServer(chain);
  if (verdict.ok) return { authorized: true, authorizationError: undefined };
  if (cfg.rejectUnauthorized) throw new TlsError(verdict.alert, verdict.reason, "certificate");
  return { authorized: false, authorizationError: verdict.reason };
}
