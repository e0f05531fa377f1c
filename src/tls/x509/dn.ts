/**
 * Distinguished names: the encoded RDN list (for byte-exact comparisons) and a readable
 * RFC 4514-style string (from @peculiar/x509) for messages.
 */
import "reflect-metadata";
import * as px from "@peculiar/x509";
import { children, readSingle, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";

/** Splits a Name DER (SEQUENCE OF RelativeDistinguishedName) into its encoded RDNs. */
export function nameRdns(nameDer: Buffer): Buffer[] {
  const seq = readSingle(nameDer, Tag.SEQUENCE, "distinguished name");
  return children(seq, "distinguished name").map((rdn) => {
    if (rdn.tag !== Tag.SET) throw new X509ParseError("distinguished name: RDN is not a SET");
    return rdn.bytes;
  });
}

/**
 * Formats a Name DER as "CN=leaf, O=Example"; an empty name gives "". Used for messages
 * only, so it never throws: a name the library cannot print is shown as "#<hex>".
 */
export function formatName(nameDer: Buffer): string {
  try {
    return new px.Name(Uint8Array.from(nameDer)).toString();
  } catch {
    return `#${nameDer.toString("hex")}`;
  }
}
