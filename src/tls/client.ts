/**
 * The client entry point, in the shape of tls.connect(): resolves options into a
 * ClientConfig and returns a TlsSocket whose handshake runs over a new TCP connection
 * (or a transport the caller supplies).
 */
import { createHash } from "node:crypto";
import { isIP, connect as tcpConnect } from "node:net";
import type { Duplex } from "node:stream";
import { ConfigError } from "../errors.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { type CipherSuite, suiteOption } from "./cipher_suites.ts";
import {
  type ClientConfig,
  certificateList,
  resolveVersionRange,
  VERSION_DEFAULTS,
  type VersionOption,
} from "./config.ts";
import { TlsSocket } from "./conn.ts";
import { clientHandshake } from "./handshake_client.ts";
import { DEFAULT_GROUPS } from "./key_share.ts";
import type { ClientSessionCache } from "./psk.ts";
import { certificateFromDer, serverVerifier } from "./verify_peer.ts";
import type { Certificate } from "./x509/certificate.ts";
import { decodePemBlocks } from "./x509/pem.ts";
import { loadSystemRoots, type ValidationProfile } from "./x509/verify.ts";

export type { VersionOption } from "./config.ts";

/** Options for {@link connect}, named like tls.connect()'s where they overlap. */
export interface ConnectOptions {
  /** Host to connect to (default 127.0.0.1), also the name checked against the certificate. */
  host?: string;
  port?: number;
  /** An already-connected transport to run TLS over instead of a new TCP connection. */
  socket?: Duplex;
  /** The name for SNI and certificate checks when it differs from `host`. */
  servername?: string;
  minVersion?: VersionOption;
  maxVersion?: VersionOption;
  /** Suites by IANA or OpenSSL name (comma-separated) or as objects; default: all implemented. */
  ciphers?: string | readonly CipherSuite[];
  /** Trust anchors (PEM text or parsed); default: the system store. */
  ca?: string | Buffer | readonly Certificate[];
  /** Client key for mutual TLS. */
  key?: PrivateKeyHandle;
  /** Client certificate chain, PEM (leaf first), that goes with `key`. */
  cert?: string | Buffer;
  /** Fail on an untrusted server certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Certificate profile the server chain must meet: "strict" (default) or "rfc5280" (leaves without extendedKeyUsage). */
  profile?: ValidationProfile;
  ALPNProtocols?: readonly string[];
  handshakeTimeout?: number;
  /** Offer encrypt_then_mac for CBC suites (default true). */
  encryptThenMac?: boolean;
  /** Keep TLS 1.3 tickets here and resume with them (e.g. one cache per HsmkitAgent). */
  sessionCache?: ClientSessionCache;
}

/** The DER certificates of a PEM chain, each checked to parse (through the shared cache). */
function certificateChainDer(pem: string): Buffer[] {
  const ders = decodePemBlocks(pem)
    .filter((b) => b.label === "CERTIFICATE")
    .map((b) => b.der);
  if (ders.length === 0) throw new ConfigError((name) => `${name("cert")} holds no CERTIFICATE block`);
  for (const der of ders) certificateFromDer(der);
  return ders;
}

/**
 * Who the client is, for the session cache: a hash of the key's public key and the chain, or
 * "anonymous". A resumed session keeps the identity of the handshake that made it, so a cache
 * shared by connections with different client certificates must never hand one's ticket to another.
 */
function clientIdentity(key: PrivateKeyHandle | undefined, chain: readonly Buffer[]): string {
  if (!key) return "anonymous";
  const h = createHash("sha256");
  for (const part of [key.spki, ...chain]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(part.length);
    h.update(length).update(part);
  }
  return h.digest("hex");
}

/** Resolves user options into the handshake's configuration. Throws on unusable options. */
export function clientConfig(options: ConnectOptions): ClientConfig {
  const host = options.servername ?? options.host ?? "127.0.0.1";
  const { minVersion, maxVersion } = resolveVersionRange(options, VERSION_DEFAULTS);
  const suites = suiteOption(options.ciphers);
  const chain = options.cert ? certificateChainDer(options.cert.toString()) : [];
  if (options.key && chain.length === 0)
    throw new ConfigError(
      (name) => `a client ${name("key")} was given without its certificate (${name("cert")})`,
    );
  if (chain.length > 0 && !options.key)
    throw new ConfigError(
      (name) => `a client certificate (${name("cert")}) was given without its ${name("key")}`,
    );
  const roots = options.ca ? certificateList("ca", options.ca) : loadSystemRoots();
  return {
    serverName: isIP(host) ? undefined : host,
    minVersion,
    maxVersion,
    suites,
    groups: DEFAULT_GROUPS,
    key: options.key,
    certificateChain: chain,
    verifyServer: serverVerifier(roots, host, options.profile),
    rejectUnauthorized: options.rejectUnauthorized ?? true,
    alpn: options.ALPNProtocols ?? [],
    encryptThenMac: options.encryptThenMac ?? true,
    sessionCache: options.sessionCache,
    sessionKey: `${options.host ?? "127.0.0.1"}:${options.port ?? 443}/${host}#${clientIdentity(options.key, chain)}`,
  };
}

/** Opens a TLS connection; listen for 'secureConnect' (or just write: data waits for the handshake). */
export function connect(options: ConnectOptions): TlsSocket {
  const cfg = clientConfig(options);
  const transport =
    options.socket ?? tcpConnect({ host: options.host ?? "127.0.0.1", port: options.port ?? 443 });
  return new TlsSocket(transport, "client", (io) => clientHandshake(io, cfg), {
    handshakeTimeout: options.handshakeTimeout,
  });
}
