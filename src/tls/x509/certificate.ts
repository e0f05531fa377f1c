/**
 * A typed, immutable view of one DER certificate. Parsing is strict and happens once:
 * the outer structure and every field the validator relies on are decoded here, by
 * @peculiar/x509 (names, dates, standard extensions), by OpenSSL through
 * node:crypto (a second opinion on the encoding, and the public key), and by our DER
 * reader where exact bytes matter (the signed TBS block, raw names, GeneralNames).
 * Anything malformed throws an {@link X509ParseError} with one clear line.
 */
import "reflect-metadata";
import {
  createHash,
  createPublicKey,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
} from "node:crypto";
import * as px from "@peculiar/x509";

export type { CertificateExtension } from "./extensions.ts";

import { describeKey, type KeyInfo, parseSignatureAlgorithm, type SignatureAlgorithm } from "./algorithms.ts";
import { children, contextTag, type DerElement, DerReader, readSingle, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";
import { type CertificateExtension, parseExtensions } from "./extensions.ts";
import { type GeneralName, parseGeneralName, parseGeneralNames } from "./generalnames.ts";
import { decodePemBlocks } from "./pem.ts";

/** Largest certificate accepted (real ones are a few KiB; TLS caps a chain at 16 MiB). */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;
/** Most certificates accepted from one PEM bundle. */
export const MAX_BUNDLE_CERTIFICATES = 4096;

/** Extension OIDs the validator understands. */
export const ExtensionOid = {
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  nameConstraints: "2.5.29.30",
  certificatePolicies: "2.5.29.32",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
} as const;

/** extendedKeyUsage purposes used by TLS. */
export const EkuOid = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  any: "2.5.29.37.0",
} as const;

/** keyUsage bits by name (RFC 5280 §4.2.1.3). */
export type KeyUsageName =
  | "digitalSignature"
  | "nonRepudiation"
  | "keyEncipherment"
  | "dataEncipherment"
  | "keyAgreement"
  | "keyCertSign"
  | "cRLSign"
  | "encipherOnly"
  | "decipherOnly";

/** basicConstraints. */
export interface BasicConstraints {
  readonly ca: boolean;
  /** pathLenConstraint, when present. */
  readonly pathLen?: number;
}

/** nameConstraints: the permitted and excluded subtree bases (minimum 0, no maximum, as RFC 5280 requires). */
export interface NameConstraints {
  readonly permitted: readonly GeneralName[];
  readonly excluded: readonly GeneralName[];
}

/** A parsed X.509 certificate. Construct with {@link Certificate.fromDer} or {@link Certificate.fromPem}. */
export class Certificate {
  /** The complete DER encoding. */
  readonly der: Buffer;
  /** The signed TBSCertificate bytes exactly as encoded. */
  readonly tbs: Buffer;
  /** 1, 2 or 3. */
  readonly version: number;
  /** Serial number as lower-case hex of its encoded INTEGER octets. */
  readonly serialHex: string;
  /** Issuer Name DER (chain building compares these bytes). */
  readonly issuerDer: Buffer;
  /** Issuer as an RFC 4514-style string, e.g. "CN=Root, O=Example". */
  readonly issuer: string;
  /** Subject Name DER. */
  readonly subjectDer: Buffer;
  /** Subject as an RFC 4514-style string. */
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Buffer;
  /** The subject public key. */
  readonly publicKey: KeyObject;
  /** Key type, size, curve and (when refused) why. */
  readonly keyInfo: KeyInfo;
  /** The algorithm the issuer signed this certificate with. */
  readonly signatureAlgorithm: SignatureAlgorithm;
  /** The issuer's signature over {@link tbs}. */
  readonly signatureValue: Buffer;
  /** All extensions in order. */
  readonly extensions: readonly CertificateExtension[];
  readonly basicConstraints?: BasicConstraints;
  /** keyUsage bits that are set; undefined when the extension is absent. */
  readonly keyUsage?: ReadonlySet<KeyUsageName>;
  /** extendedKeyUsage OIDs; undefined when the extension is absent. */
  readonly extKeyUsage?: readonly string[];
  /** All subjectAltName entries (empty when there is no SAN extension). */
  readonly subjectAltNames: readonly GeneralName[];
  /** SAN dNSName entries, as written. */
  readonly sanDns: readonly string[];
  /** SAN iPAddress entries (4 or 16 bytes each). */
  readonly sanIps: readonly Buffer[];
  readonly nameConstraints?: NameConstraints;
  readonly subjectKeyId?: Buffer;
  readonly authorityKeyId?: Buffer;
  /** SHA-256 of the DER, lower-case hex. */
  readonly fingerprintSha256: string;

