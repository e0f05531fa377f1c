/**
 * Certificate revocation lists (RFC 5280 §5): v2 CRLs with the CRL number and the
 * authority key identifier, one entry per revoked certificate with its reason, signed
 * through the CA's key handle.
 */
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import type { Issuer } from "./certificate.ts";
import { checkSignedBy } from "./certificate.ts";
import { PkiError } from "./errors.ts";
import { certificateKeyId } from "./profiles.ts";
import { handleSigner } from "./signer.ts";

/** One revoked certificate. */
export interface RevokedEntry {
  /** Lower-case hex serial. */
  readonly serial: string;
  readonly revokedAt: Date;
  /** RFC 5280 CRLReason code; 0 (unspecified) is left out of the entry, as §5.3.1 advises. */
  readonly reason: number;
}

/** What a CRL says. */
export interface CrlTemplate {
  readonly number: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly entries: readonly RevokedEntry[];
}

/** DER INTEGER content of a positive serial given in hex: a leading 00 when the top bit is set. */
function serialContentHex(serial: string): string {
  const even = serial.length % 2 === 1 ? `0${serial}` : serial;
  return Number.parseInt(even.slice(0, 1), 16) >= 8 ? `00${even}` : even;
}

/** Builds and signs a CRL for an issuer that has a certificate (a CA directory's CA). */
export async function signCrl(issuer: Issuer, template: CrlTemplate): Promise<x509.X509Crl> {
  if (!issuer.certificate) throw new PkiError("internal", "a CRL needs the issuer's certificate");
  if (template.nextUpdate <= template.thisUpdate)
    throw new PkiError("bad-input", "the CRL would expire before it starts");
  const signer = handleSigner(issuer.key, issuer.scheme);
  const keyId = Buffer.from(certificateKeyId(issuer.certificate)).toString("hex");
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: new x509.Name(issuer.certificate.subjectName.toArrayBuffer()),
      thisUpdate: template.thisUpdate,
      nextUpdate: template.nextUpdate,
      entries: template.entries.map((e) => ({
        serialNumber: serialContentHex(e.serial),
        revocationDate: e.revokedAt,
        ...(e.reason !== 0 ? { reason: e.reason } : {}),
      })),
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(keyId, false),
        new x509.Extension("2.5.29.20", false, new asn1js.Integer({ value: template.number }).toBER()),
      ],
      signingKey: signer.signingKey,
      signingAlgorithm: signer.signingAlgorithm,
    },
    signer.crypto,
  );
  checkSignedBy(crl.rawData, issuer);
  return crl;
}
