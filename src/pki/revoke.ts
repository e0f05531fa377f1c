/**
 * Revocation: `cert revoke` marks a certificate in the CA's index; `ca crl` signs a CRL
 * of everything revoked so far and writes it out (and as the CA's crl.pem).
 */
import { join, resolve } from "node:path";
import * as x509 from "@peculiar/x509";
import { openIssuer } from "./ca_key.ts";
import {
  CA_FILES,
  encodeIndex,
  type IssuedCertificate,
  loadCaDirectory,
  locateCaDirectory,
  REVOCATION_REASONS,
  type RevocationReason,
} from "./cadir.ts";
import { normalizeSerial } from "./certificate.ts";
import { signCrl } from "./crl.ts";
import { PkiError } from "./errors.ts";
import { withDirLock } from "./lock.ts";
import { withStagedWrites } from "./staged.ts";

/** Default CRL lifetime in days. */
export const CRL_DAYS = 7;

/** RFC 5280 CRLReason codes by name. */
const REASON_CODES: Record<RevocationReason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
};

/** Checks and narrows a `--reason` value. */
export function parseReason(text: string): RevocationReason {
  const found = REVOCATION_REASONS.find((r) => r.toLowerCase() === text.toLowerCase());
  if (!found)
    throw new PkiError(
      "bad-input",
      `unknown revocation reason '${text}' (use ${REVOCATION_REASONS.join(", ")})`,
    );
  return found;
}

/** `cert revoke`: marks a certificate this CA issued as revoked. Returns its index entry. */
export async function revokeCertificate(options: {
  readonly ca: string;
  readonly serial: string;
  readonly reason?: RevocationReason;
}): Promise<IssuedCertificate> {
  const serial = normalizeSerial(options.serial);
  const caDir = await locateCaDirectory(options.ca);
  return withDirLock(caDir, async () => {
    const ca = await loadCaDirectory(caDir);
    const entry = ca.index.certificates.find((c) => c.serial === serial);
    if (!entry) throw new PkiError("bad-input", `serial ${serial} was not issued by the CA in ${caDir}`);
    if (entry.revoked)
      throw new PkiError("bad-input", `serial ${serial} is already revoked (${entry.revoked.at})`);
    const at = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const revoked: IssuedCertificate = { ...entry, revoked: { at, reason: options.reason ?? "unspecified" } };
    const certificates = ca.index.certificates.map((c) => (c === entry ? revoked : c));
    await withStagedWrites((batch) =>
      batch.add(join(caDir, CA_FILES.index), encodeIndex({ ...ca.index, certificates })),
    );
    return revoked;
  });
}

/** `ca crl`: signs a new CRL (next CRL number) and writes it to `out` and the CA's crl.pem. */
export async function publishCrl(options: {
  readonly dir: string;
  readonly out: string;
  readonly days?: number;
  readonly caKey?: string;
}): Promise<x509.X509Crl> {
  const days = options.days ?? CRL_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    throw new PkiError(
      "bad-input",
      (name) => `${name("days")} must be a whole number from 1 to 3650, not ${days}`,
    );
  }
  const out = resolve(options.out);
  const caDir = await locateCaDirectory(options.dir);
  return withDirLock(caDir, async () => {
    const ca = await loadCaDirectory(caDir);
    const issuer = await openIssuer(ca, options.caKey);
    try {
      const number = ca.index.crlNumber + 1;
      const now = new Date(Math.floor(Date.now() / 1000) * 1000);
      const crl = await signCrl(issuer, {
        number,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + days * 86_400_000),
        entries: ca.index.certificates.flatMap((c) =>
          c.revoked
            ? [
                {
                  serial: c.serial,
                  revokedAt: new Date(c.revoked.at),
                  reason: REASON_CODES[c.revoked.reason],
                },
              ]
            : [],
        ),
      });
      // "X509 CRL" is the PEM label OpenSSL, nginx and RFC 7468 use (the library writes "CRL").
      const pem = `${x509.PemConverter.encode(crl.rawData, "X509 CRL")}\n`;
      await withStagedWrites((batch) =>
        batch.addAll([
          { target: out, data: pem },
          { target: join(caDir, CA_FILES.crl), data: pem },
          { target: join(caDir, CA_FILES.index), data: encodeIndex({ ...ca.index, crlNumber: number }) },
        ]),
      );
      return crl;
    } finally {
      await issuer.key.close();
    }
  });
}
