/**
 * X.509 extensions: the Extensions list shared by certificates, CRLs and CRL entries
 * (OID, critical flag, raw value; DER-strict, no duplicates), and decoders for the
 * standard certificate extensions path validation relies on (RFC 5280 §4.2.1).
 */
import {
  children,
  type DerElement,
  DerReader,
  decodeOid,
  decodeSmallInteger,
  readSingle,
  Tag,
} from "./der.ts";
import { X509ParseError } from "./errors.ts";
import { type GeneralName, parseGeneralName } from "./generalnames.ts";

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

/** A raw extension as it appears in the encoding. */
export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The extnValue contents (the DER of the extension's own structure). */
  readonly value: Buffer;
}

/** keyUsage bits by name, in bit order (RFC 5280 §4.2.1.3). */
export const KEY_USAGE_BITS = [
  "digitalSignature",
  "nonRepudiation",
  "keyEncipherment",
  "dataEncipherment",
  "keyAgreement",
  "keyCertSign",
  "cRLSign",
  "encipherOnly",
  "decipherOnly",
] as const;

/** One keyUsage bit name. */
export type KeyUsageName = (typeof KEY_USAGE_BITS)[number];

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

/** Decodes an `Extensions` SEQUENCE element; refuses empty lists, duplicates and non-DER flags. */
export function parseExtensions(list: DerElement): CertificateExtension[] {
  const seen = new Set<string>();
  const out = children(list, "extensions").map((element) => {
    if (element.tag !== Tag.SEQUENCE) throw new X509ParseError("extensions: entry is not a SEQUENCE");
    const reader = new DerReader(element.content, "extension");
    const oid = decodeOid(reader.read(Tag.OID).content, "extension id");
    const criticalElement = reader.readOptional(Tag.BOOLEAN);
    const value = reader.read(Tag.OCTET_STRING).content;
    reader.end();
    // DER: a BOOLEAN is one octet 0x00/0xff, and DEFAULT FALSE is omitted rather than encoded.
    if (criticalElement && (criticalElement.content.length !== 1 || criticalElement.content[0] !== 0xff)) {
      throw new X509ParseError(`extension ${oid}: invalid critical flag`);
    }
    if (seen.has(oid)) throw new X509ParseError(`extension ${oid} appears twice`);
    seen.add(oid);
    return { oid, critical: criticalElement !== undefined, value: Buffer.from(value) };
  });
  if (out.length === 0) throw new X509ParseError("extensions: empty list");
  return out;
}

/** The first critical extension whose OID is not in `understood`, if any. */
export function firstUnknownCritical(
  extensions: readonly CertificateExtension[],
  understood: ReadonlySet<string>,
): CertificateExtension | undefined {
  return extensions.find((e) => e.critical && !understood.has(e.oid));
}

/** basicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL } */
export function decodeBasicConstraints(value: Buffer): BasicConstraints {
  const reader = new DerReader(
    readSingle(value, Tag.SEQUENCE, "basicConstraints").content,
    "basicConstraints",
  );
  const flag = reader.readOptional(Tag.BOOLEAN);
  // An explicit FALSE is BER rather than DER, but common enough (and harmless) to accept.
  if (flag && (flag.content.length !== 1 || (flag.content[0] !== 0 && flag.content[0] !== 0xff))) {
    throw new X509ParseError("basicConstraints: invalid cA flag");
  }
  const pathLen = reader.readOptional(Tag.INTEGER);
  reader.end();
  const ca = flag?.content[0] === 0xff;
  if (!pathLen) return { ca };
  return { ca, pathLen: decodeSmallInteger(pathLen.content, "basicConstraints pathLenConstraint") };
}

/** keyUsage ::= BIT STRING; the set of named bits that are 1. */
export function decodeKeyUsage(value: Buffer): Set<KeyUsageName> {
  const bits = readSingle(value, Tag.BIT_STRING, "keyUsage").content;
  if (bits.length < 1 || bits[0]! > 7 || (bits.length === 1 && bits[0] !== 0)) {
    throw new X509ParseError("keyUsage: malformed BIT STRING");
  }
  const set = new Set<KeyUsageName>();
  KEY_USAGE_BITS.forEach((name, i) => {
    const byte = bits[1 + (i >> 3)];
    if (byte !== undefined && (byte >> (7 - (i & 7))) & 1) set.add(name);
  });
  return set;
}

/** extKeyUsage ::= SEQUENCE SIZE (1..MAX) OF KeyPurposeId */
export function decodeExtKeyUsage(value: Buffer): string[] {
  const oids = children(readSingle(value, Tag.SEQUENCE, "extKeyUsage"), "extKeyUsage").map((el) => {
    if (el.tag !== Tag.OID) throw new X509ParseError("extKeyUsage: entry is not an OID");
    return decodeOid(el.content, "extKeyUsage");
  });
  if (oids.length === 0) throw new X509ParseError("extKeyUsage: empty");
  return oids;
}

/** subjectKeyIdentifier ::= OCTET STRING */
export function decodeSubjectKeyId(value: Buffer): Buffer {
  return Buffer.from(readSingle(value, Tag.OCTET_STRING, "subjectKeyIdentifier").content);
}

/** A decoded authorityKeyIdentifier. */
export interface AuthorityKeyId {
  /** keyIdentifier, when present. */
  readonly keyId?: Buffer;
  /** True when authorityCertIssuer or authorityCertSerialNumber is present (the web profile refuses them on roots). */
  readonly issuerAndSerial: boolean;
}

/** authorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] OPTIONAL, authorityCertIssuer [1], serial [2] } */
export function decodeAuthorityKeyId(value: Buffer): AuthorityKeyId {
  const reader = new DerReader(
    readSingle(value, Tag.SEQUENCE, "authorityKeyIdentifier").content,
    "authorityKeyIdentifier",
  );
  const keyId = reader.readOptional(0x80);
  const issuer = reader.readOptional(0xa1);
  const serial = reader.readOptional(0x82);
  reader.end();
  const issuerAndSerial = issuer !== undefined || serial !== undefined;
  return keyId ? { keyId: Buffer.from(keyId.content), issuerAndSerial } : { issuerAndSerial };
}

/** The authorityInfoAccess extension OID (RFC 5280 §4.2.2.1). */
export const AUTHORITY_INFO_ACCESS = "1.3.6.1.5.5.7.1.1";

/**
 * Checks an authorityInfoAccess value: SEQUENCE SIZE (1..MAX) OF SEQUENCE { accessMethod
 * OID, accessLocation GeneralName }. Throws {@link X509ParseError} naming what is wrong.
 * Checked at validation time, not parse time, so one odd certificate in a bundle of
 * trust anchors does not make the whole bundle unreadable.
 */
export function checkAuthorityInfoAccess(value: Buffer): void {
  const entries = children(readSingle(value, Tag.SEQUENCE, "authorityInfoAccess"), "authorityInfoAccess");
  if (entries.length === 0) throw new X509ParseError("authorityInfoAccess: empty");
  for (const entry of entries) {
    if (entry.tag !== Tag.SEQUENCE) throw new X509ParseError("authorityInfoAccess: entry is not a SEQUENCE");
    const reader = new DerReader(entry.content, "authorityInfoAccess entry");
    decodeOid(reader.read(Tag.OID).content, "authorityInfoAccess method");
    parseGeneralName(reader.read(), "authorityInfoAccess location");
    reader.end();
  }
}

/** nameConstraints ::= SEQUENCE { permittedSubtrees [0], excludedSubtrees [1] } of GeneralSubtree. */
export function decodeNameConstraints(value: Buffer): NameConstraints {
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
