/**
 * Issuance-time check of name constraints: a certificate whose names fall outside the
 * nameConstraints of a CA above it would be refused by every verifier (ours included), so
 * the CA says so before it generates a key or signs anything, instead of handing out a
 * certificate that cannot work.
 */
import type * as x509 from "@peculiar/x509";
import { Certificate, checkNames, type GeneralName } from "../tls/x509/index.ts";
import { PkiError } from "./errors.ts";
import { ipToBytes, type SanEntry } from "./names.ts";

/**
 * Throws a PkiError when a certificate for `subject` with `san` would have a name outside
 * the constraints of any certificate in `issuers` (its issuing CA up to the root).
 */
export function refuseOutsideNameConstraints(
  subject: x509.Name,
  san: readonly SanEntry[],
  issuers: readonly x509.X509Certificate[],
): void {
  const names = san.map(generalName);
  const subjectDer = Buffer.from(subject.toArrayBuffer());
  for (const issuer of issuers) {
    const constraints = Certificate.fromDer(Buffer.from(issuer.rawData)).nameConstraints;
    if (!constraints) continue;
    const check = checkNames(constraints, names, subjectDer);
    if (!check.ok) {
      throw new PkiError(
        "bad-input",
        `not issued: ${check.detail}, under the name constraints of "${issuer.subject}"`,
      );
    }
  }
}

function generalName(entry: SanEntry): GeneralName {
  if (entry.type === "dns") return { type: "dns", value: entry.value };
  const bytes = ipToBytes(entry.value);
  if (!bytes) throw new PkiError("bad-input", `'${entry.value}' is not an IP address`);
  return { type: "ip", bytes: Buffer.from(bytes) };
}
