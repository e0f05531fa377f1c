/**
 * kms/: the self-hosted KMS speaking the KMS instance protocol. {@link KmsInstance} holds the
 * state (store, master key, audit), {@link KmsServer} serves it over mutual TLS, and
 * {@link KmsClient} is the client SDK. Importing this module registers `kms://` key references
 * with `openKey`.
 */
export { type AccessPointOptions, adminCreateAccessPoint, adminCreateKey } from "./admin.ts";
export {
  KmsClient,
  type KmsClientConfig,
  KmsCredentialError,
  KmsRequestError,
  KmsTransportError,
} from "./client.ts";
export { KmsServiceError } from "./errors.ts";
export { KmsKeyHandle, openKmsKey } from "./handle.ts";
export { InstanceError, KmsInstance, type MasterKeySource, type OpenOptions } from "./instance.ts";
export { KmsServer, type KmsServerOptions } from "./server.ts";
export type { KeySpec, KeyUsage } from "./specs.ts";
