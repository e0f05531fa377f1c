/**
 * Codecs for the extension payloads hsmkit sends and understands.
 */
import { isIP } from "node:net";
import { AlertDescription, TlsError } from "./alert.ts";
import { Reader, readU16List, u16List, Writer } from "./codec.ts";
import { ExtensionType } from "./constants.ts";
import type { Extension } from "./messages.ts";

/** server_name with one host_name entry (RFC 6066 §3). IP literals are never sent as SNI. */
export function serverNameExtension(host: string): Extension | undefined {
  if (!host || isIP(host)) return undefined;
  const name = Buffer.from(host.replace(/\.$/, ""), "ascii");
  const entry = new Writer().u8(0).vec16(name).finish();
  return { type: ExtensionType.server_name, data: new Writer().vec16(entry).finish() };
}

/** Reads the host_name from a server_name extension (undefined when absent or empty). */
export function decodeServerName(data: Buffer): string | undefined {
  const r = new Reader(data, "server_name");
  const list = new Reader(r.vec16(1), "server_name list");
  r.end();
  while (list.remaining > 0) {
    const type = list.u8();
    const name = list.vec16(1);
    if (type === 0) {
      const host = name.toString("ascii");
      if (!/^[A-Za-z0-9.-]+$/.test(host))
        throw new TlsError(AlertDescription.illegal_parameter, "bad server name");
      return host;
    }
  }
  return undefined;
}

/** A list of u16 code points as an extension (signature_algorithms, supported_groups). */
export function u16ListExtension(type: ExtensionType, values: readonly number[]): Extension {
  return { type, data: u16List(values) };
}

/** Decodes a u16 code point list extension payload. */
export function decodeU16ListExtension(data: Buffer, what: string): number[] {
  const r = new Reader(data, what);
  const list = readU16List(r.vec16(2), what);
  r.end();
  return list;
}

/** An extension with empty data (extended_master_secret, encrypt_then_mac, ...). */
export function emptyExtension(type: ExtensionType): Extension {
  return { type, data: Buffer.alloc(0) };
}

/** renegotiation_info with the given verify data (empty on the initial handshake). */
export function renegotiationInfo(verifyData: Buffer = Buffer.alloc(0)): Extension {
  return { type: ExtensionType.renegotiation_info, data: new Writer().vec8(verifyData).finish() };
}

/** Decodes renegotiation_info's renegotiated_connection field. */
export function decodeRenegotiationInfo(data: Buffer): Buffer {
  const r = new Reader(data, "renegotiation_info");
  const v = r.vec8();
  r.end();
  return v;
}

/** ec_point_formats offering only uncompressed points (RFC 8422 §5.1.2). */
export function ecPointFormats(): Extension {
  return { type: ExtensionType.ec_point_formats, data: new Writer().vec8(Buffer.from([0])).finish() };
}

/** Decodes ec_point_formats: the point formats offered. */
export function decodePointFormats(data: Buffer): number[] {
  const r = new Reader(data, "ec_point_formats");
  const list = [...r.vec8(1)];
  r.end();
  return list;
}

/** ALPN protocol list (RFC 7301). */
export function alpnExtension(protocols: readonly string[]): Extension {
  const w = new Writer();
  for (const p of protocols) w.vec8(Buffer.from(p, "ascii"));
  return { type: ExtensionType.alpn, data: new Writer().vec16(w.finish()).finish() };
}

/** Decodes an ALPN protocol list. */
export function decodeAlpn(data: Buffer): string[] {
  const r = new Reader(data, "alpn");
  const list = new Reader(r.vec16(2), "alpn list");
  r.end();
  const out: string[] = [];
  while (list.remaining > 0) out.push(list.vec8(1).toString("ascii"));
  return out;
}

/** Finds an extension by type. */
export function findExtension(exts: readonly Extension[], type: ExtensionType): Extension | undefined {
  return exts.find((e) => e.type === type);
}

/** Fails with empty-body errors for extensions that must carry no data. */
export function expectEmpty(ext: Extension, name: string): void {
  if (ext.data.length !== 0)
    throw new TlsError(AlertDescription.decode_error, `${name} extension must be empty`);
}
