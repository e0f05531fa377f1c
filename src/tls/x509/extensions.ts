/**
 * The Extensions list shared by certificates, CRLs and CRL entries: OID, critical flag
 * and raw value, with DER strictness and no duplicates.
 */
import { children, type DerElement, DerReader, decodeOid, Tag } from "./der.ts";
import { X509ParseError } from "./errors.ts";

/** A raw extension as it appears in the encoding. */
export interface CertificateExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** The extnValue contents (the DER of the extension's own structure). */
  readonly value: Buffer;
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
