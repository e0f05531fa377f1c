/**
 * Making one certificate: a serial number, a validity window inside the issuer's, and
 * the signature from the issuer's key handle. No files: the CA directory code wraps this.
 */
import { constants, randomBytes, verify as verifySignature } from "node:crypto";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import { SCHEMES } from "../keys/schemes.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { PkiError } from "./errors.ts";
import type { ProfileInput } from "./profiles.ts";
import { certificateKeyId, profileExtensions } from "./profiles.ts";
import type { CaSignatureScheme } from "./signer.ts";
import { handleSigner } from "./signer.ts";

/** Milliseconds in a day. */
const DAY_MS = 86_400_000;

/** Backdating of notBefore, so a peer whose clock is a little behind accepts a fresh certificate. */
const BACKDATE_MS = 60_000;

/**
 * A fresh serial number as lower-case hex: 128 random bits, read as a positive integer
 * (RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/B: at least 64 random bits).
 */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  // A leading zero byte would be dropped by DER and make the serial shorter; avoid it.
  if (bytes[0] === 0) bytes[0] = 1;
  return bytes.toString("hex");
}

/** Normalises a serial given by a user (`0A:1b`, `0x0a1b`) to the canonical lower-case hex. */
export function normalizeSerial(text: string): string {
  const hex = text.trim().replace(/^0x/i, "").replace(/:/g, "").toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex) || hex.length > 42)
    throw new PkiError("bad-input", `'${text}' is not a hex serial number`);
  const stripped = hex.replace(/^0+/, "");
  return stripped === "" ? "0" : stripped.length % 2 === 1 ? `0${stripped}` : stripped;
}

/** A validity window. */
export interface Validity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * The validity for a new certificate. Without `days`, `defaultDays` is used and quietly
 * shortened to end with the issuer; an explicit `days` that outlives the issuer is an error.
 */
export function planValidity(options: {
  readonly days: number | undefined;
  readonly defaultDays: number;
  readonly issuer?: Validity;
  readonly now?: Date;
}): Validity {
  const now = options.now ?? new Date();
  const { days, issuer } = options;
  if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > 36_500)) {
    throw new PkiError(
      "bad-input",
      (name) => `${name("days")} must be a whole number from 1 to 36500, not ${days}`,
    );
  }
  let notBefore = new Date(Math.floor((now.getTime() - BACKDATE_MS) / 1000) * 1000);
  let notAfter = new Date(Math.floor((now.getTime() + (days ?? options.defaultDays) * DAY_MS) / 1000) * 1000);
  if (issuer) {
    if (now > issuer.notAfter)
      throw new PkiError("ca-dir", `the CA certificate expired on ${iso(issuer.notAfter)}`);
    if (notBefore < issuer.notBefore) notBefore = issuer.notBefore;
    if (notAfter > issuer.notAfter) {
      if (days !== undefined) {
        throw new PkiError(
          "bad-input",
          (name) =>
            `${name("days")} ${days} would end after the CA certificate (valid until ${iso(issuer.notAfter)})`,
        );
      }
      notAfter = issuer.notAfter;
    }
  }
  return { notBefore, notAfter };
}

function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The CA that signs: its certificate (absent for a self-signed root), key and scheme. */
export interface Issuer {
  readonly certificate: x509.X509Certificate | undefined;
  readonly key: PrivateKeyHandle;
  readonly scheme: CaSignatureScheme;
}

/** What the new certificate says. */
export interface CertificateTemplate extends Omit<ProfileInput, "issuerKeyId"> {
  readonly subject: x509.Name;
  readonly serial: string;
  readonly validity: Validity;
}

/** Checks that a CA key is the one its certificate names, before it signs anything. */
export function checkKeyMatchesCertificate(
  key: PrivateKeyHandle,
  cert: x509.X509Certificate,
  what: string,
): void {
  if (!Buffer.from(cert.publicKey.rawData).equals(key.spki)) {
    throw new PkiError("key", `the key ${key.description} does not match ${what}`);
  }
}

/**
 * Builds and signs a certificate. The signature is checked against the issuer's public
 * key before it is returned, so a faulty token never yields a certificate nobody accepts.
 */
export async function signCertificate(
  issuer: Issuer,
  template: CertificateTemplate,
): Promise<x509.X509Certificate> {
  const extensions = profileExtensions({
    ...template,
    ...(issuer.certificate ? { issuerKeyId: certificateKeyId(issuer.certificate) } : {}),
  });
  const signer = handleSigner(issuer.key, issuer.scheme);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: template.serial,
      subject: template.subject,
      issuer: issuer.certificate
        ? new x509.Name(issuer.certificate.subjectName.toArrayBuffer())
        : template.subject,
      notBefore: template.validity.notBefore,
      notAfter: template.validity.notAfter,
      publicKey: new x509.PublicKey(Buffer.from(template.spki)),
      signingKey: signer.signingKey,
      signingAlgorithm: signer.signingAlgorithm,
      extensions,
    },
    signer.crypto,
  );
  checkSignedBy(cert.rawData, issuer);
  return cert;
}

/**
 * Splits a signed DER object (certificate, CRL, CSR: SEQUENCE { tbs, algorithm, BIT
 * STRING }) into the signed bytes and the signature.
 */
function splitSigned(der: ArrayBuffer | Uint8Array): { tbs: Uint8Array; signature: Uint8Array } {
  const bytes = der instanceof Uint8Array ? der : new Uint8Array(der);
  const parsed = asn1js.fromBER(bytes);
  const parts = parsed.result instanceof asn1js.Sequence ? parsed.result.valueBlock.value : [];
  const [tbs, , sig] = parts;
  if (parsed.offset !== bytes.length || parts.length !== 3 || !tbs || !(sig instanceof asn1js.BitString)) {
    throw new PkiError("bad-input", "not a signed DER object");
  }
  // The exact bytes as received: re-encoding could differ from what was signed.
  return { tbs: tbs.valueBeforeDecodeView, signature: sig.valueBlock.valueHexView };
}

/** Verifies with node:crypto that a signed DER object was signed by the issuer's key. */
export function checkSignedBy(der: ArrayBuffer, issuer: Issuer): void {
  const { tbs, signature } = splitSigned(der);
  const info = SCHEMES[issuer.scheme];
  const options =
    info.padding === "pss"
      ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: info.hashLength }
      : info.padding === "ecdsa"
        ? { dsaEncoding: "der" as const }
        : {};
  const ok = verifySignature(info.hash, tbs, { key: issuer.key.publicKey, ...options }, signature);
  if (!ok)
    throw new PkiError("key", `the key ${issuer.key.description} produced a signature that does not verify`);
}
