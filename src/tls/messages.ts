/**
 * Handshake message codecs (RFC 5246 §7.4, RFC 8446 §4): each message is a plain type with
 * an encode and a decode function. Decoders take only the message body and reject any
 * truncation, overrun or trailing byte with decode_error.
 */
import { AlertDescription, TlsError } from "./alert.ts";
import { Reader, readU16List, u16List, Writer } from "./codec.ts";
import { type HandshakeType, ProtocolVersion } from "./constants.ts";

/** A raw extension: type and opaque data. */
export interface Extension {
  type: number;
  data: Buffer;
}

/** Encodes an extension list (with its 2-byte length prefix). */
export function encodeExtensions(exts: readonly Extension[]): Buffer {
  const w = new Writer();
  for (const e of exts) w.u16(e.type).vec16(e.data);
  return new Writer().vec16(w.finish()).finish();
}

/** Decodes an extension list body; a repeated extension type is illegal (RFC 8446 §4.2). */
export function decodeExtensions(body: Buffer): Extension[] {
  const r = new Reader(body, "extensions");
  const out: Extension[] = [];
  const seen = new Set<number>();
  while (r.remaining > 0) {
    const type = r.u16();
    const data = r.vec16();
    if (seen.has(type)) throw new TlsError(AlertDescription.illegal_parameter, `duplicate extension ${type}`);
    seen.add(type);
    out.push({ type, data });
  }
  return out;
}

function readOptionalExtensions(r: Reader): Extension[] {
  if (r.remaining === 0) return [];
  const exts = decodeExtensions(r.vec16());
  r.end();
  return exts;
}

/** ClientHello (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2). */
export interface ClientHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuites: number[];
  compressionMethods: number[];
  extensions: Extension[];
}

/** Encodes a ClientHello body. */
export function encodeClientHello(m: ClientHello): Buffer {
  return new Writer()
    .u16(m.version)
    .bytes(m.random)
    .vec8(m.sessionId)
    .bytes(u16List(m.cipherSuites))
    .vec8(Buffer.from(m.compressionMethods))
    .bytes(encodeExtensions(m.extensions))
    .finish();
}

/** Decodes a ClientHello body. */
export function decodeClientHello(body: Buffer): ClientHello {
  const r = new Reader(body, "ClientHello");
  const version = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec8();
  if (sessionId.length > 32) throw new TlsError(AlertDescription.decode_error, "session id too long");
  const cipherSuites = readU16List(r.vec16(2), "cipher suites");
  const compressionMethods = [...r.vec8(1)];
  return {
    version,
    random,
    sessionId,
    cipherSuites,
    compressionMethods,
    extensions: readOptionalExtensions(r),
  };
}

/** ServerHello (RFC 5246 §7.4.1.3, RFC 8446 §4.1.3). */
export interface ServerHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuite: number;
  compressionMethod: number;
  extensions: Extension[];
}

/** Encodes a ServerHello body. */
export function encodeServerHello(m: ServerHello): Buffer {
  return new Writer()
    .u16(m.version)
    .bytes(m.random)
    .vec8(m.sessionId)
    .u16(m.cipherSuite)
    .u8(m.compressionMethod)
    .bytes(encodeExtensions(m.extensions))
    .finish();
}

/** Decodes a ServerHello body. */
export function decodeServerHello(body: Buffer): ServerHello {
  const r = new Reader(body, "ServerHello");
  const version = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec8();
  if (sessionId.length > 32) throw new TlsError(AlertDescription.decode_error, "session id too long");
  const cipherSuite = r.u16();
  const compressionMethod = r.u8();
  return {
    version,
    random,
    sessionId,
    cipherSuite,
    compressionMethod,
    extensions: readOptionalExtensions(r),
  };
}

/** Certificate for TLS 1.2 and below: a list of DER certificates, leaf first. */
export function encodeCertificate12(chain: readonly Buffer[]): Buffer {
  const w = new Writer();
  for (const c of chain) w.vec24(c);
  return new Writer().vec24(w.finish()).finish();
}

/** Decodes a TLS 1.2 Certificate body. */
export function decodeCertificate12(body: Buffer): Buffer[] {
  const r = new Reader(body, "Certificate");
  const list = new Reader(r.vec24(), "certificate list");
  r.end();
  const out: Buffer[] = [];
  while (list.remaining > 0) out.push(list.vec24(1));
  return out;
}

/** CertificateRequest for TLS 1.1/1.2 (RFC 5246 §7.4.4). */
export interface CertificateRequest12 {
  certificateTypes: number[];
  /** Signature scheme code points; empty before TLS 1.2. */
  signatureSchemes: number[];
  /** DER-encoded distinguished names of acceptable CAs. */
  authorities: Buffer[];
}

