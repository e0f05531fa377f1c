/**
 * hsmkit: mutual TLS, a private CA, a KMS and file signing with private keys that never leave
 * a PKCS#11 token or KMS. This entry point holds what most programs need; the subpaths
 * `hsmkit/keys`, `hsmkit/tls`, `hsmkit/https`, `hsmkit/pki`, `hsmkit/kms` and `hsmkit/sign`
 * hold the rest. Importing it registers `kms://` key references (the KMS client loads on first use).
 */
import "./kms/register.ts";

export {
  ConfigError,
  HsmkitError,
  type OptionNamer,
  type OptionText,
  TimeoutError,
} from "./errors.ts";
export { type AgentTlsOptions, HsmkitAgent } from "./https/agent.ts";
export { type ConnectorOptions, hsmkitConnector } from "./https/undici.ts";
export {
  generateKey,
  KeyError,
  type KeyErrorKind,
  type KeyGenType,
  openKey,
  type PrivateKeyHandle,
  publicKeyPem,
} from "./keys/index.ts";
export { PkiError } from "./pki/errors.ts";
export { AlgorithmError } from "./sign/algorithms.ts";
export { signFile } from "./sign/sign_file.ts";
export { verifyFile } from "./sign/verify_file.ts";
export { AlertDescription, TlsError, type TlsErrorKind } from "./tls/alert.ts";
export { type ConnectOptions, connect } from "./tls/client.ts";
export type { TlsSocket } from "./tls/conn.ts";
export { createServer, TlsServer, type TlsServerOptions } from "./tls/server.ts";
