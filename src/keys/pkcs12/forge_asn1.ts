/**
 * The node-forge pieces the legacy PKCS#12 writer and the reader share: ASN.1 builders over
 * forge's binary strings, and the PKCS#12 key derivation and legacy ciphers (3DES, RC2; RC2 is
 * not in OpenSSL 3's default provider) its type definitions leave out.
 */
import forge from "node-forge";

const { asn1 } = forge;

/** A node-forge ASN.1 node. */
export type Asn1 = forge.asn1.Asn1;
/** node-forge's byte buffer. */
type Bytes = forge.util.ByteStringBuffer;

const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;
/** SEQUENCE of `items`. */
export const seq = (items: Asn1[]): Asn1 => asn1.create(U, T.SEQUENCE, true, items);
/** SET of `items`. */
export const set = (items: Asn1[]): Asn1 => asn1.create(U, T.SET, true, items);
/** OBJECT IDENTIFIER from dotted text. */
export const oid = (dotted: string): Asn1 => asn1.create(U, T.OID, false, asn1.oidToDer(dotted).getBytes());
/** OCTET STRING of binary-string bytes. */
export const octets = (bytes: string): Asn1 => asn1.create(U, T.OCTETSTRING, false, bytes);
/** INTEGER. */
export const int = (n: number): Asn1 => asn1.create(U, T.INTEGER, false, asn1.integerToDer(n).getBytes());
/** NULL. */
export const nil = (): Asn1 => asn1.create(U, T.NULL, false, "");
/** BMPString; node-forge encodes the JS string as UTF-16BE itself. */
export const bmp = (text: string): Asn1 => asn1.create(U, T.BMPSTRING, false, text);
/** [0] EXPLICIT around `inner`. */
export const explicit0 = (inner: Asn1): Asn1 => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
/** [0] IMPLICIT primitive bytes (EncryptedContentInfo's encryptedContent). */
export const implicit0 = (bytes: string): Asn1 => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, bytes);
/** DER of a node, as a binary string. */
export const der = (node: Asn1): string => asn1.toDer(node).getBytes();
/** A Buffer as a binary string. */
export const bin = (bytes: Uint8Array): string => Buffer.from(bytes).toString("binary");
/** True when `node` is the UNIVERSAL type `type` (an ASN.1 tag number). */
export const isUniversal = (node: Asn1 | undefined, type: number): boolean =>
  node?.tagClass === U && node.type === type;

interface LegacyCipher {
  start(iv: Bytes): void;
  update(data: Bytes): void;
  finish(): boolean;
  readonly output: Bytes;
}
/** The parts of node-forge its type definitions leave out: the PKCS#12 KDF and DES / RC2. */
interface ForgeLegacy {
  readonly pki: {
    readonly pbe: {
      generatePkcs12Key(pw: string, salt: Bytes, id: number, iter: number, n: number, md?: unknown): Bytes;
    };
  };
  readonly des: { createEncryptionCipher(key: Bytes): LegacyCipher };
  readonly rc2: { createEncryptionCipher(key: Bytes, bits: number): LegacyCipher };
}
const legacy = forge as unknown as ForgeLegacy;

/** What the RFC 7292 appendix B KDF derives: 1 a cipher key, 2 an IV, 3 a MAC key. */
export type Pkcs12KeyPurpose = 1 | 2 | 3;

/** The hashes a PKCS#12 KDF and MAC may use, by node:crypto name. */
export type Pkcs12Hash = "md5" | "sha1" | "sha256" | "sha384" | "sha512";

/** RFC 7292 appendix B.2 key derivation over `hash` (default SHA-1), as a binary string of `length` bytes. */
export function pkcs12Key(
  password: string,
  salt: string,
  purpose: Pkcs12KeyPurpose,
  iterations: number,
  length: number,
  hash: Pkcs12Hash = "sha1",
): string {
  return legacy.pki.pbe
    .generatePkcs12Key(
      password,
      forge.util.createBuffer(salt),
      purpose,
      iterations,
      length,
      forge.md[hash].create(),
    )
    .getBytes();
}

/** CBC-encrypts `plain` with 3DES (24-byte key) or 40-bit RC2 (5-byte key) and PKCS#5 padding. */
export function legacyEncrypt(cipher: "3des" | "rc2-40", key: string, iv: string, plain: string): string {
  const keyBytes = forge.util.createBuffer(key);
  const engine =
    cipher === "3des"
      ? legacy.des.createEncryptionCipher(keyBytes)
      : legacy.rc2.createEncryptionCipher(keyBytes, 40);
  engine.start(forge.util.createBuffer(iv));
  engine.update(forge.util.createBuffer(plain));
  engine.finish();
  return engine.output.getBytes();
}
