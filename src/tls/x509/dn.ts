/**
 * Distinguished names: the encoded RDN list (for byte-exact comparisons) and a readable
 * RFC 4514-style string (from @peculiar/x509) for messages.
 */
import { createRequire } from "node:module";
import { children, readSingle, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";

/**
 * @peculiar/x509, loaded on the first name printed: with its ASN.1 schema libraries it is a
 * third of a TLS client's start-up, and a handshake that succeeds never prints a name.
 */
let peculiar: typeof import("@peculiar/x509") | undefined;
function peculiarX509(): typeof import("@peculiar/x509") {
  if (peculiar === undefined) {
    const require = createRequire(import.meta.url);
    require("reflect-metadata");
    peculiar = require("@peculiar/x509") as typeof import("@peculiar/x509");
  }
  return peculiar;
}

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
    return new (peculiarX509().Name)(Uint8Array.from(nameDer)).toString();
  } catch {
    return `#${nameDer.toString("hex")}`;
  }
}
