/**
 * Certificate revocation lists (RFC 5280 §5): parsing, and the revocation check path
 * validation runs. Policy when CRLs are given to verification:
 * - every certificate below the trust anchor is looked up in the CRLs of its issuer
 *   (same issuer name bytes and, when both sides carry one, the same key identifier);
 * - the leaf's issuer MUST have a CRL among those given (as `openssl verify -crl_check`);
 *   for higher certificates a CRL is used when present;
 * - a CRL from that issuer must verify with the issuer's key (strong algorithms only),
 *   the issuer's keyUsage (if any) must allow cRLSign, thisUpdate <= time <= nextUpdate
 *   (nextUpdate is required), and no unknown critical extension (delta CRLs and
 *   issuing-distribution-point partitions are not supported) may appear; any CRL from the
 *   issuer that fails these checks fails the verification ("crl"), never silently ignored.
 */
import { parseSignatureAlgorithm, type SignatureAlgorithm, verifySignature } from "./algorithms.ts";
import type { Certificate } from "./certificate.ts";
import { contextTag, DerReader, decodeTime, readSingle, Tag } from "./der.ts";
import { formatName } from "./dn.ts";
import { X509ParseError } from "./errors.ts";
import { type CertificateExtension, firstUnknownCritical, parseExtensions } from "./extensions.ts";
import { decodePemBlocks, looksLikePem } from "./pem.ts";

/** Largest CRL accepted. */
export const MAX_CRL_BYTES = 32 * 1024 * 1024;

/** CRL reason codes (RFC 5280 §5.3.1). */
const REASONS = [
  "unspecified",
  "keyCompromise",
  "cACompromise",
  "affiliationChanged",
  "superseded",
  "cessationOfOperation",
  "certificateHold",
  "(unused)",
  "removeFromCRL",
  "privilegeWithdrawn",
  "aACompromise",
];

const CRL_NUMBER = "2.5.29.20";
const AUTHORITY_KEY_ID = "2.5.29.35";
const REASON_CODE = "2.5.29.21";
const INVALIDITY_DATE = "2.5.29.24";
const UNDERSTOOD_CRL_EXTENSIONS: ReadonlySet<string> = new Set([CRL_NUMBER, AUTHORITY_KEY_ID]);
const UNDERSTOOD_ENTRY_EXTENSIONS: ReadonlySet<string> = new Set([REASON_CODE, INVALIDITY_DATE]);

/** One revoked certificate entry. */
export interface RevokedEntry {
  /** Serial as lower-case hex of its encoded INTEGER octets (as {@link Certificate.serialHex}). */
  readonly serialHex: string;
  readonly revocationDate: Date;
  /** The reason code name, when the entry carries one. */
  readonly reason?: string;
  readonly extensions: readonly CertificateExtension[];
}

/** A parsed CRL. Construct with {@link Crl.fromDer}, {@link Crl.fromPem} or {@link Crl.parse}. */
export class Crl {
  readonly der: Buffer;
  /** The signed TBSCertList bytes exactly as encoded. */
  readonly tbs: Buffer;
  readonly issuerDer: Buffer;
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate?: Date;
  readonly signatureAlgorithm: SignatureAlgorithm;
  readonly signatureValue: Buffer;
  readonly extensions: readonly CertificateExtension[];
  /** The authorityKeyIdentifier keyIdentifier, when present. */
  readonly authorityKeyId?: Buffer;
  /** Revoked entries by serial hex. */
  readonly revoked: ReadonlyMap<string, RevokedEntry>;

  private constructor(der: Buffer) {
    if (der.length > MAX_CRL_BYTES)
      throw new X509ParseError(`CRL too large (${der.length} bytes > ${MAX_CRL_BYTES})`);
    this.der = der;
    const outer = new DerReader(readSingle(der, Tag.SEQUENCE, "CRL").content, "CRL");
    const tbsElement = outer.read(Tag.SEQUENCE);
    const outerAlg = outer.read(Tag.SEQUENCE);
    const signature = outer.read(Tag.BIT_STRING);
    outer.end();
    if (signature.content.length < 2 || signature.content[0] !== 0)
      throw new X509ParseError("CRL: malformed signature");
    this.tbs = tbsElement.bytes;
    this.signatureValue = signature.content.subarray(1);
    this.signatureAlgorithm = parseSignatureAlgorithm(outerAlg.bytes);

    const tbs = new DerReader(tbsElement.content, "TBSCertList");
    const version = tbs.readOptional(Tag.INTEGER);
    if (version && (version.content.length !== 1 || version.content[0] !== 1))
      throw new X509ParseError("CRL: invalid version");
    if (!tbs.read(Tag.SEQUENCE).bytes.equals(outerAlg.bytes))
      throw new X509ParseError("CRL: signature algorithm fields differ");
    this.issuerDer = tbs.read(Tag.SEQUENCE).bytes;
    this.issuer = formatName(this.issuerDer);
    this.thisUpdate = decodeTime(tbs.read(), "CRL thisUpdate");
    const next = tbs.peekTag();
    if (next === 0x17 || next === 0x18) this.nextUpdate = decodeTime(tbs.read(), "CRL nextUpdate");
    const revoked = new Map<string, RevokedEntry>();
    const list = tbs.readOptional(Tag.SEQUENCE);
    if (list) {
      const entries = new DerReader(list.content, "revokedCertificates");
      while (!entries.done) {
        const entry = parseEntry(entries.read(Tag.SEQUENCE).content);
        revoked.set(entry.serialHex, entry);
      }
    }
    this.revoked = revoked;
    const extensions = tbs.readOptional(contextTag(0, true));
    tbs.end();
    if (extensions && !version) throw new X509ParseError("CRL: extensions in a version 1 CRL");
    this.extensions = extensions
      ? parseExtensions(readSingle(extensions.content, Tag.SEQUENCE, "CRL extensions"))
      : [];
    const aki = this.extensions.find((e) => e.oid === AUTHORITY_KEY_ID);
    if (aki) {
      const keyId = new DerReader(
        readSingle(aki.value, Tag.SEQUENCE, "CRL authorityKeyIdentifier").content,
        "AKI",
      ).readOptional(0x80);
      if (keyId) this.authorityKeyId = Buffer.from(keyId.content);
    }
  }

