/**
 * A check on SubjectPublicKeyInfo before OpenSSL sees it. RFC 5480 §2.1.1 allows an EC key
 * only with a named curve (an OID); explicit and implicit curve parameters are forbidden. They
 * are also where OpenSSL builds EC keys that Node's asymmetricKeyDetails cannot describe, which
 * ends the process with a native assertion instead of an exception (found by fuzzing CSRs), so
 * they are refused here, from the DER, before any key object exists. So is an EC point that is
 * not in compressed or uncompressed form (SEC 1 §2.3.3): OpenSSL imports the one-byte point at
 * infinity as a key that likewise ends the process when Node describes or exports it (found by
 * fuzzing certificates: a peer's certificate reached it).
 */
import { children, decodeOid, readSingle, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";

/** id-ecPublicKey (RFC 5480). */
const EC_PUBLIC_KEY = "1.2.840.10045.2.1";

/** Why this SPKI must not be imported, or undefined when it may be. */
export function spkiProblem(spki: Buffer): string | undefined {
  try {
    const info = readSingle(spki, Tag.SEQUENCE, "public key info");
    const [algorithm, key] = children(info, "public key info");
    if (algorithm?.tag !== Tag.SEQUENCE) return "public key info without an algorithm";
    const [oid, params] = children(algorithm, "public key algorithm");
    if (oid?.tag !== Tag.OID) return "public key algorithm without an identifier";
    if (decodeOid(oid.content) !== EC_PUBLIC_KEY) return undefined;
    if (params?.tag !== Tag.OID)
      return "EC public key without a named curve (RFC 5480 forbids explicit curves)";
    if (key?.tag !== Tag.BIT_STRING) return "public key info without a key";
    return ecPointProblem(key.content);
  } catch (err) {
    return err instanceof X509ParseError ? err.message : "malformed public key info";
  }
}

/**
 * Why the BIT STRING content of an EC public key is unusable: it must have no unused bits and
 * hold a point in compressed (02, 03) or uncompressed (04) form. The point at infinity (00)
 * and the hybrid forms (06, 07) are refused; whether the point is on the curve is OpenSSL's
 * check when the key is imported.
 */
function ecPointProblem(bits: Buffer): string | undefined {
  if (bits[0] !== 0) return "EC public key with unused bits";
  const form = bits[1];
  if (form === 0x02 || form === 0x03 || form === 0x04) return undefined;
  if (form === 0x00) return "EC public key is the point at infinity";
  return "EC public key in an unsupported point form";
}
