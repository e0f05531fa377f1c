/**
 * GeneralName (RFC 5280 §4.2.1.6) decoding with the exact bytes kept: subjectAltName
 * entries and name-constraint subtrees both use it, and both need raw IP octets (4/16
 * bytes in a SAN, address+mask 8/32 bytes in a constraint) and raw directory names.
 */
import { children, type DerElement, readSingle, Tag } from "./der.ts";
import { nameRdns } from "./dn.ts";
import { X509ParseError } from "./errors.ts";

/** A decoded GeneralName; names this validator does not interpret keep only their tag. */
export type GeneralName =
  | { readonly type: "dns"; readonly value: string }
  | { readonly type: "ip"; readonly bytes: Buffer }
  | { readonly type: "dn"; readonly der: Buffer }
  | { readonly type: "email"; readonly value: string }
  | { readonly type: "uri"; readonly value: string }
  | { readonly type: "other"; readonly tag: number };

/** The GeneralName kinds, as used by name constraints. */
export type GeneralNameType = GeneralName["type"];

/** Decodes a `GeneralNames` SEQUENCE (a whole SAN extension value). */
export function parseGeneralNames(der: Buffer, what: string): GeneralName[] {
  const seq = readSingle(der, Tag.SEQUENCE, what);
  const names = children(seq, what).map((el) => parseGeneralName(el, what));
  if (names.length === 0) throw new X509ParseError(`${what}: empty name list`);
  return names;
}

/** Decodes one GeneralName element (context-tagged CHOICE). */
export function parseGeneralName(el: DerElement, what: string): GeneralName {
  switch (el.tag) {
    case 0x81:
      return { type: "email", value: ia5(el.content, what) };
    case 0x82:
      return { type: "dns", value: ia5(el.content, what) };
    case 0x86:
      return { type: "uri", value: ia5(el.content, what) };
    case 0x87:
      return { type: "ip", bytes: Buffer.from(el.content) };
    case 0xa4: {
      // directoryName is EXPLICIT because Name is a CHOICE: the content is the Name SEQUENCE.
      const der = Buffer.from(readSingle(el.content, Tag.SEQUENCE, `${what} directoryName`).bytes);
      nameRdns(der); // checked now so that constraint matching later cannot fail
      return { type: "dn", der };
    }
    case 0xa0:
    case 0xa3:
    case 0xa5:
    case 0x88:
      return { type: "other", tag: el.tag };
    default:
      throw new X509ParseError(`${what}: invalid GeneralName tag 0x${el.tag.toString(16)}`);
  }
}

/** IA5String content: 7-bit ASCII only; anything else is a malformed name, not a name to match. */
function ia5(content: Buffer, what: string): string {
  for (const byte of content) {
    if (byte > 0x7e || byte < 0x20)
      throw new X509ParseError(`${what}: name contains a non-printable or non-ASCII byte`);
  }
  return content.toString("latin1");
}
