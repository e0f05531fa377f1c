/**
 * Issuance-time check of name constraints: a certificate whose names fall outside the
 * nameConstraints of a CA above it would be refused by every verifier (ours included), so
 * the CA says so and writes nothing instead of handing out a certificate that cannot work.
 */
import type * as x509 from "@peculiar/x509";
import { Certificate, checkNameConstraints } from "../tls/x509/index.ts";
import { PkiError } from "./errors.ts";

/**
 * Throws a PkiError when `issued` (just signed, not yet written) has a name outside the
 * constraints of any certificate in `issuers` (its issuing CA up to the root).
 */
export function refuseOutsideNameConstraints(
  issued: x509.X509Certificate,
  issuers: readonly x509.X509Certificate[],
): void {
  const leaf = Certificate.fromDer(Buffer.from(issued.rawData));
  for (const issuer of issuers) {
    const constraints = Certificate.fromDer(Buffer.from(issuer.rawData)).nameConstraints;
    if (!constraints) continue;
    const check = checkNameConstraints(constraints, leaf);
    if (!check.ok) {
      throw new PkiError(
        "bad-input",
        `not issued: ${check.detail}, under the name constraints of "${issuer.subject}"`,
      );
    }
  }
}