  /** Parses a DER CRL; throws {@link X509ParseError} on malformed input. */
  static fromDer(der: Uint8Array): Crl {
    if (der.length === 0) throw new X509ParseError("CRL: empty input");
    return new Crl(Buffer.from(der));
  }

  /** Parses text holding exactly one X509 CRL PEM block. */
  static fromPem(text: string): Crl {
    const blocks = decodePemBlocks(text).filter((b) => b.label === "X509 CRL");
    if (blocks.length !== 1)
      throw new X509ParseError(`expected one X509 CRL block in PEM input, found ${blocks.length}`);
    return Crl.fromDer(blocks[0]!.der);
  }

  /** Parses a CRL file's contents, PEM or DER (as `hsmkit cert verify --crl` reads it). */
  static parse(data: Uint8Array | string): Crl {
    if (looksLikePem(data))
      return Crl.fromPem(typeof data === "string" ? data : Buffer.from(data).toString("latin1"));
    if (typeof data === "string") throw new X509ParseError("CRL: text input is not PEM");
    return Crl.fromDer(data);
  }
}

function parseEntry(content: Buffer): RevokedEntry {
  const reader = new DerReader(content, "revoked certificate");
  const serialHex = reader.read(Tag.INTEGER).content.toString("hex");
  const revocationDate = decodeTime(reader.read(), "revocationDate");
  const extElement = reader.readOptional(Tag.SEQUENCE);
  reader.end();
  const extensions = extElement ? parseExtensions(extElement) : [];
  const reasonExt = extensions.find((e) => e.oid === REASON_CODE);
  let reason: string | undefined;
  if (reasonExt) {
    const code = readSingle(reasonExt.value, 0x0a, "CRL reason").content;
    reason = code.length === 1 ? REASONS[code[0]!] : undefined;
    if (!reason) throw new X509ParseError("CRL: invalid reason code");
  }
  return { serialHex, revocationDate, extensions, ...(reason ? { reason } : {}) };
}

/** The outcome of a revocation check. */
export type RevocationCheck = { ok: true } | { ok: false; code: "revoked" | "crl"; detail: string };

/**
 * Checks `cert` (issued by `issuer`) against the CRLs from that issuer at time `at`.
 * With `required`, the absence of any CRL from the issuer is itself a failure.
 */
export function checkRevocation(
  cert: Certificate,
  issuer: Certificate,
  crls: readonly Crl[],
  at: Date,
  required: boolean,
): RevocationCheck {
  const fromIssuer = crls.filter(
    (crl) =>
      crl.issuerDer.equals(cert.issuerDer) &&
      !(crl.authorityKeyId && issuer.subjectKeyId && !crl.authorityKeyId.equals(issuer.subjectKeyId)),
  );
  if (fromIssuer.length === 0) {
    return required
      ? {
          ok: false,
          code: "crl",
          detail: `no CRL from issuer ${issuer.label} was given for certificate ${cert.label}`,
        }
      : { ok: true };
  }
  for (const crl of fromIssuer) {
    const problem = crlProblem(crl, issuer, at);
    if (problem) return { ok: false, code: "crl", detail: `CRL from ${issuer.label} ${problem}` };
  }
  for (const crl of fromIssuer) {
    const entry = crl.revoked.get(cert.serialHex);
    if (!entry) continue;
    const unknown = firstUnknownCritical(entry.extensions, UNDERSTOOD_ENTRY_EXTENSIONS);
    if (unknown)
      return {
        ok: false,
        code: "crl",
        detail: `CRL entry for ${cert.label} has unsupported critical extension ${unknown.oid}`,
      };
    const why = entry.reason ? ` (reason: ${entry.reason})` : "";
    return {
      ok: false,
      code: "revoked",
      detail: `certificate ${cert.label} (serial ${cert.serialHex}) was revoked on ${entry.revocationDate.toISOString()}${why}`,
    };
  }
  return { ok: true };
}

/** Why a CRL cannot be used, or undefined when it can. */
function crlProblem(crl: Crl, issuer: Certificate, at: Date): string | undefined {
  if (issuer.keyUsage && !issuer.keyUsage.has("cRLSign"))
    return "was signed by a key whose keyUsage lacks cRLSign";
  const signature = verifySignature(crl.signatureAlgorithm, crl.tbs, crl.signatureValue, issuer.publicKey);
  if (!signature.ok) return `is not validly signed by that issuer (${signature.detail})`;
  const unknown = firstUnknownCritical(crl.extensions, UNDERSTOOD_CRL_EXTENSIONS);
  if (unknown) return `has unsupported critical extension ${unknown.oid}`;
  if (crl.thisUpdate.getTime() > at.getTime()) return `is not valid before ${crl.thisUpdate.toISOString()}`;
  if (!crl.nextUpdate) return "has no nextUpdate";
  if (crl.nextUpdate.getTime() < at.getTime())
    return `is stale: its nextUpdate was ${crl.nextUpdate.toISOString()}`;
  return undefined;
}