  private constructor(der: Buffer) {
    if (der.length > MAX_CERTIFICATE_BYTES) {
      throw new X509ParseError(`certificate too large (${der.length} bytes > ${MAX_CERTIFICATE_BYTES})`);
    }
    this.der = der;
    const outer = new DerReader(readSingle(der, Tag.SEQUENCE, "certificate").content, "certificate");
    const tbsElement = outer.read(Tag.SEQUENCE);
    const outerAlg = outer.read(Tag.SEQUENCE);
    const signature = outer.read(Tag.BIT_STRING);
    outer.end();
    this.tbs = tbsElement.bytes;
    if (signature.content.length < 2 || signature.content[0] !== 0) {
      throw new X509ParseError("certificate: malformed signature BIT STRING");
    }
    this.signatureValue = signature.content.subarray(1);
    this.signatureAlgorithm = parseSignatureAlgorithm(outerAlg.bytes);

    const tbs = new DerReader(tbsElement.content, "TBSCertificate");
    const versionTag = tbs.readOptional(contextTag(0, true));
    this.version = versionTag ? parseVersion(versionTag) : 1;
    this.serialHex = tbs.read(Tag.INTEGER).content.toString("hex");
    if (this.serialHex.length === 0) throw new X509ParseError("certificate: empty serial number");
    const innerAlg = tbs.read(Tag.SEQUENCE);
    // RFC 5280 §4.1.1.2: the signed and unsigned algorithm fields must be identical.
    if (!innerAlg.bytes.equals(outerAlg.bytes))
      throw new X509ParseError("certificate: signature algorithm fields differ");
    this.issuerDer = tbs.read(Tag.SEQUENCE).bytes;
    tbs.read(Tag.SEQUENCE); // validity, decoded below by @peculiar/x509
    this.subjectDer = tbs.read(Tag.SEQUENCE).bytes;
    this.spki = tbs.read(Tag.SEQUENCE).bytes;
    tbs.readOptional(0x81); // issuerUniqueID
    tbs.readOptional(0x82); // subjectUniqueID
    const extensionsTag = tbs.readOptional(contextTag(3, true));
    tbs.end();
    if (extensionsTag && this.version !== 3)
      throw new X509ParseError(`certificate: extensions in a version ${this.version} certificate`);
    this.extensions = extensionsTag
      ? parseExtensions(readSingle(extensionsTag.content, Tag.SEQUENCE, "extensions"))
      : [];

    const parsed = parseWithLibraries(der);
    this.issuer = parsed.issuer;
    this.subject = parsed.subject;
    this.notBefore = parsed.notBefore;
    this.notAfter = parsed.notAfter;
    if (parsed.basicConstraints) this.basicConstraints = parsed.basicConstraints;
    if (parsed.keyUsage) this.keyUsage = parsed.keyUsage;
    if (parsed.extKeyUsage) this.extKeyUsage = parsed.extKeyUsage;
    if (parsed.subjectKeyId) this.subjectKeyId = parsed.subjectKeyId;
    if (parsed.authorityKeyId) this.authorityKeyId = parsed.authorityKeyId;
    this.publicKey = importSpki(this.spki);
    this.keyInfo = describeKey(this.publicKey);
    this.fingerprintSha256 = createHash("sha256").update(der).digest("hex");

    const ext = (oid: string) => this.extensions.find((e) => e.oid === oid);
    const san = ext(ExtensionOid.subjectAltName);
    this.subjectAltNames = san ? parseGeneralNames(san.value, "subjectAltName") : [];
    this.sanDns = this.subjectAltNames.flatMap((n) => (n.type === "dns" ? [n.value] : []));
    this.sanIps = this.subjectAltNames.flatMap((n) => (n.type === "ip" ? [n.bytes] : []));
    for (const ip of this.sanIps) {
      if (ip.length !== 4 && ip.length !== 16)
        throw new X509ParseError(`subjectAltName: IP address of ${ip.length} bytes`);
    }
    const nc = ext(ExtensionOid.nameConstraints);
    if (nc) this.nameConstraints = parseNameConstraints(nc.value);
  }

