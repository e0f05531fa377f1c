/**
 * A check on SubjectPublicKeyInfo before OpenSSL sees it. RFC 5480 §2.1.1 allows an EC key
 * only with a named curve (an OID); explicit and implicit curve parameters are forbidden. They
 * are also where OpenSSL builds EC keys that Node's asymmetricKeyDetails cannot describe, which
 * ends the process with a native assertion instead of an exception (found by fuzzing CSRs), so
 * they are refused here, from the DER, before any key object exists.
 */
import { children, decodeOid, readSingle, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";

/** id-ecPublicKey (RFC 5480). */
const EC_PUBLIC_KEY = "1.2.840.10045.2.1";

/** Why this SPKI must not be imported, or undefined when it may be. */
export function spkiProblem(spki: Buffer): string | undefined {
  try {
    const info = readSingle(spki, Tag.SEQUENCE, "public key info");
    const [algorithm] = children(info, "public key info");
    if (algorithm?.tag !== Tag.SEQUENCE) return "public key info without an algorithm";
    const [oid, params] = children(algorithm, "public key algorithm");
    if (oid?.tag !== Tag.OID) return "public key algorithm without an identifier";
    if (decodeOid(oid.content) !== EC_PUBLIC_KEY) return undefined;
    if (params?.tag !== Tag.OID)
      return "EC public key without a named curve (RFC 5480 forbids explicit curves)";
    return undefined;
  } catch (err) {
    return err instanceof X509ParseError ? err.message : "malformed public key info";
  }
}
