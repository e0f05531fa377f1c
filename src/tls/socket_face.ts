/**
 * The face a TLS socket shows to Node code: the parts of tls.TLSSocket that http, undici
 * and Express read (authorized, getPeerCertificate(), getProtocol(), getCipher(),
 * alpnProtocol) and the net.Socket calls they pass through to the transport.
 */
import { X509Certificate } from "node:crypto";
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import type { HandshakeResult } from "./conn.ts";
import { versionName } from "./constants.ts";

/** The peer certificate in the shape of Node's tls getPeerCertificate(). */
export interface PeerCertificate {
  subject: Record<string, string>;
  issuer: Record<string, string>;
  subjectaltname: string | undefined;
  valid_from: string;
  valid_to: string;
  serialNumber: string;
  fingerprint256: string;
  raw: Buffer;
}

function parseDn(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** The tls.TLSSocket look-alike part of a TLS connection; TlsSocket adds the protocol. */
export class SocketFace extends Duplex {
  /** Always true: this is a TLS socket (Node's http checks it). */
  readonly encrypted = true;
  /** True once the peer's certificate chain validated. */
  authorized = false;
  /** Why the peer is not authorized. */
  authorizationError: string | undefined;
  /** The negotiated ALPN protocol, or false. */
  alpnProtocol: string | false = false;
  /** What the handshake established, once it has. */
  protected result: HandshakeResult | undefined;

  /** The peer's address as first known: a destroyed net.Socket forgets it, error reports still need it. */
  private readonly peer: { address?: string; port?: number };

  constructor(
    /** The transport carrying records. */
    readonly transport: Duplex,
  ) {
    super({ allowHalfOpen: false });
    this.peer = { address: (transport as Socket).remoteAddress, port: (transport as Socket).remotePort };
  }

  /** "TLSv1.2" etc., or null before the handshake completes. */
  getProtocol(): string | null {
    return this.result ? versionName(this.result.version) : null;
  }

  /** The negotiated suite in Node's shape. */
  getCipher(): { name: string; standardName: string; version: string } | undefined {
    if (!this.result) return undefined;
    const s = this.result.suite;
    return { name: s.opensslName, standardName: s.name, version: versionName(this.result.version) };
  }

  /** The peer's chain as DER, leaf first. */
  getPeerCertificateChain(): Buffer[] {
    return this.result?.peerCertificates ?? [];
  }

  /** The peer's leaf certificate like Node's getPeerCertificate(), or {} when there is none. */
  getPeerCertificate(): PeerCertificate | Record<string, never> {
    const der = this.result?.peerCertificates[0];
    if (!der) return {};
    const c = new X509Certificate(der);
    return {
      subject: parseDn(c.subject),
      issuer: parseDn(c.issuer),
      subjectaltname: c.subjectAltName,
      valid_from: c.validFrom,
      valid_to: c.validTo,
      serialNumber: c.serialNumber,
      fingerprint256: c.fingerprint256,
      raw: der,
    };
  }

  /** The peer's leaf as an X509Certificate, like Node's getPeerX509Certificate(). */
  getPeerX509Certificate(): X509Certificate | undefined {
    const der = this.result?.peerCertificates[0];
    return der ? new X509Certificate(der) : undefined;
  }

  /** Passes through to the transport, like net.Socket. */
  setTimeout(ms: number, callback?: () => void): this {
    (this.transport as Socket).setTimeout?.(ms);
    if (callback) this.once("timeout", callback);
    return this;
  }

  /** Passes through to the transport. */
  setNoDelay(noDelay?: boolean): this {
    (this.transport as Socket).setNoDelay?.(noDelay);
    return this;
  }

  /** Passes through to the transport. */
  setKeepAlive(enable?: boolean, delay?: number): this {
    (this.transport as Socket).setKeepAlive?.(enable, delay);
    return this;
  }

  /** Passes through to the transport. */
  ref(): this {
    (this.transport as Socket).ref?.();
    return this;
  }

  /** Passes through to the transport. */
  unref(): this {
    (this.transport as Socket).unref?.();
    return this;
  }

  /** The transport's remote address. */
  get remoteAddress(): string | undefined {
    return (this.transport as Socket).remoteAddress ?? this.peer.address;
  }

  /** The transport's remote port. */
  get remotePort(): number | undefined {
    return (this.transport as Socket).remotePort ?? this.peer.port;
  }

  /** The transport's local address. */
  get localAddress(): string | undefined {
    return (this.transport as Socket).localAddress;
  }

  /** The transport's local port. */
  get localPort(): number | undefined {
    return (this.transport as Socket).localPort;
  }

  /** The transport's address(). */
  address(): ReturnType<Socket["address"]> | Record<string, never> {
    return (this.transport as Socket).address?.() ?? {};
  }
}
