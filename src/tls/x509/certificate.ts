/**
 * A typed, immutable view of one DER certificate. Parsing is strict and happens once:
 * our bounds-checked DER reader decodes the structure and every field the validator
 * relies on (keeping exact bytes where they matter: the signed TBS block, raw names,
 * GeneralNames); OpenSSL, through node:crypto, must accept the same encoding (a second,
 * independent parser) and imports the public key; @peculiar/x509 formats distinguished
 * names for messages. Anything malformed throws an {@link X509ParseError} with one line.
 *
 * (A full @peculiar/x509 parse was the first design; it cost ~3 ms per certificate, which
 * made loading the 140-certificate system store take most of a second.)
 */
import {
  createHash,
  createPublicKey,
  type KeyObject,
  X509Certificate as NodeX509Certificate,
} from "node:crypto";
import { describeKey, type KeyInfo, parseSignatureAlgorithm, type SignatureAlgorithm } from "./algorithms.ts";
import { contextTag, type DerElement, DerReader, decodeTime, readSingle, Tag } from "./der.ts";
import { formatName, nameRdns } from "./dn.ts";
import { X509ParseError } from "./errors.ts";
import {
  type BasicConstraints,
  type CertificateExtension,
  decodeAuthorityKeyId,
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
  decodeNameConstraints,
  decodeSubjectKeyId,
  ExtensionOid,
  type KeyUsageName,
  type NameConstraints,
  parseExtensions,
} from "./extensions.ts";
import { type GeneralName, parseGeneralNames } from "./generalnames.ts";
import { decodePemBlocks } from "./pem.ts";
import { spkiProblem } from "./spki.ts";

export {
  type BasicConstraints,
  type CertificateExtension,
  ExtensionOid,
  type KeyUsageName,
  type NameConstraints,
} from "./extensions.ts";

/** Largest certificate accepted (real ones are a few KiB; TLS caps a chain at 16 MiB). */
export const MAX_CERTIFICATE_BYTES = 64 * 1024;
/** Most certificates accepted from one PEM bundle. */
export const MAX_BUNDLE_CERTIFICATES = 4096;

/** extendedKeyUsage purposes used by TLS. */
export const EkuOid = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  any: "2.5.29.37.0",
} as const;

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
  /** Subject Name DER. */
  readonly subjectDer: Buffer;
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
  /** True when the authorityKeyIdentifier names the issuer's issuer and serial (not just a key id). */
  readonly authorityKeyIdHasIssuerSerial: boolean = false;
  /** SHA-256 of the DER, lower-case hex. */
  readonly fingerprintSha256: string;
  private issuerText: string | undefined;
  private subjectText: string | undefined;

  private constructor(der: Buffer) {
    if (der.length > MAX_CERTIFICATE_BYTES) {
      throw new X509ParseError(`certificate too large (${der.length} bytes > ${MAX_CERTIFICATE_BYTES})`);
    }
    this.der = der;
    const { tbsElement, outerAlg, signatureValue } = splitCertificate(der);
    this.tbs = tbsElement.bytes;
    this.signatureValue = signatureValue;
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
    const validity = new DerReader(tbs.read(Tag.SEQUENCE).content, "validity");
    this.notBefore = decodeTime(validity.read(), "notBefore");
    this.notAfter = decodeTime(validity.read(), "notAfter");
    validity.end();
    this.subjectDer = tbs.read(Tag.SEQUENCE).bytes;
    nameRdns(this.issuerDer);
    nameRdns(this.subjectDer);
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

    checkWithOpenSsl(der);
    this.publicKey = importSpki(this.spki);
    this.keyInfo = describeKey(this.publicKey);
    this.fingerprintSha256 = createHash("sha256").update(der).digest("hex");

    const fields = extensionFields(this.extensions);
    this.basicConstraints = fields.basicConstraints;
    this.keyUsage = fields.keyUsage;
    this.extKeyUsage = fields.extKeyUsage;
    this.subjectKeyId = fields.subjectKeyId;
    this.authorityKeyId = fields.authorityKeyId;
    this.authorityKeyIdHasIssuerSerial = fields.authorityKeyIdHasIssuerSerial;
    this.subjectAltNames = fields.subjectAltNames;
    this.sanDns = fields.sanDns;
    this.sanIps = fields.sanIps;
    this.nameConstraints = fields.nameConstraints;
  }

  /** Issuer as an RFC 4514-style string, e.g. "CN=Root, O=Example" (formatted on first use). */
  get issuer(): string {
    this.issuerText ??= formatName(this.issuerDer);
    return this.issuerText;
  }

  /** Subject as an RFC 4514-style string (formatted on first use). */
  get subject(): string {
    this.subjectText ??= formatName(this.subjectDer);
    return this.subjectText;
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

/** OpenSSL must accept the encoding too: a second, independent strict parser. */
function checkWithOpenSsl(der: Buffer): void {
  try {
    new NodeX509Certificate(der);
  } catch (err) {
    throw new X509ParseError(`certificate: OpenSSL rejects the encoding (${firstLine(err)})`);
  }
}

function importSpki(spki: Buffer): KeyObject {
  const problem = spkiProblem(spki);
  if (problem) throw new X509ParseError(`certificate: unusable public key (${problem})`);
  try {
    return createPublicKey({ key: spki, format: "der", type: "spki" });
  } catch (err) {
    throw new X509ParseError(`certificate: unusable public key (${firstLine(err)})`);
  }
}

/** The first line of an error's message, for one-line diagnostics. */
export function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0] ?? message;
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING } (RFC 5280 §4.1). */
function splitCertificate(der: Buffer): {
  tbsElement: DerElement;
  outerAlg: DerElement;
  signatureValue: Buffer;
} {
  const outer = new DerReader(readSingle(der, Tag.SEQUENCE, "certificate").content, "certificate");
  const tbsElement = outer.read(Tag.SEQUENCE);
  const outerAlg = outer.read(Tag.SEQUENCE);
  const signature = outer.read(Tag.BIT_STRING);
  outer.end();
  if (signature.content.length < 2 || signature.content[0] !== 0) {
    throw new X509ParseError("certificate: malformed signature BIT STRING");
  }
  return { tbsElement, outerAlg, signatureValue: signature.content.subarray(1) };
}

