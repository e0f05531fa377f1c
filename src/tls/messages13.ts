/**
 * TLS 1.3 message and extension codecs (RFC 8446 §4): EncryptedExtensions, Certificate
 * with request context, CertificateRequest, NewSessionTicket, KeyUpdate, and the
 * supported_versions, key_share, pre_shared_key, psk_key_exchange_modes and cookie
 * extensions.
 */
import { createHash } from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";
import { Reader, readU16List, Writer } from "./codec.ts";
import { ExtensionType } from "./constants.ts";
import { decodeExtensions, type Extension, encodeExtensions } from "./messages.ts";

/** ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest"). */
export const HRR_RANDOM = createHash("sha256").update("HelloRetryRequest").digest();

/** supported_versions as the client sends it: a list. */
export function clientSupportedVersions(versions: readonly number[]): Extension {
  const w = new Writer();
  for (const v of versions) w.u16(v);
  return { type: ExtensionType.supported_versions, data: new Writer().vec8(w.finish()).finish() };
}

/** Decodes the client's supported_versions list. */
export function decodeClientSupportedVersions(data: Buffer): number[] {
  const r = new Reader(data, "supported_versions");
  const list = readU16List(r.vec8(2), "supported_versions");
  r.end();
  return list;
}

/** supported_versions as the server sends it: one version. */
export function serverSupportedVersion(version: number): Extension {
  return { type: ExtensionType.supported_versions, data: new Writer().u16(version).finish() };
}

/** Decodes the server's selected version. */
export function decodeServerSupportedVersion(data: Buffer): number {
  const r = new Reader(data, "supported_versions");
  const v = r.u16();
  r.end();
  return v;
}

/** One key share entry. */
export interface KeyShareEntry {
  group: number;
  keyExchange: Buffer;
}

/** key_share in ClientHello: a list of shares. */
export function clientKeyShare(entries: readonly KeyShareEntry[]): Extension {
  const w = new Writer();
  for (const e of entries) w.u16(e.group).vec16(e.keyExchange);
  return { type: ExtensionType.key_share, data: new Writer().vec16(w.finish()).finish() };
}

/** Decodes a ClientHello key_share list; a group may appear once only. */
export function decodeClientKeyShare(data: Buffer): KeyShareEntry[] {
  const r = new Reader(data, "key_share");
  const list = new Reader(r.vec16(), "key_share list");
  r.end();
  const out: KeyShareEntry[] = [];
  while (list.remaining > 0) {
    const group = list.u16();
    const keyExchange = list.vec16(1);
    if (out.some((e) => e.group === group))
      throw new TlsError(AlertDescription.illegal_parameter, "duplicate key share group");
    out.push({ group, keyExchange });
  }
  return out;
}

/** key_share in ServerHello: one share. */
export function serverKeyShare(entry: KeyShareEntry): Extension {
  return {
    type: ExtensionType.key_share,
    data: new Writer().u16(entry.group).vec16(entry.keyExchange).finish(),
  };
}

/** Decodes a ServerHello key_share. */
export function decodeServerKeyShare(data: Buffer): KeyShareEntry {
  const r = new Reader(data, "key_share");
  const group = r.u16();
  const keyExchange = r.vec16(1);
  r.end();
  return { group, keyExchange };
}

/** key_share in HelloRetryRequest: the selected group. */
export function hrrKeyShare(group: number): Extension {
  return { type: ExtensionType.key_share, data: new Writer().u16(group).finish() };
}

/** Decodes a HelloRetryRequest key_share. */
export function decodeHrrKeyShare(data: Buffer): number {
  const r = new Reader(data, "key_share");
  const g = r.u16();
  r.end();
  return g;
}

/** psk_key_exchange_modes offering psk_dhe_ke only (forward secrecy on resumption). */
export function pskModes(): Extension {
  return { type: ExtensionType.psk_key_exchange_modes, data: new Writer().vec8(Buffer.from([1])).finish() };
}

/** Decodes psk_key_exchange_modes. */
export function decodePskModes(data: Buffer): number[] {
  const r = new Reader(data, "psk_key_exchange_modes");
  const modes = [...r.vec8(1)];
  r.end();
  return modes;
}

/** One offered PSK identity. */
export interface PskIdentity {
  identity: Buffer;
  obfuscatedTicketAge: number;
}

/** The client's pre_shared_key extension: identities and binders. */
export interface OfferedPsks {
  identities: PskIdentity[];
  binders: Buffer[];
}

/** Encodes the identities part and the binders part separately (binders are computed over the rest). */
export function encodeIdentities(ids: readonly PskIdentity[]): Buffer {
  const w = new Writer();
  for (const id of ids) {
    w.vec16(id.identity);
    const age = Buffer.alloc(4);
    age.writeUInt32BE(id.obfuscatedTicketAge >>> 0);
    w.bytes(age);
  }
  return new Writer().vec16(w.finish()).finish();
}

/** Encodes the binders list. */
export function encodeBinders(binders: readonly Buffer[]): Buffer {
  const w = new Writer();
  for (const b of binders) w.vec8(b);
  return new Writer().vec16(w.finish()).finish();
}

