/**
 * Server settings as the server handshakes consume them (resolved objects, not strings),
 * and the seam through which a TLS 1.3 server handshake plugs in after the ClientHello.
 */
import type { PrivateKeyHandle } from "../keys/types.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import type { ClientHelloInfo } from "./client_hello.ts";
import type { ChainVerdict } from "./config.ts";
import type { ProtocolVersion } from "./constants.ts";
import type { HandshakeChannel } from "./handshake_channel.ts";
import type { HandshakeResult } from "./handshake_io.ts";
import type { NamedGroup } from "./key_share.ts";
import type { SessionStore } from "./session.ts";

/** How the server treats client certificates. */
export interface ClientAuthConfig {
  /** Fail the handshake when the client sends no certificate or one that does not verify. */
  require: boolean;
  /** DER subject names of the acceptable CAs, sent in CertificateRequest. */
  authorities: readonly Buffer[];
  /** Validates a client chain (leaf first) for TLS client authentication. */
  verify: (chain: readonly Buffer[]) => ChainVerdict;
}

/**
 * Runs a TLS 1.3 server handshake once the ClientHello has chosen TLS 1.3. Everything read
 * so far is in `hello`, and the ClientHello is already in the channel's transcript.
 */
export type ServerHandshake13 = (
  channel: HandshakeChannel,
  cfg: ServerConfig,
  hello: ClientHelloInfo,
) => Promise<HandshakeResult>;

/** What the server handshake learned that a TlsSocket does not carry. */
export interface ServerHandshakeDetails {
  /** SNI host name the client asked for. */
  serverName: string | undefined;
  /** True when the session was resumed (abbreviated handshake). */
  resumed: boolean;
}

/** Everything the server handshakes need. */
export interface ServerConfig {
  /** The server's private key; it signs ServerKeyExchange and decrypts RSA premasters. */
  key: PrivateKeyHandle;
  /** The server chain (DER, leaf first) that goes with `key`. */
  certificateChain: readonly Buffer[];
  minVersion: ProtocolVersion;
  maxVersion: ProtocolVersion;
  /** Enabled suites in server preference order. */
  suites: readonly CipherSuite[];
  /** ECDHE groups in server preference order. */
  groups: readonly NamedGroup[];
  /** Client certificates are asked for when set. */
  clientAuth: ClientAuthConfig | undefined;
  /** ALPN protocols in server preference order (empty: ALPN is ignored). */
  alpn: readonly string[];
  /** Accept encrypt_then_mac for CBC suites (RFC 7366). */
  encryptThenMac: boolean;
  /** Session tickets and/or a session-ID cache; undefined disables resumption. */
  sessions: SessionStore | undefined;
  /** The TLS 1.3 handshake; without it the server never negotiates 1.3. */
  tls13: ServerHandshake13 | undefined;
  /** Told about SNI and resumption before the handshake completes. */
  onDetails?: (details: ServerHandshakeDetails) => void;
}
