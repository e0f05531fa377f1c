/**
 * The client's configuration and its credentials: the access point's client key file
 * (`clientKey_KAAP.<id>.json`, a PKCS#12 inside) and its password, read as the instance
 * SDKs read them.
 */
import type { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { readPfx } from "../keys/pkcs12/read.ts";
import { warnIfSecretFileExposed } from "../keys/secret_file.ts";
import type { ClientKeyJson } from "./access_point.ts";

/** Client configuration (field names follow the instance SDKs' Config). */
export interface KmsClientConfig {
  /** `host:port`, optionally with `https://`. */
  readonly endpoint: string;
  /** Path of `clientKey_KAAP.<id>.json`. */
  readonly clientKeyFile?: string;
  /** The JSON text of a client key file, instead of `clientKeyFile`. */
  readonly clientKeyContent?: string;
  /** The client key password. */
  readonly password?: string;
  /** A file holding the password, instead of `password`. */
  readonly passwordFile?: string;
  /** The instance CA certificate, PEM text. */
  readonly ca?: string;
  /** The instance CA certificate, a file path (the SDKs' `verify` / `caFilePath`). */
  readonly caFilePath?: string;
  /** Attempts per call when the server throttles or fails transiently; default 4. */
  readonly maxAttempts?: number;
  /** First backoff delay in ms (doubled per attempt, with jitter); default 100. */
  readonly backoffMs?: number;
  /** Per-attempt timeout in ms; default 30 000. */
  readonly timeoutMs?: number;
  /** Sockets kept per endpoint; default 32. */
  readonly maxSockets?: number;
}

/** The client key file or password is unusable. */
export class KmsCredentialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KmsCredentialError";
  }
}

/** Loads an access point's id and private key from a client key file + password. */
export function loadClientKey(config: KmsClientConfig): { accessKeyId: string; privateKey: KeyObject } {
  let text = config.clientKeyContent;
  if (text === undefined) {
    if (!config.clientKeyFile)
      throw new KmsCredentialError("no client key: set clientKeyFile or clientKeyContent");
    try {
      text = readFileSync(config.clientKeyFile, "utf8");
    } catch (err) {
      throw new KmsCredentialError(
        `cannot read ${config.clientKeyFile}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
  }
  let json: Partial<ClientKeyJson>;
  try {
    json = JSON.parse(text) as Partial<ClientKeyJson>;
  } catch {
    throw new KmsCredentialError("the client key file is not JSON");
  }
  if (typeof json.KeyId !== "string" || typeof json.PrivateKeyData !== "string") {
    throw new KmsCredentialError("the client key file lacks KeyId or PrivateKeyData");
  }
  let password = config.password;
  if (password === undefined && config.passwordFile !== undefined) {
    warnIfSecretFileExposed(config.passwordFile, "password file");
    try {
      password = readFileSync(config.passwordFile, "utf8").trim();
    } catch (err) {
      throw new KmsCredentialError(
        `cannot read ${config.passwordFile}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
  }
  if (password === undefined)
    throw new KmsCredentialError("no client key password: set password or passwordFile");
  try {
    const { privateKey } = readPfx(Buffer.from(json.PrivateKeyData, "base64"), password);
    return { accessKeyId: json.KeyId, privateKey };
  } catch (err) {
    throw new KmsCredentialError(`cannot open the client key: ${(err as Error).message}`);
  }
}