/** Decodes a ClientHello pre_shared_key extension. */
export function decodeOfferedPsks(data: Buffer): OfferedPsks {
  const r = new Reader(data, "pre_shared_key");
  const idList = new Reader(r.vec16(7), "psk identities");
  const binderList = new Reader(r.vec16(33), "psk binders");
  r.end();
  const identities: PskIdentity[] = [];
  while (idList.remaining > 0)
    identities.push({ identity: idList.vec16(1), obfuscatedTicketAge: idList.u32() });
  const binders: Buffer[] = [];
  while (binderList.remaining > 0) binders.push(binderList.vec8(32));
  if (binders.length !== identities.length)
    throw new TlsError(AlertDescription.illegal_parameter, "psk binder count mismatch");
  return { identities, binders };
}

/** The server's pre_shared_key: the selected identity index. */
export function serverPsk(index: number): Extension {
  return { type: ExtensionType.pre_shared_key, data: new Writer().u16(index).finish() };
}

/** Decodes the server's selected identity. */
export function decodeServerPsk(data: Buffer): number {
  const r = new Reader(data, "pre_shared_key");
  const i = r.u16();
  r.end();
  return i;
}

/** cookie extension (HelloRetryRequest and the second ClientHello). */
export function cookieExtension(cookie: Buffer): Extension {
  return { type: ExtensionType.cookie, data: new Writer().vec16(cookie).finish() };
}

/** Decodes a cookie. */
export function decodeCookie(data: Buffer): Buffer {
  const r = new Reader(data, "cookie");
  const c = r.vec16(1);
  r.end();
  return c;
}

/** EncryptedExtensions body. */
export function encodeEncryptedExtensions(exts: readonly Extension[]): Buffer {
  return encodeExtensions(exts);
}

/** Decodes EncryptedExtensions. */
export function decodeEncryptedExtensions(body: Buffer): Extension[] {
  const r = new Reader(body, "EncryptedExtensions");
  const exts = decodeExtensions(r.vec16());
  r.end();
  return exts;
}

/** A TLS 1.3 Certificate: request context and entries (DER + per-entry extensions). */
export interface Certificate13 {
  context: Buffer;
  chain: Buffer[];
}

/** Encodes a TLS 1.3 Certificate (no per-entry extensions). */
export function encodeCertificate13(m: Certificate13): Buffer {
  const list = new Writer();
  for (const der of m.chain) list.vec24(der).vec16(Buffer.alloc(0));
  return new Writer().vec8(m.context).vec24(list.finish()).finish();
}

/** Decodes a TLS 1.3 Certificate; per-entry extensions are parsed and ignored. */
export function decodeCertificate13(body: Buffer): Certificate13 {
  const r = new Reader(body, "Certificate");
  const context = r.vec8();
  const list = new Reader(r.vec24(), "certificate list");
  r.end();
  const chain: Buffer[] = [];
  while (list.remaining > 0) {
    chain.push(list.vec24(1));
    decodeExtensions(list.vec16());
  }
  return { context, chain };
}

/** A TLS 1.3 CertificateRequest: context and extensions (signature_algorithms required). */
export interface CertificateRequest13 {
  context: Buffer;
  extensions: Extension[];
}

/** Encodes a TLS 1.3 CertificateRequest. */
export function encodeCertificateRequest13(m: CertificateRequest13): Buffer {
  return new Writer().vec8(m.context).bytes(encodeExtensions(m.extensions)).finish();
}

/** Decodes a TLS 1.3 CertificateRequest. */
export function decodeCertificateRequest13(body: Buffer): CertificateRequest13 {
  const r = new Reader(body, "CertificateRequest");
  const context = r.vec8();
  const extensions = decodeExtensions(r.vec16());
  r.end();
  return { context, extensions };
}

/** NewSessionTicket (RFC 8446 §4.6.1). */
export interface NewSessionTicket13 {
  lifetime: number;
  ageAdd: number;
  nonce: Buffer;
  ticket: Buffer;
  extensions: Extension[];
}

/** Encodes a NewSessionTicket. */
export function encodeNewSessionTicket13(m: NewSessionTicket13): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(m.lifetime >>> 0, 0);
  head.writeUInt32BE(m.ageAdd >>> 0, 4);
  return new Writer()
    .bytes(head)
    .vec8(m.nonce)
    .vec16(m.ticket)
    .bytes(encodeExtensions(m.extensions))
    .finish();
}

/** Decodes a NewSessionTicket. */
export function decodeNewSessionTicket13(body: Buffer): NewSessionTicket13 {
  const r = new Reader(body, "NewSessionTicket");
  const lifetime = r.u32();
  const ageAdd = r.u32();
  const nonce = r.vec8();
  const ticket = r.vec16(1);
  const extensions = decodeExtensions(r.vec16());
  r.end();
  if (lifetime > 604800)
    throw new TlsError(AlertDescription.illegal_parameter, "ticket lifetime over 7 days");
  return { lifetime, ageAdd, nonce, ticket, extensions };
}

/** KeyUpdate: whether the peer should update too. */
export function decodeKeyUpdate(body: Buffer): boolean {
  const r = new Reader(body, "KeyUpdate");
  const v = r.u8();
  r.end();
  if (v > 1) throw new TlsError(AlertDescription.illegal_parameter, "bad KeyUpdate value");
  return v === 1;
}

/** The content a TLS 1.3 CertificateVerify signs (RFC 8446 §4.4.3). */
export function certificateVerifyContent(side: "server" | "client", transcriptHash: Buffer): Buffer {
  return Buffer.concat([
    Buffer.alloc(64, 0x20),
    Buffer.from(`TLS 1.3, ${side} CertificateVerify`, "ascii"),
    Buffer.from([0]),
    transcriptHash,
  ]);
}