/** Encodes a TLS 1.1/1.2 CertificateRequest body. */
export function encodeCertificateRequest12(m: CertificateRequest12, version: number): Buffer {
  const w = new Writer().vec8(Buffer.from(m.certificateTypes));
  if (version >= ProtocolVersion.TLS12) w.bytes(u16List(m.signatureSchemes));
  const names = new Writer();
  for (const n of m.authorities) names.vec16(n);
  return w.vec16(names.finish()).finish();
}

/** Decodes a TLS 1.1/1.2 CertificateRequest body. */
export function decodeCertificateRequest12(body: Buffer, version: number): CertificateRequest12 {
  const r = new Reader(body, "CertificateRequest");
  const certificateTypes = [...r.vec8(1)];
  const signatureSchemes =
    version >= ProtocolVersion.TLS12 ? readU16List(r.vec16(2), "signature algorithms") : [];
  const names = new Reader(r.vec16(), "certificate authorities");
  r.end();
  const authorities: Buffer[] = [];
  while (names.remaining > 0) authorities.push(names.vec16(1));
  return { certificateTypes, signatureSchemes, authorities };
}

/** ServerKeyExchange for ECDHE (RFC 8422 §5.4): named curve, public point, signature. */
export interface EcdheServerKeyExchange {
  group: number;
  publicKey: Buffer;
  /** The signature scheme code point (TLS 1.2), undefined before 1.2. */
  scheme: number | undefined;
  signature: Buffer;
  /** The ServerECDHParams bytes the signature covers. */
  params: Buffer;
}

/** Encodes the ECDHE params part (what the signature covers). */
export function encodeEcdheParams(group: number, publicKey: Buffer): Buffer {
  return new Writer().u8(3).u16(group).vec8(publicKey).finish();
}

/** Encodes a whole ECDHE ServerKeyExchange body. */
export function encodeEcdheServerKeyExchange(m: Omit<EcdheServerKeyExchange, "params">): Buffer {
  const w = new Writer().bytes(encodeEcdheParams(m.group, m.publicKey));
  if (m.scheme !== undefined) w.u16(m.scheme);
  return w.vec16(m.signature).finish();
}

/** Decodes an ECDHE ServerKeyExchange body. */
export function decodeEcdheServerKeyExchange(body: Buffer, version: number): EcdheServerKeyExchange {
  const r = new Reader(body, "ServerKeyExchange");
  if (r.u8() !== 3)
    throw new TlsError(
      AlertDescription.illegal_parameter,
      "ServerKeyExchange: only named curves are supported",
    );
  const group = r.u16();
  const publicKey = r.vec8(1);
  const params = body.subarray(0, 4 + publicKey.length);
  const scheme = version >= ProtocolVersion.TLS12 ? r.u16() : undefined;
  // signature<0..2^16-1>: an empty one is well-formed and fails to verify (decrypt_error), not decode_error.
  const signature = r.vec16(0);
  r.end();
  return { group, publicKey, scheme, signature, params };
}

/** ClientKeyExchange for RSA: the encrypted premaster secret with its 2-byte length. */
export function encodeRsaClientKeyExchange(encrypted: Buffer): Buffer {
  return new Writer().vec16(encrypted).finish();
}

/** Decodes an RSA ClientKeyExchange body. */
export function decodeRsaClientKeyExchange(body: Buffer): Buffer {
  const r = new Reader(body, "ClientKeyExchange");
  const v = r.vec16(1);
  r.end();
  return v;
}

/** ClientKeyExchange for ECDHE: the client's public point. */
export function encodeEcdheClientKeyExchange(point: Buffer): Buffer {
  return new Writer().vec8(point).finish();
}

/** Decodes an ECDHE ClientKeyExchange body. */
export function decodeEcdheClientKeyExchange(body: Buffer): Buffer {
  const r = new Reader(body, "ClientKeyExchange");
  const v = r.vec8(1);
  r.end();
  return v;
}

/** CertificateVerify / digitally-signed: scheme (TLS 1.2+) and signature. */
export interface DigitallySigned {
  scheme: number | undefined;
  signature: Buffer;
}

/** Encodes a digitally-signed struct. */
export function encodeDigitallySigned(m: DigitallySigned): Buffer {
  const w = new Writer();
  if (m.scheme !== undefined) w.u16(m.scheme);
  return w.vec16(m.signature).finish();
}

/** Decodes a digitally-signed struct; `withScheme` for TLS 1.2 and later. */
export function decodeDigitallySigned(body: Buffer, withScheme: boolean): DigitallySigned {
  const r = new Reader(body, "CertificateVerify");
  const scheme = withScheme ? r.u16() : undefined;
  const signature = r.vec16(0); // may be empty: it then fails to verify (decrypt_error)
  r.end();
  return { scheme, signature };
}

/** Frames a handshake message: type, 24-bit length, body. */
export function frameHandshake(type: HandshakeType, body: Buffer): Buffer {
  return new Writer().u8(type).vec24(body).finish();
}