/** The extensions a Certificate reads, decoded (each absent one undefined, or empty for the SANs). */
interface ExtensionFields {
  basicConstraints?: BasicConstraints;
  keyUsage?: ReadonlySet<KeyUsageName>;
  extKeyUsage?: readonly string[];
  subjectKeyId?: Buffer;
  authorityKeyId?: Buffer;
  authorityKeyIdHasIssuerSerial: boolean;
  subjectAltNames: readonly GeneralName[];
  sanDns: readonly string[];
  sanIps: readonly Buffer[];
  nameConstraints?: NameConstraints;
}

/** Decodes the extensions a Certificate exposes as fields, in order; malformed ones are X509ParseErrors. */
function extensionFields(extensions: readonly CertificateExtension[]): ExtensionFields {
  const value = (oid: string) => extensions.find((e) => e.oid === oid)?.value;
  const bc = value(ExtensionOid.basicConstraints);
  const basicConstraints = bc ? decodeBasicConstraints(bc) : undefined;
  const ku = value(ExtensionOid.keyUsage);
  const keyUsage = ku ? decodeKeyUsage(ku) : undefined;
  const eku = value(ExtensionOid.extKeyUsage);
  const extKeyUsage = eku ? decodeExtKeyUsage(eku) : undefined;
  const ski = value(ExtensionOid.subjectKeyIdentifier);
  const subjectKeyId = ski ? decodeSubjectKeyId(ski) : undefined;
  const aki = value(ExtensionOid.authorityKeyIdentifier);
  const akiFields = aki ? decodeAuthorityKeyId(aki) : undefined;
  const san = value(ExtensionOid.subjectAltName);
  const subjectAltNames = san ? parseGeneralNames(san, "subjectAltName") : [];
  const sanIps = subjectAltNames.flatMap((n) => (n.type === "ip" ? [n.bytes] : []));
  for (const ip of sanIps) {
    if (ip.length !== 4 && ip.length !== 16) {
      throw new X509ParseError(`subjectAltName: IP address of ${ip.length} bytes`);
    }
  }
  const nc = value(ExtensionOid.nameConstraints);
  return {
    basicConstraints,
    keyUsage,
    extKeyUsage,
    subjectKeyId,
    authorityKeyId: akiFields?.keyId ?? undefined,
    authorityKeyIdHasIssuerSerial: akiFields?.issuerAndSerial ?? false,
    subjectAltNames,
    sanDns: subjectAltNames.flatMap((n) => (n.type === "dns" ? [n.value] : [])),
    sanIps,
    nameConstraints: nc ? decodeNameConstraints(nc) : undefined,
  };
}