  /** Parses one DER certificate; throws {@link X509ParseError} on any malformation. */
  static fromDer(der: Uint8Array): Certificate {
    if (der.length === 0) throw new X509ParseError("certificate: empty input");
    return new Certificate(Buffer.from(der));
  }

  /** Parses text holding exactly one CERTIFICATE PEM block (other block types are ignored). */
  static fromPem(text: string): Certificate {
    const certificates = parsePemBundle(text);
    if (certificates.length !== 1) {
      throw new X509ParseError(`expected one certificate in PEM input, found ${certificates.length}`);
    }
    return certificates[0]!;
  }

  /** True when issuer and subject names are byte-identical (self-issued, RFC 5280 §3.2). */
  get isSelfIssued(): boolean {
    return this.issuerDer.equals(this.subjectDer);
  }

  /** A short name for messages: the subject, or the serial when the subject is empty. */
  get label(): string {
    return this.subject ? `'${this.subject}'` : `with empty subject (serial ${this.serialHex})`;
  }

  /** True when both certificates have identical DER. */
  equals(other: Certificate): boolean {
    return this.der.equals(other.der);
  }

  /** The certificate as a PEM block. */
  toPem(): string {
    const lines = this.der.toString("base64").match(/.{1,64}/g) ?? [];
    return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
  }
}

/**
 * Parses every CERTIFICATE block of a PEM bundle, in order. Other block types (keys,
 * CRLs) are skipped; an empty result, corrupt PEM or a bad certificate is an error
 * naming the block.
 */
export function parsePemBundle(text: string): Certificate[] {
  const blocks = decodePemBlocks(text).filter((b) => b.label === "CERTIFICATE");
  if (blocks.length === 0) throw new X509ParseError("no CERTIFICATE block in PEM input");
  if (blocks.length > MAX_BUNDLE_CERTIFICATES) {
    throw new X509ParseError(
      `too many certificates in PEM input (${blocks.length} > ${MAX_BUNDLE_CERTIFICATES})`,
    );
  }
  return blocks.map((block, i) => {
    try {
      return Certificate.fromDer(block.der);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new X509ParseError(`certificate #${i + 1} in PEM input: ${message}`);
    }
  });
}

function parseVersion(tagged: DerElement): number {
  const integer = readSingle(tagged.content, Tag.INTEGER, "certificate version");
  // DEFAULT v1 must be omitted in DER, so an explicit version is v2 (1) or v3 (2).
  if (integer.content.length !== 1 || (integer.content[0] !== 1 && integer.content[0] !== 2)) {
    throw new X509ParseError("certificate: invalid version");
  }
  return integer.content[0]! + 1;
}

function parseNameConstraints(value: Buffer): NameConstraints {
  const seq = readSingle(value, Tag.SEQUENCE, "nameConstraints");
  const permitted: GeneralName[] = [];
  const excluded: GeneralName[] = [];
  for (const part of children(seq, "nameConstraints")) {
    const target = part.tag === 0xa0 ? permitted : part.tag === 0xa1 ? excluded : undefined;
    if (!target) throw new X509ParseError("nameConstraints: unexpected field");
    for (const subtree of children(part, "nameConstraints subtree")) {
      if (subtree.tag !== Tag.SEQUENCE)
        throw new X509ParseError("nameConstraints: subtree is not a SEQUENCE");
      const reader = new DerReader(subtree.content, "nameConstraints subtree");
      target.push(parseGeneralName(reader.read(), "nameConstraints"));
      // RFC 5280 §4.2.1.10: minimum MUST be zero (so omitted in DER) and maximum MUST be absent.
      if (!reader.done)
        throw new X509ParseError("nameConstraints: minimum/maximum distances are not allowed");
    }
  }
  if (permitted.length === 0 && excluded.length === 0) throw new X509ParseError("nameConstraints: empty");
  return { permitted, excluded };
}

