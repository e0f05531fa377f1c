/**
 * The server entry point, in the shape of tls.createServer(): a net.Server whose
 * connections become TlsSockets running the server handshake with a key handle (file,
 * token or KMS). 'secureConnection' gets each socket once its handshake is done;
 * 'tlsClientError' gets every handshake failure, which never takes the server down.
 */
import { Server, type Socket } from "node:net";
import { ConfigError } from "../errors.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { type CipherSuite, suiteOption } from "./cipher_suites.ts";
import { certificateList, resolveVersionRange, VERSION_DEFAULTS, type VersionOption } from "./config.ts";
import { TlsSocket } from "./conn.ts";
import { serverHandshake } from "./handshake_server.ts";
import { serverHandshake13 } from "./handshake_server13.ts";
import { DEFAULT_GROUPS, type NamedGroup } from "./key_share.ts";
import type {
  ClientAuthConfig,
  ServerConfig,
  ServerHandshake13,
  ServerHandshakeDetails,
} from "./server_config.ts";
import { SessionStore, type SessionStoreOptions } from "./session.ts";
import { verifyPeerChain } from "./verify_peer.ts";
import type { Certificate } from "./x509/certificate.ts";
import type { ValidationProfile } from "./x509/verify.ts";

/** Options for {@link createServer}, named like tls.createServer()'s where they overlap. */
export interface TlsServerOptions {
  /** The server certificate chain, PEM, leaf first. */
  cert: string | Buffer;
  /** The server key: a file, a PKCS#11 token object or a KMS key. */
  key: PrivateKeyHandle;
  /** CAs whose client certificates are accepted (PEM or parsed); their names go in CertificateRequest. */
  clientCa?: string | Buffer | readonly Certificate[];
  /** Ask clients for a certificate (default: true when `clientCa` is given). */
  requestCert?: boolean;
  /** With requestCert, refuse clients without a valid certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Certificate profile client chains must meet: "strict" (default) or "rfc5280" (leaves without extendedKeyUsage). */
  profile?: ValidationProfile;
  /** Default "1.2". */
  minVersion?: VersionOption;
  /** Default "1.3". */
  maxVersion?: VersionOption;
  /**
   * Suites by IANA or OpenSSL name (comma-separated) or as objects, in server preference
   * order. Default: ECDHE with AEAD, then ECDHE with CBC; RSA key exchange only when listed.
   */
  ciphers?: string | readonly CipherSuite[];
  /** ECDHE groups in preference order (default X25519, P-256, P-384). */
  groups?: readonly NamedGroup[];
  /** ALPN protocols in server preference order, e.g. ["http/1.1"]. */
  ALPNProtocols?: readonly string[];
  /** Session resumption; false turns it off. Default: tickets and a session-ID cache. */
  sessions?: SessionStoreOptions | false;
  /** Accept encrypt_then_mac for CBC suites (default true). */
  encryptThenMac?: boolean;
  /** Abort handshakes that take longer (ms, default 30 s). */
  handshakeTimeout?: number;
  /** The TLS 1.3 server handshake (default: hsmkit's own). */
  tls13?: ServerHandshake13;
}

function clientAuthConfig(options: TlsServerOptions): ClientAuthConfig | undefined {
  const roots = options.clientCa ? certificateList("clientCa", options.clientCa) : [];
  if (!(options.requestCert ?? options.clientCa !== undefined)) return undefined;
  const require = options.rejectUnauthorized ?? true;
  if (require && roots.length === 0)
    throw new ConfigError(
      (name) => `requiring client certificates needs the CAs to trust in ${name("clientCa")}`,
    );
  return {
    require,
    authorities: roots.map((c) => c.subjectDer),
    verify: (chain) => verifyPeerChain(chain, roots, "client", undefined, options.profile),
  };
}

/** Resolves user options into the handshake's configuration. Throws on unusable options. */
export function serverConfig(options: TlsServerOptions): ServerConfig {
  const chain = certificateList("cert", options.cert);
  if (!chain[0]!.spki.equals(options.key.spki)) {
    throw new ConfigError(
      (name) =>
        `the ${name("key")} (${options.key.description}) does not match the certificate ${chain[0]!.label} in ${name("cert")}`,
    );
  }
  const { minVersion, maxVersion } = resolveVersionRange(options, VERSION_DEFAULTS);
  const suites = suiteOption(options.ciphers);
  const usable = suites.filter((s) =>
    s.kx === "ecdhe_ecdsa" ? options.key.type === "ec" : s.kx === "tls13" || options.key.type === "rsa",
  );
  if (usable.length === 0)
    throw new ConfigError(
      (name) => `none of the suites in ${name("ciphers")} can be served with an ${options.key.type} key`,
    );
  return {
    key: options.key,
    certificateChain: chain.map((c) => c.der),
    minVersion,
    maxVersion,
    suites,
    groups: options.groups ?? DEFAULT_GROUPS,
    clientAuth: clientAuthConfig(options),
    alpn: options.ALPNProtocols ?? [],
    encryptThenMac: options.encryptThenMac ?? true,
    sessions: options.sessions === false ? undefined : new SessionStore(options.sessions ?? {}),
    tls13: options.tls13 ?? serverHandshake13,
  };
}

const details = new WeakMap<TlsSocket, ServerHandshakeDetails>();

/** SNI and resumption facts for a server-side socket (undefined before its ClientHello). */
export function serverHandshakeDetails(socket: TlsSocket): ServerHandshakeDetails | undefined {
  return details.get(socket);
}

/**
 * A TLS server over TCP; listen() and close() are net.Server's. Events besides
 * net.Server's: 'secureConnection' (socket: TlsSocket) once a handshake completes, and
 * 'tlsClientError' (err: TlsError | Error, socket: TlsSocket) when one fails.
 */
export class TlsServer extends Server {
  /** The resolved configuration every connection uses. */
  readonly config: ServerConfig;
  /** Every open connection, handshaking or established. */
  readonly sockets = new Set<TlsSocket>();

  constructor(options: TlsServerOptions, secureConnectionListener?: (socket: TlsSocket) => void) {
    super();
    this.config = serverConfig(options);
    const timeout = options.handshakeTimeout;
    this.on("connection", (socket: Socket) => this.accept(socket, timeout));
    this.on("close", () => this.config.sessions?.clear());
    if (secureConnectionListener) this.on("secureConnection", secureConnectionListener);
  }

  private accept(socket: Socket, handshakeTimeout: number | undefined): void {
    let tls: TlsSocket | undefined;
    const cfg: ServerConfig = {
      ...this.config,
      onDetails: (d) => {
        if (tls) details.set(tls, d);
      },
    };
    tls = new TlsSocket(socket, "server", (io) => serverHandshake(io, cfg), {
      handshakeTimeout,
    });
    const sock = tls;
    this.sockets.add(sock);
    sock.once("close", () => this.sockets.delete(sock));
    const onError = (err: Error) => this.emit("tlsClientError", err, sock);
    sock.on("error", onError);
    sock.once("secure", () => {
      sock.off("error", onError);
      this.emit("secureConnection", sock);
    });
  }
}

/** Creates a TLS server; `secureConnectionListener` is added for 'secureConnection'. */
export function createServer(
  options: TlsServerOptions,
  secureConnectionListener?: (socket: TlsSocket) => void,
): TlsServer {
  return new TlsServer(options, secureConnectionListener);
}
