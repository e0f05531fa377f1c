/**
 * The KMS operations, after authentication: decode the protobuf request, check the access
 * point's policy and the key's state and usage, do the cryptography, encode the reply.
 * Refusals are {@link KmsServiceError}s with the protocol's codes.
 */
import { randomBytes } from "node:crypto";
import { KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import {
  aesGcmOpen,
  aesGcmSeal,
  type LoadedKey,
  rsaOaepDecrypt,
  rsaOaepEncrypt,
  signDigest,
  signMessage,
  verifyDigest,
  verifyMessage,
} from "./key_ops.ts";
import { allowsKey, allowsOperation, type Operation } from "./policy.ts";
import {
  decodeMessage,
  encodeMessage,
  type KmsMessageName,
  type KmsMessages,
  ProtoDecodeError,
} from "./proto.ts";
import {
  defaultAlgorithm,
  KEY_SPECS,
  type KeyUsage,
  RSA_ENCRYPT_ALGORITHMS,
  type SignAlgorithmInfo,
  SYMMETRIC_ALGORITHM,
  signAlgorithm,
} from "./specs.ts";
import type { AccessPointRecord, KeyRecord } from "./store.ts";

/** Per-request facts the service fills in for the audit log. */
export interface RequestContext {
  readonly accessPoint: AccessPointRecord;
  readonly requestId: string;
  /** The key the request resolved to (or the name it asked for). */
  keyId: string;
  /** Non-secret detail for the audit log (algorithm, message type, version). */
  detail: string;
}

const MAX_DATA_KEY_BYTES = 1024;
const MAX_RANDOM_BYTES = 1024;
const BLOB_FORMAT = 0x01;
const BLOB_HEADER = 1 + 16;
/** Longest KeyId accepted: key-<hex> ids and aliases (alias/ + up to 200 characters) are far shorter. */
const MAX_KEY_NAME = 256;

function decode<N extends KmsMessageName>(name: N, body: Buffer): KmsMessages[N] {
  try {
    return decodeMessage(name, body);
  } catch (err) {
    if (err instanceof ProtoDecodeError)
      throw new KmsServiceError("InvalidParam", `The body is not a valid ${name}.`);
    throw err;
  }
}

/** Runs one operation; returns the encoded reply. */
export class KmsService {
  constructor(private readonly instance: KmsInstance) {}

  /** Dispatches by API name (already validated as an {@link Operation}). */
  async handle(operation: Operation, body: Buffer, ctx: RequestContext): Promise<Buffer> {
    if (!allowsOperation(ctx.accessPoint.policy, operation)) {
      throw new KmsServiceError("Forbidden.NoPermission", `This access point may not call ${operation}.`);
    }
    switch (operation) {
      case "Sign":
        return this.sign(decode("SignRequest", body), ctx);
      case "Verify":
        return this.verify(decode("VerifyRequest", body), ctx);
      case "GetPublicKey":
        return this.getPublicKey(decode("GetPublicKeyRequest", body), ctx);
      case "Encrypt":
        return this.encrypt(decode("EncryptRequest", body), ctx);
      case "Decrypt":
        return this.decrypt(decode("DecryptRequest", body), ctx);
      case "GenerateDataKey":
        return this.generateDataKey(decode("GenerateDataKeyRequest", body), ctx);
      case "GenerateRandom":
        return this.generateRandom(decode("GenerateRandomRequest", body), ctx);
    }
  }

  /** Resolves a key the access point may use, in a state and usage that allow the operation. */
  private async usableKey(
    name: string,
    usage: KeyUsage | undefined,
    ctx: RequestContext,
  ): Promise<KeyRecord> {
    if (name === "") throw new KmsServiceError("MissingParameter", "The parameter KeyId is missing.");
    // Key ids and aliases are short; a long one is refused before it reaches lookups or the audit log.
    if (name.length > MAX_KEY_NAME)
      throw new KmsServiceError("InvalidParam", "The parameter KeyId is too long.");
    ctx.keyId = name;
    const key = await this.instance.keys.resolve(name);
    const policy = ctx.accessPoint.policy;
    if (!key) {
      // Only say "not found" to an access point that could have used such a key.
      if (allowsKey(policy, name, name.startsWith("alias/") ? [name] : [])) {
        throw new KmsServiceError("Forbidden.KeyNotFound", `The key "${name}" does not exist.`);
      }
      throw new KmsServiceError("Forbidden.NoPermission", `This access point may not use "${name}".`);
    }
    ctx.keyId = key.id;
    const aliases = await this.instance.store.aliasesOf(key.id);
    if (!allowsKey(policy, key.id, name === key.id ? aliases : [...aliases, name])) {
      throw new KmsServiceError("Forbidden.NoPermission", `This access point may not use "${name}".`);
    }
    if (key.state !== "Enabled") {
      this.instance.keys.forget(key.id);
      throw new KmsServiceError("IncorrectKeyState", `The key is ${key.state}.`);
    }
    if (usage !== undefined && key.usage !== usage) {
      throw new KmsServiceError("UnsupportedOperation", `The key's usage is ${key.usage}, not ${usage}.`);
    }
    return key;
  }

  private signingAlgorithm(key: KeyRecord, name: string, ctx: RequestContext): [string, SignAlgorithmInfo] {
    const kind = KEY_SPECS[key.spec].kind;
    const algName = name === "" ? defaultAlgorithm(kind, "sign") : name;
    const alg = signAlgorithm(algName);
    if (!alg) throw new KmsServiceError("InvalidParameter", `Unknown signing algorithm "${algName}".`);
    if (alg.kind !== kind)
      throw new KmsServiceError("InvalidParameter", `${algName} does not suit a ${key.spec} key.`);
    ctx.detail = algName;
    return [algName, alg];
  }

  /** RAW (sign/verify `Message`) or DIGEST (a precomputed digest in `Message`, or legacy `Digest`). */
  private messageInput(messageType: string, message: Buffer, digest: Buffer, ctx: RequestContext) {
    const type =
      messageType === "" ? (message.length === 0 && digest.length > 0 ? "DIGEST" : "RAW") : messageType;
    if (type !== "RAW" && type !== "DIGEST") {
      throw new KmsServiceError("InvalidParameter", "MessageType must be RAW or DIGEST.");
    }
    const data = type === "DIGEST" && message.length === 0 ? digest : message;
    if (data.length === 0) throw new KmsServiceError("MissingParameter", "The parameter Message is missing.");
    ctx.detail += ` ${type}`;
    return { type, data } as const;
  }

  private async sign(req: KmsMessages["SignRequest"], ctx: RequestContext): Promise<Buffer> {
    const key = await this.usableKey(req.KeyId, "SIGN/VERIFY", ctx);
    const [algName, alg] = this.signingAlgorithm(key, req.Algorithm, ctx);
    const input = this.messageInput(req.MessageType, req.Message, req.Digest, ctx);
    const version = await this.instance.keys.primaryVersion(key.id);
    ctx.detail += ` v${version.seq}`;
    const loaded = await this.instance.keys.load(key, version);
    const signature =
      input.type === "RAW"
        ? await signMessage(loaded, alg, input.data)
        : await signDigest(loaded, alg, input.data);
    return encodeMessage("SignResponse", {
      KeyId: key.id,
      Signature: signature,
      RequestId: ctx.requestId,
      Algorithm: algName,
      MessageType: input.type,
    });
  }

  private async verify(req: KmsMessages["VerifyRequest"], ctx: RequestContext): Promise<Buffer> {
    const key = await this.usableKey(req.KeyId, "SIGN/VERIFY", ctx);
    const [algName, alg] = this.signingAlgorithm(key, req.Algorithm, ctx);
    const input = this.messageInput(req.MessageType, req.Message, req.Digest, ctx);
    if (req.Signature.length === 0)
      throw new KmsServiceError("MissingParameter", "The parameter Signature is missing.");
    let value = false;
    // The signature does not say which version made it: try newest first.
    for (const version of await this.instance.keys.versions(key.id)) {
      const loaded = await this.instance.keys.load(key, version);
      value =
        input.type === "RAW"
          ? await verifyMessage(loaded, alg, input.data, req.Signature)
          : await verifyDigest(loaded, alg, input.data, req.Signature);
      if (value) {
        ctx.detail += ` v${version.seq}`;
        break;
      }
    }
    ctx.detail += value ? " valid" : " invalid";
    return encodeMessage("VerifyResponse", {
      KeyId: key.id,
      Value: value,
      RequestId: ctx.requestId,
      Algorithm: algName,
      MessageType: input.type,
    });
  }

  private async getPublicKey(req: KmsMessages["GetPublicKeyRequest"], ctx: RequestContext): Promise<Buffer> {
    const key = await this.usableKey(req.KeyId, undefined, ctx);
    if (KEY_SPECS[key.spec].kind === "aes") {
      throw new KmsServiceError("UnsupportedOperation", "A symmetric key has no public key.");
    }
    const version = await this.instance.keys.primaryVersion(key.id);
    ctx.detail = `v${version.seq}`;
    return encodeMessage("GetPublicKeyResponse", {
      KeyId: key.id,
      PublicKey: this.instance.keys.publicKeyPem(version),
      RequestId: ctx.requestId,
    });
  }

  /**
   * Seals with AES-GCM under the key's newest version; the blob names the version. The IV is
   * drawn here, 96 random bits per message, and never taken from a caller.
   */
  private async seal(key: KeyRecord, plaintext: Buffer, aad: Buffer, ctx: RequestContext) {
    const iv = randomBytes(12);
    const version = await this.instance.keys.primaryVersion(key.id);
    ctx.detail += ` v${version.seq}`;
    const loaded = await this.instance.keys.load(key, version);
    const header = Buffer.concat([Buffer.from([BLOB_FORMAT]), Buffer.from(version.id, "hex")]);
    const sealed = aesGcmSeal(secretOf(loaded), iv, Buffer.concat([header, aad]), plaintext);
    return { blob: Buffer.concat([header, sealed]), iv };
  }

  private async encrypt(req: KmsMessages["EncryptRequest"], ctx: RequestContext): Promise<Buffer> {
    const key = await this.usableKey(req.KeyId, "ENCRYPT/DECRYPT", ctx);
    if (req.Plaintext.length === 0)
      throw new KmsServiceError("MissingParameter", "The parameter Plaintext is missing.");
    const kind = KEY_SPECS[key.spec].kind;
    const algName = req.Algorithm === "" ? defaultAlgorithm(kind, "encrypt") : req.Algorithm;
    ctx.detail = algName;
    if (kind === "aes") {
      if (algName !== SYMMETRIC_ALGORITHM)
        throw new KmsServiceError("InvalidParameter", "Use Algorithm AES_GCM.");
      // GCM under a repeated (key, IV) leaks the XOR of plaintexts and the GHASH key, so the
      // KMS alone picks IVs. Refused rather than ignored: a caller that keeps its own IV
      // instead of the one returned would otherwise find out only when Decrypt fails.
      if (req.Iv.length !== 0) {
        throw new KmsServiceError(
          "InvalidParameter",
          "Iv must be left empty: the KMS chooses a fresh random IV and returns it in the response.",
        );
      }
      const { blob, iv } = await this.seal(key, req.Plaintext, req.Aad, ctx);
      return encodeMessage("EncryptResponse", {
        KeyId: key.id,
        CiphertextBlob: blob,
        Iv: iv,
        RequestId: ctx.requestId,
        Algorithm: algName,
      });
    }
    const oaepHash = rsaOaepHash(algName);
    const version = await this.instance.keys.primaryVersion(key.id);
    ctx.detail += ` v${version.seq}`;
    const blob = rsaOaepEncrypt(await this.instance.keys.load(key, version), oaepHash, req.Plaintext);
    return encodeMessage("EncryptResponse", {
      KeyId: key.id,
      CiphertextBlob: blob,
      RequestId: ctx.requestId,
      Algorithm: algName,
    });
  }

  private async decrypt(req: KmsMessages["DecryptRequest"], ctx: RequestContext): Promise<Buffer> {
    const blob = req.CiphertextBlob;
    if (blob.length === 0)
      throw new KmsServiceError("MissingParameter", "The parameter CiphertextBlob is missing.");
    let keyName = req.KeyId;
    if (keyName === "" && blob.length > BLOB_HEADER && blob[0] === BLOB_FORMAT) {
      // A symmetric blob names its key version, so KeyId may be left out.
      keyName =
        (await this.instance.store.version(blob.subarray(1, BLOB_HEADER).toString("hex")))?.keyId ?? "";
    }
    const key = await this.usableKey(keyName, "ENCRYPT/DECRYPT", ctx);
    const kind = KEY_SPECS[key.spec].kind;
    const algName = req.Algorithm === "" ? defaultAlgorithm(kind, "encrypt") : req.Algorithm;
    ctx.detail = algName;
    let plaintext: Buffer | undefined;
    if (kind === "aes") {
      if (algName !== SYMMETRIC_ALGORITHM)
        throw new KmsServiceError("InvalidParameter", "Use Algorithm AES_GCM.");
      if (req.Iv.length !== 12)
        throw new KmsServiceError("InvalidParameter", "Iv must be the 12 bytes Encrypt returned.");
      const version =
        blob[0] === BLOB_FORMAT
          ? await this.instance.store.version(blob.subarray(1, BLOB_HEADER).toString("hex"))
          : undefined;
      if (version && version.keyId === key.id && blob.length >= BLOB_HEADER + 16) {
        ctx.detail += ` v${version.seq}`;
        const loaded = await this.instance.keys.load(key, version);
        const header = blob.subarray(0, BLOB_HEADER);
        plaintext = aesGcmOpen(
          secretOf(loaded),
          req.Iv,
          Buffer.concat([header, req.Aad]),
          blob.subarray(BLOB_HEADER),
        );
      }
    } else {
      const oaepHash = rsaOaepHash(algName);
      for (const version of await this.instance.keys.versions(key.id)) {
        plaintext = rsaOaepDecrypt(await this.instance.keys.load(key, version), oaepHash, blob);
        if (plaintext) {
          ctx.detail += ` v${version.seq}`;
          break;
        }
      }
    }
    if (!plaintext)
      throw new KmsServiceError("InvalidCiphertext", "The ciphertext does not decrypt under this key.");
    return encodeMessage("DecryptResponse", {
      KeyId: key.id,
      Plaintext: plaintext,
      RequestId: ctx.requestId,
      Algorithm: algName,
    });
  }

  private async generateDataKey(
    req: KmsMessages["GenerateDataKeyRequest"],
    ctx: RequestContext,
  ): Promise<Buffer> {
    const key = await this.usableKey(req.KeyId, "ENCRYPT/DECRYPT", ctx);
    if (KEY_SPECS[key.spec].kind !== "aes") {
      throw new KmsServiceError("UnsupportedOperation", "GenerateDataKey needs a symmetric key.");
    }
    const algName = req.Algorithm === "" ? SYMMETRIC_ALGORITHM : req.Algorithm;
    if (algName !== SYMMETRIC_ALGORITHM)
      throw new KmsServiceError("InvalidParameter", "Use Algorithm AES_GCM.");
    const size = req.NumberOfBytes === 0 ? 32 : req.NumberOfBytes;
    if (!Number.isInteger(size) || size < 1 || size > MAX_DATA_KEY_BYTES) {
      throw new KmsServiceError("InvalidParameter", `NumberOfBytes must be 1..${MAX_DATA_KEY_BYTES}.`);
    }
    ctx.detail = `${algName} ${size}B`;
    const plaintext = randomBytes(size);
    const { blob, iv } = await this.seal(key, plaintext, req.Aad, ctx);
    const reply = encodeMessage("GenerateDataKeyResponse", {
      KeyId: key.id,
      Iv: iv,
      Plaintext: plaintext,
      CiphertextBlob: blob,
      RequestId: ctx.requestId,
      Algorithm: algName,
    });
    plaintext.fill(0);
    return reply;
  }

  private async generateRandom(
    req: KmsMessages["GenerateRandomRequest"],
    ctx: RequestContext,
  ): Promise<Buffer> {
    const size = req.Length;
    if (!Number.isInteger(size) || size < 1 || size > MAX_RANDOM_BYTES) {
      throw new KmsServiceError("InvalidParameter", `Length must be 1..${MAX_RANDOM_BYTES}.`);
    }
    ctx.detail = `${size}B`;
    return encodeMessage("GenerateRandomResponse", { Random: randomBytes(size), RequestId: ctx.requestId });
  }
}

function rsaOaepHash(algName: string): string {
  const hash = Object.hasOwn(RSA_ENCRYPT_ALGORITHMS, algName) ? RSA_ENCRYPT_ALGORITHMS[algName] : undefined;
  if (!hash) throw new KmsServiceError("InvalidParameter", `Unknown encryption algorithm "${algName}".`);
  return hash;
}

function secretOf(key: LoadedKey) {
  if (key.kind !== "aes") throw new KmsServiceError("InternalFailure", "not a symmetric key");
  return key.secretKey;
}