/** The fields taken from @peculiar/x509, all decoded eagerly so that any failure surfaces here. */
interface LibraryFields {
  issuer: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  basicConstraints?: BasicConstraints;
  keyUsage?: Set<KeyUsageName>;
  extKeyUsage?: string[];
  subjectKeyId?: Buffer;
  authorityKeyId?: Buffer;
}

/** Both libraries must accept the encoding; their errors become one-line parse errors. */
function parseWithLibraries(der: Buffer): LibraryFields {
  try {
    new NodeX509Certificate(der);
  } catch (err) {
    throw new X509ParseError(`certificate: OpenSSL rejects the encoding (${firstLine(err)})`);
  }
  try {
    const typed = new px.X509Certificate(Uint8Array.from(der));
    const fields: LibraryFields = {
      issuer: typed.issuer,
      subject: typed.subject,
      notBefore: typed.notBefore,
      notAfter: typed.notAfter,
    };
    // Extension values are decoded lazily by the library: read them all now, inside this try.
    const bc = typed.getExtension(px.BasicConstraintsExtension);
    if (bc)
      fields.basicConstraints =
        bc.pathLength === undefined ? { ca: bc.ca } : { ca: bc.ca, pathLen: bc.pathLength };
    const ku = typed.getExtension(px.KeyUsagesExtension);
    if (ku) fields.keyUsage = keyUsageNames(ku.usages);
    const eku = typed.getExtension(px.ExtendedKeyUsageExtension);
    // Array.from: the library's list is an Array subclass whose map() would keep the subclass.
    if (eku) fields.extKeyUsage = Array.from(eku.usages, String);
    const ski = typed.getExtension(px.SubjectKeyIdentifierExtension);
    if (ski) fields.subjectKeyId = Buffer.from(ski.keyId, "hex");
    const aki = typed.getExtension(px.AuthorityKeyIdentifierExtension);
    if (aki?.keyId) fields.authorityKeyId = Buffer.from(aki.keyId, "hex");
    return fields;
  } catch (err) {
    throw new X509ParseError(`certificate: ${firstLine(err)}`);
  }
}

function importSpki(spki: Buffer): KeyObject {
  try {
    return createPublicKey({ key: spki, format: "der", type: "spki" });
  } catch (err) {
    throw new X509ParseError(`certificate: unusable public key (${firstLine(err)})`);
  }
}

const KEY_USAGE_BITS: ReadonlyArray<[px.KeyUsageFlags, KeyUsageName]> = [
  [px.KeyUsageFlags.digitalSignature, "digitalSignature"],
  [px.KeyUsageFlags.nonRepudiation, "nonRepudiation"],
  [px.KeyUsageFlags.keyEncipherment, "keyEncipherment"],
  [px.KeyUsageFlags.dataEncipherment, "dataEncipherment"],
  [px.KeyUsageFlags.keyAgreement, "keyAgreement"],
  [px.KeyUsageFlags.keyCertSign, "keyCertSign"],
  [px.KeyUsageFlags.cRLSign, "cRLSign"],
  [px.KeyUsageFlags.encipherOnly, "encipherOnly"],
  [px.KeyUsageFlags.decipherOnly, "decipherOnly"],
];

function keyUsageNames(flags: number): Set<KeyUsageName> {
  return new Set(KEY_USAGE_BITS.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name));
}

/** The first line of an error's message, for one-line diagnostics. */
export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0] ?? message;
}
