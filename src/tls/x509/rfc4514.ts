/**
 * Distinguished names as RFC 4514 strings that survive any transport that carries printable
 * ASCII (an HTTP header, a log line): RDNs last-to-first as RFC 4514 §2.1 orders them (the
 * form of nginx's $ssl_client_s_dn), every special character escaped, and every byte outside
 * printable ASCII written as a \HH pair of its UTF-8 encoding. An RFC 4514 parser reading the
 * result gets back exactly the certificate's attribute values, so a CN such as
 * "mallory, O=Admins" stays one CN.
 */
import { children, DerReader, decodeOid, readSingle, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";

/** RFC 4514 §3 short names; any other attribute type is written as its dotted OID. */
const SHORT_NAMES: Readonly<Record<string, string>> = {
  "2.5.4.3": "CN",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.6": "C",
  "2.5.4.9": "STREET",
  "0.9.2342.19200300.100.1.25": "DC",
  "0.9.2342.19200300.100.1.1": "UID",
};

/** ASN.1 string tags whose value is text (RFC 5280 DirectoryString and its relatives). */
const UTF8_STRING = 0x0c;
const BMP_STRING = 0x1e;
const UNIVERSAL_STRING = 0x1c;
/** NumericString, PrintableString, TeletexString, IA5String, VisibleString: one byte a character. */
const BYTE_STRINGS = new Set([0x12, 0x13, 0x14, 0x16, 0x1a]);

/** Characters RFC 4514 §2.4 requires (or, for '=', allows) to be escaped with a backslash. */
const ESCAPED = new Set([0x22, 0x2b, 0x2c, 0x3b, 0x3c, 0x3e, 0x5c, 0x3d]);

/** Formats a Name DER as an ASCII-only RFC 4514 string; an empty name gives "". */
export function formatNameRfc4514(nameDer: Buffer): string {
  const rdns = children(readSingle(nameDer, Tag.SEQUENCE, "distinguished name"), "distinguished name");
  return rdns
    .map((rdn) => {
      if (rdn.tag !== Tag.SET) throw new X509ParseError("distinguished name: RDN is not a SET");
      return children(rdn, "RDN").map(formatAttribute).join("+");
    })
    .reverse()
    .join(",");
}

/** One AttributeTypeAndValue as TYPE=value. */
function formatAttribute(atv: { tag: number; content: Buffer }): string {
  if (atv.tag !== Tag.SEQUENCE) throw new X509ParseError("distinguished name: attribute is not a SEQUENCE");
  const reader = new DerReader(atv.content, "distinguished name attribute");
  const oid = decodeOid(reader.read(Tag.OID).content);
  const value = reader.read();
  reader.end();
  const type = SHORT_NAMES[oid] ?? oid;
  const text = decodeText(value.tag, value.content);
  // A value that is not text (or not valid text) is written as '#' and its DER (RFC 4514 §2.4).
  return text === undefined ? `${type}=#${value.bytes.toString("hex")}` : `${type}=${escapeValue(text)}`;
}

/** The string an ASN.1 string value holds, or undefined when it is not one we decode exactly. */
function decodeText(tag: number, content: Buffer): string | undefined {
  if (tag === UTF8_STRING) {
    const text = content.toString("utf8");
    return Buffer.from(text, "utf8").equals(content) ? text : undefined;
  }
  if (BYTE_STRINGS.has(tag)) return content.toString("latin1");
  if (tag === BMP_STRING && content.length % 2 === 0) return utf16be(content);
  if (tag === UNIVERSAL_STRING && content.length % 4 === 0) {
    const points: number[] = [];
    for (let i = 0; i < content.length; i += 4) points.push(content.readUInt32BE(i));
    if (points.some((p) => p > 0x10ffff || (p >= 0xd800 && p <= 0xdfff))) return undefined;
    return String.fromCodePoint(...points);
  }
  return undefined;
}

function utf16be(content: Buffer): string | undefined {
  const swapped = Buffer.from(content).swap16();
  const text = swapped.toString("utf16le");
  return Buffer.from(text, "utf16le").equals(swapped) ? text : undefined;
}

/** Escapes one attribute value: specials as \c, a leading '#', spaces at either end and all non-printable or non-ASCII bytes as \HH. */
function escapeValue(text: string): string {
  const bytes = Buffer.from(text, "utf8");
  let out = "";
  bytes.forEach((b, i) => {
    const edgeSpace = b === 0x20 && (i === 0 || i === bytes.length - 1);
    if (b < 0x20 || b >= 0x7f || edgeSpace) out += `\\${b.toString(16).toUpperCase().padStart(2, "0")}`;
    else if (ESCAPED.has(b) || (b === 0x23 && i === 0)) out += `\\${String.fromCharCode(b)}`;
    else out += String.fromCharCode(b);
  });
  return out;
}
