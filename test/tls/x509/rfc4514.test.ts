/**
 * formatNameRfc4514: the ASCII-only RFC 4514 form the reverse proxy sends upstream. Names are
 * given as DER hex so each string type and each malformed shape is exactly what the test says.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { X509ParseError } from "../../../src/tls/x509/errors.ts";
import { formatNameRfc4514 } from "../../../src/tls/x509/rfc4514.ts";

/** SEQUENCE { SET { SEQUENCE { OID, value } } } for one attribute, value given as DER hex. */
function oneAttribute(oidHex: string, valueHex: string): Buffer {
  const atv = `06${(oidHex.length / 2).toString(16).padStart(2, "0")}${oidHex}${valueHex}`;
  const seq = `30${(atv.length / 2).toString(16).padStart(2, "0")}${atv}`;
  const set = `31${(seq.length / 2).toString(16).padStart(2, "0")}${seq}`;
  return Buffer.from(`30${(set.length / 2).toString(16).padStart(2, "0")}${set}`, "hex");
}

const CN = "550403";

test("string types decode to their text; other values are written as #DER", () => {
  assert.equal(formatNameRfc4514(oneAttribute(CN, "130361622c")), "CN=ab\\,"); // PrintableString
  assert.equal(formatNameRfc4514(oneAttribute(CN, "1e0400e9006a")), "CN=\\C3\\A9j"); // BMPString "éj"
  assert.equal(formatNameRfc4514(oneAttribute(CN, "1c040001f600")), "CN=\\F0\\9F\\98\\80"); // UniversalString 😀
  assert.equal(formatNameRfc4514(oneAttribute(CN, "020101")), "CN=#020101"); // INTEGER
  assert.equal(formatNameRfc4514(oneAttribute(CN, "0c02c328")), "CN=#0c02c328"); // invalid UTF-8
  assert.equal(formatNameRfc4514(oneAttribute("2a0304", "0c0178")), "1.2.3.4=x"); // unknown type: dotted OID
  assert.equal(formatNameRfc4514(Buffer.from("3000", "hex")), "");
});

test("leading '#', edge spaces, '=' and control bytes are escaped", () => {
  assert.equal(formatNameRfc4514(oneAttribute(CN, "0c0623612062203d")), "CN=\\#a b \\=");
  assert.equal(formatNameRfc4514(oneAttribute(CN, "0c03200d20")), "CN=\\20\\0D\\20");
  assert.equal(formatNameRfc4514(oneAttribute(CN, "0c0100")), "CN=\\00");
});

test("malformed names are X509ParseError, never another exception", () => {
  for (const hex of ["", "30", "3003310130", "30033101", "300531033001ff", "3007310530030601", "30023000"]) {
    assert.throws(() => formatNameRfc4514(Buffer.from(hex, "hex")), X509ParseError, hex);
  }
});
