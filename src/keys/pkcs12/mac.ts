/**
 * The PKCS#12 integrity check (RFC 7292 §4, MacData), done here before node-forge reads the file:
 * forge compares the MAC it computes with the stored one as strings, whose time depends on how
 * many leading bytes agree. Checked here with timingSafeEqual, a mismatch never reaches forge,
 * and forge's own comparison only ever sees equal values.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import forge from "node-forge";
import { PfxError } from "./contents.ts";
import { type Asn1, isUniversal, type Pkcs12Hash, pkcs12Key } from "./forge_asn1.ts";

const OCTET_STRING = 4;
const INTEGER = 2;
const OID = 6;
const SEQUENCE = 16;
const DATA_OID = "1.2.840.113549.1.7.1";

/** MAC digest algorithms node-forge accepts, with their output lengths (the MAC key's length too). */
const MAC_HASHES: Readonly<Record<string, readonly [Pkcs12Hash, number]>> = {
  "1.2.840.113549.2.5": ["md5", 16],
  "1.3.14.3.2.26": ["sha1", 20],
  "2.16.840.1.101.3.4.2.1": ["sha256", 32],
  "2.16.840.1.101.3.4.2.2": ["sha384", 48],
  "2.16.840.1.101.3.4.2.3": ["sha512", 64],
};

const unreadable = (what: string) => new PfxError(`not a readable PKCS#12: ${what}`);

/** The children of a constructed node of UNIVERSAL type `type`, or an error naming `what`. */
function children(node: Asn1 | undefined, type: number, what: string): Asn1[] {
  if (!isUniversal(node, type) || !Array.isArray(node?.value)) throw unreadable(what);
  return node.value;
}

/** The bytes of a primitive UNIVERSAL node of type `type`, or an error naming `what`. */
function bytes(node: Asn1 | undefined, type: number, what: string): string {
  if (!isUniversal(node, type) || typeof node?.value !== "string") throw unreadable(what);
  return node.value;
}

/** The authenticated safe's content octets, which the MAC covers (BER may chunk them). */
function authSafeOctets(contentInfo: Asn1 | undefined): string {
  const [type, explicit] = children(contentInfo, SEQUENCE, "authSafe");
  if (forge.asn1.derToOid(bytes(type, OID, "authSafe content type")) !== DATA_OID)
    throw unreadable("the authenticated safe is not plain data (public-key integrity is not supported)");
  const content = Array.isArray(explicit?.value) ? explicit.value[0] : undefined;
  if (content && isUniversal(content, OCTET_STRING) && Array.isArray(content.value))
    return content.value.map((chunk) => bytes(chunk, OCTET_STRING, "authSafe chunk")).join("");
  return bytes(content, OCTET_STRING, "authSafe content");
}

/**
 * Checks the MAC of a parsed PFX with `password`, in constant time. A PFX without MacData passes
 * (it has no password integrity; node-forge reads it the same way). Iteration counts must have
 * been bounded before this is called.
 */
export function checkPfxMac(pfx: Asn1, password: string): void {
  const [, authSafe, macData] = children(pfx, SEQUENCE, "PFX");
  if (macData === undefined) return;
  const [digestInfo, saltNode, iterationsNode] = children(macData, SEQUENCE, "MacData");
  const [algorithm, digestNode] = children(digestInfo, SEQUENCE, "MAC DigestInfo");
  const [hashOid] = children(algorithm, SEQUENCE, "MAC algorithm");
  const hash = MAC_HASHES[forge.asn1.derToOid(bytes(hashOid, OID, "MAC algorithm"))];
  if (!hash) throw unreadable("unsupported MAC digest algorithm");
  const [name, length] = hash;
  const salt = bytes(saltNode, OCTET_STRING, "MAC salt");
  // As node-forge reads MacData: the count only when the third field is a plain INTEGER, else 1.
  const iterations =
    isUniversal(iterationsNode, INTEGER) && typeof iterationsNode?.value === "string"
      ? Number.parseInt(forge.util.bytesToHex(iterationsNode.value) || "0", 16)
      : 1;
  const key = Buffer.from(pkcs12Key(password, salt, 3, iterations, length, name), "binary");
  const mac = createHmac(name, key)
    .update(Buffer.from(authSafeOctets(authSafe), "binary"))
    .digest();
  key.fill(0);
  const stored = Buffer.from(bytes(digestNode, OCTET_STRING, "MAC digest"), "binary");
  if (stored.length !== mac.length || !timingSafeEqual(stored, mac))
    throw new PfxError("wrong password or corrupted PKCS#12");
}
