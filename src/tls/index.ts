/**
 * tls/: the public face of hsmkit's TLS 1.1/1.2/1.3 stack, shaped like Node's `tls`:
 * {@link connect} and {@link createServer} take a key handle where Node takes key bytes, and
 * hand back sockets that behave like `tls.TLSSocket` (`authorized`, `getPeerCertificate()`,
 * `getProtocol()`, `getCipher()`, `alpnProtocol`), so `http`, `https` and undici run on them.
 */

export { AlertDescription, TlsError, type TlsErrorKind } from "./alert.ts";
export { CIPHER_SUITES, type CipherSuite } from "./cipher_suites.ts";
export { type ConnectOptions, connect, type VersionOption } from "./client.ts";
export type { TlsSocket } from "./conn.ts";
export { ClientSessionCache } from "./psk.ts";
export { createServer, TlsServer, type TlsServerOptions } from "./server.ts";
export type { PeerCertificate } from "./socket_face.ts";
export {
  Certificate,
  type Purpose,
  parsePemBundle,
  type VerifyOptions,
  type VerifyResult,
  verifyChain,
  X509ParseError,
} from "./x509/index.ts";
