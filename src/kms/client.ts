/**
 * The TypeScript client SDK for the KMS instance protocol, shaped like the instance SDKs of
 * seed 000: a config with the endpoint, the client key file and its password, and the
 * instance CA; one method per operation; typed errors carrying the server's code and request
 * id; automatic retries with backoff on throttling and transient failures.
 */
import { sign as cryptoSign, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import { promisify } from "node:util";
import { TimeoutError } from "../errors.ts";
import {
  ACCESS_KEY_HEADER,
  API_VERSION,
  contentSha256,
  formatHttpDate,
  PROTOBUF_CONTENT_TYPE,
  SIGNATURE_METHOD,
  stringToSign,
} from "./auth.ts";
import { type KmsClientConfig, KmsCredentialError, loadClientKey } from "./client_credentials.ts";
import type {
  DataKeyPairParams,
  DecryptParams,
  EncryptParams,
  GenerateDataKeyParams,
  GetSecretValueParams,
  SignParams,
  VerifyParams,
} from "./client_params.ts";
import { RETRYABLE_CODES } from "./errors.ts";
import {
  decodeMessage,
  encodeMessage,
  type KmsMessageName,
  type KmsMessages,
  ProtoDecodeError,
} from "./proto.ts";

export { type KmsClientConfig, KmsCredentialError, loadClientKey } from "./client_credentials.ts";
export type * from "./client_params.ts";

const signAsync = promisify(cryptoSign);

/** A refusal from the server: the protocol's code, the HTTP status and the request id. */
export class KmsRequestError extends Error {
  constructor(
    readonly code: string,
    readonly statusCode: number,
    readonly requestId: string,
    message: string,
  ) {
    super(`${code}: ${message}${requestId ? ` (request ${requestId})` : ""}`);
    this.name = "KmsRequestError";
  }

  /** Whether the SDK retries this code. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }
}

/** The server could not be reached or spoke something else (TLS failure, timeout, garbage). */
export class KmsTransportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KmsTransportError";
  }
}

/** A KMS instance client. Reuse one per endpoint: it keeps TLS connections alive. */
export class KmsClient {
  private readonly host: string;
  private readonly port: number;
  private readonly agent: https.Agent;
  private readonly accessKeyId: string;
  private readonly privateKey: KeyObject;

  constructor(private readonly config: KmsClientConfig) {
    const endpoint = config.endpoint.replace(/^https:\/\//, "").replace(/\/$/, "");
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(endpoint);
    if (!match?.[1]) throw new KmsCredentialError(`bad endpoint "${config.endpoint}" (want HOST:PORT)`);
    this.host = match[1].replace(/^\[|\]$/g, "");
    this.port = Number(match[2] ?? 443);
    let ca = config.ca;
    if (ca === undefined && config.caFilePath !== undefined) {
      try {
        ca = readFileSync(config.caFilePath, "utf8");
      } catch (err) {
        throw new KmsCredentialError(
          `cannot read the CA file ${config.caFilePath}: ${(err as NodeJS.ErrnoException).code}`,
        );
      }
    }
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: config.maxSockets ?? 32,
      ca,
      minVersion: "TLSv1.2",
    });
    const creds = loadClientKey(config);
    this.accessKeyId = creds.accessKeyId;
    this.privateKey = creds.privateKey;
  }

  /** The access point this client authenticates as. */
  get accessPointId(): string {
    return this.accessKeyId;
  }

  /** Signs a message (RAW) or a digest (DIGEST). */
  async sign(p: SignParams): Promise<KmsMessages["SignResponse"]> {
    return this.call("Sign", "SignRequest", "SignResponse", {
      KeyId: p.keyId,
      Algorithm: p.algorithm,
      ...messageFields(p),
    });
  }

  /** Verifies a signature; `value` is the verdict. */
  async verify(p: VerifyParams): Promise<KmsMessages["VerifyResponse"]> {
    return this.call("Verify", "VerifyRequest", "VerifyResponse", {
      KeyId: p.keyId,
      Algorithm: p.algorithm,
      Signature: Buffer.from(p.signature),
      ...messageFields(p),
    });
  }

  /** The key's public key (PEM). */
  async getPublicKey(keyId: string): Promise<KmsMessages["GetPublicKeyResponse"]> {
    return this.call("GetPublicKey", "GetPublicKeyRequest", "GetPublicKeyResponse", { KeyId: keyId });
  }

  /** Encrypts with a symmetric or RSA key. */
  async encrypt(p: EncryptParams): Promise<KmsMessages["EncryptResponse"]> {
    return this.call("Encrypt", "EncryptRequest", "EncryptResponse", encryptFields(p));
  }

  /** Decrypts a blob from Encrypt or GenerateDataKey. */
  async decrypt(p: DecryptParams): Promise<KmsMessages["DecryptResponse"]> {
    return this.call("Decrypt", "DecryptRequest", "DecryptResponse", decryptFields(p));
  }

  /** A fresh data key, in the clear and wrapped. */
  async generateDataKey(p: GenerateDataKeyParams): Promise<KmsMessages["GenerateDataKeyResponse"]> {
    return this.call("GenerateDataKey", "GenerateDataKeyRequest", "GenerateDataKeyResponse", {
      KeyId: p.keyId,
      NumberOfBytes: p.numberOfBytes ?? 0,
      Algorithm: p.algorithm ?? "",
      Aad: Buffer.from(p.aad ?? []),
    });
  }

  /** Encrypts into a blob that names its key and version (AdvanceDecrypt needs no key id). */
  async advanceEncrypt(p: EncryptParams): Promise<KmsMessages["AdvanceEncryptResponse"]> {
    return this.call("AdvanceEncrypt", "AdvanceEncryptRequest", "AdvanceEncryptResponse", encryptFields(p));
  }

  /** Decrypts an Advance blob (from AdvanceEncrypt, AdvanceGenerateDataKey or an Advance key pair). */
  async advanceDecrypt(p: DecryptParams): Promise<KmsMessages["AdvanceDecryptResponse"]> {
    return this.call("AdvanceDecrypt", "AdvanceDecryptRequest", "AdvanceDecryptResponse", decryptFields(p));
  }

  /** A fresh data key, in the clear and in an Advance blob. */
  async advanceGenerateDataKey(
    p: GenerateDataKeyParams,
  ): Promise<KmsMessages["AdvanceGenerateDataKeyResponse"]> {
    const value = { KeyId: p.keyId, NumberOfBytes: p.numberOfBytes ?? 0, Aad: Buffer.from(p.aad ?? []) };
    return this.call(
      "AdvanceGenerateDataKey",
      "AdvanceGenerateDataKeyRequest",
      "AdvanceGenerateDataKeyResponse",
      value,
    );
  }

  /** An RSA or EC key pair; the private key in the clear and wrapped (Decrypt opens it). */
  async generateDataKeyPair(p: DataKeyPairParams): Promise<KmsMessages["GenerateDataKeyPairResponse"]> {
    return this.call(
      "GenerateDataKeyPair",
      "GenerateDataKeyPairRequest",
      "GenerateDataKeyPairResponse",
      pairFields(p),
    );
  }

  /** The same, without the plaintext private key. */
  async generateDataKeyPairWithoutPlaintext(
    p: DataKeyPairParams,
  ): Promise<KmsMessages["GenerateDataKeyPairWithoutPlaintextResponse"]> {
    const api = "GenerateDataKeyPairWithoutPlaintext";
    return this.call(api, `${api}Request`, `${api}Response`, pairFields(p));
  }

  /** A key pair whose private key is wrapped in an Advance blob (AdvanceDecrypt opens it). */
  async advanceGenerateDataKeyPair(
    p: DataKeyPairParams,
  ): Promise<KmsMessages["AdvanceGenerateDataKeyPairResponse"]> {
    const api = "AdvanceGenerateDataKeyPair";
    return this.call(api, `${api}Request`, `${api}Response`, pairFields(p));
  }

  /** The Advance form without the plaintext private key. */
  async advanceGenerateDataKeyPairWithoutPlaintext(
    p: DataKeyPairParams,
  ): Promise<KmsMessages["AdvanceGenerateDataKeyPairWithoutPlaintextResponse"]> {
    const api = "AdvanceGenerateDataKeyPairWithoutPlaintext";
    return this.call(api, `${api}Request`, `${api}Response`, pairFields(p));
  }

  /** A secret's value (ACSCurrent unless a stage or version id is given). */
  async getSecretValue(p: GetSecretValueParams): Promise<KmsMessages["GetSecretValueResponse"]> {
    return this.call("GetSecretValue", "GetSecretValueRequest", "GetSecretValueResponse", {
      SecretName: p.secretName,
      VersionStage: p.versionStage ?? "",
      VersionId: p.versionId ?? "",
      FetchExtendedConfig: p.fetchExtendedConfig ?? false,
    });
  }

  /** Random bytes from the server. */
  async generateRandom(length: number): Promise<KmsMessages["GenerateRandomResponse"]> {
    return this.call("GenerateRandom", "GenerateRandomRequest", "GenerateRandomResponse", { Length: length });
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /** One protocol call with retries: encode, sign, send, decode or raise. */
  async call<Q extends KmsMessageName, R extends KmsMessageName>(
    apiName: string,
    requestType: Q,
    responseType: R,
    value: Partial<KmsMessages[Q]>,
  ): Promise<KmsMessages[R]> {
    const body = encodeMessage(requestType, value);
    const attempts = Math.max(1, this.config.maxAttempts ?? 4);
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = await this.send(apiName, body);
        try {
          return decodeMessage(responseType, reply);
        } catch (err) {
          if (err instanceof ProtoDecodeError)
            throw new KmsTransportError(`the server's ${responseType} is malformed`);
          throw err;
        }
      } catch (err) {
        const retry =
          attempt < attempts &&
          ((err instanceof KmsRequestError && err.retryable) ||
            (err instanceof KmsTransportError && isTransient(err)));
        if (!retry) throw err;
        const base = (this.config.backoffMs ?? 100) * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, Math.min(2000, base) * (0.5 + Math.random())));
      }
    }
  }

  private async send(apiName: string, body: Buffer): Promise<Buffer> {
    const headers: Record<string, string> = {
      accept: PROTOBUF_CONTENT_TYPE,
      date: formatHttpDate(new Date()),
      "x-kms-apiversion": API_VERSION,
      "x-kms-apiname": apiName,
      "x-kms-signaturemethod": SIGNATURE_METHOD,
      [ACCESS_KEY_HEADER]: this.accessKeyId,
      "content-type": PROTOBUF_CONTENT_TYPE,
      "content-sha256": contentSha256(body),
    };
    const signature = await signAsync("sha256", Buffer.from(stringToSign("POST", headers)), this.privateKey);
    headers.authorization = `Bearer ${signature.toString("base64")}`;
    headers["content-length"] = String(body.length);
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: this.host, port: this.port, method: "POST", path: "/", headers, agent: this.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (err) =>
            reject(new KmsTransportError(`reply interrupted: ${err.message}`, { cause: err })),
          );
          res.on("end", () => {
            const data = Buffer.concat(chunks);
            const status = res.statusCode ?? 0;
            if (status === 200) return resolve(data);
            reject(errorFromReply(status, data));
          });
        },
      );
      const timeoutMs = this.config.timeoutMs ?? 30_000;
      req.setTimeout(timeoutMs, () => req.destroy(new TimeoutError("timed out", timeoutMs)));
      req.on("error", (err: NodeJS.ErrnoException) =>
        reject(
          new KmsTransportError(`cannot reach the KMS at ${this.host}:${this.port}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
      req.end(body);
    });
  }
}

function messageFields(p: SignParams): { Message: Buffer; MessageType: string } {
  if (p.digest !== undefined) return { Message: Buffer.from(p.digest), MessageType: "DIGEST" };
  return { Message: Buffer.from(p.message ?? []), MessageType: "RAW" };
}

function encryptFields(p: EncryptParams) {
  return {
    KeyId: p.keyId,
    Plaintext: Buffer.from(p.plaintext),
    Algorithm: p.algorithm ?? "",
    Aad: Buffer.from(p.aad ?? []),
    Iv: Buffer.from(p.iv ?? []),
  };
}

function decryptFields(p: DecryptParams) {
  return {
    CiphertextBlob: Buffer.from(p.ciphertextBlob),
    KeyId: p.keyId ?? "",
    Algorithm: p.algorithm ?? "",
    Aad: Buffer.from(p.aad ?? []),
    Iv: Buffer.from(p.iv ?? []),
  };
}

function pairFields(p: DataKeyPairParams) {
  return {
    KeyId: p.keyId,
    Algorithm: p.algorithm ?? "",
    KeyPairSpec: p.keyPairSpec,
    KeyFormat: p.keyFormat ?? "",
    Aad: Buffer.from(p.aad ?? []),
  };
}

function errorFromReply(status: number, data: Buffer): Error {
  try {
    const e = decodeMessage("Error", data);
    if (e.ErrorCode) return new KmsRequestError(e.ErrorCode, status, e.RequestId, e.ErrorMessage);
  } catch {
    // not a protobuf Error: fall through
  }
  return new KmsRequestError(
    status >= 500 ? "InternalFailure" : "UnknownError",
    status,
    "",
    `HTTP ${status}`,
  );
}

const TRANSIENT = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT"]);

function isTransient(err: KmsTransportError): boolean {
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && TRANSIENT.has(code);
}
