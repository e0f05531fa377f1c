/**
 * The KMS operations, after authentication: decode the protobuf request, check the access
 * point's policy and the key's state and usage, do the cryptography, encode the reply.
 * Refusals are {@link KmsServiceError}s with the protocol's codes. The Advance operations,
 * data key pairs and secrets live in their own files; this one dispatches and holds the
 * original seven.
 */
import { randomBytes } from "node:crypto";
import { advanceDecrypt, advanceEncrypt, advanceGenerateDataKey } from "./advance_ops.ts";
import { generateDataKeyPair } from "./data_key_pair.ts";
import { KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import {
  aesGcmOpen,
  rsaOaepDecrypt,
  rsaOaepEncrypt,
  signDigest,
  signMessage,
  verifyDigest,
  verifyMessage,
} from "./key_ops.ts";
import { allowsOperation, type Operation } from "./policy.ts";
import { encodeMessage, type KmsMessages } from "./proto.ts";
import { getSecretValue } from "./secret_ops.ts";
import {
  BLOB_FORMAT,
  BLOB_HEADER,
  dataKeySize,
  decodeRequest as decode,
  type RequestContext,
  rsaOaepHash,
  sealGcm,
  secretOf,
  usableKey,
} from "./service_common.ts";
import {
  defaultAlgorithm,
  KEY_SPECS,
  type SignAlgorithmInfo,
  SYMMETRIC_ALGORITHM,
  signAlgorithm,
} from "./specs.ts";
import type { KeyRecord } from "./store.ts";

export type { RequestContext } from "./service_common.ts";

const MAX_RANDOM_BYTES = 1024;

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
      case "AdvanceEncrypt":
        return advanceEncrypt(this.instance, decode("AdvanceEncryptRequest", body), ctx);
      case "AdvanceDecrypt":
        return advanceDecrypt(this.instance, decode("AdvanceDecryptRequest", body), ctx);
      case "AdvanceGenerateDataKey":
        return advanceGenerateDataKey(this.instance, decode("AdvanceGenerateDataKeyRequest", body), ctx);
      case "GenerateDataKeyPair":
      case "GenerateDataKeyPairWithoutPlaintext":
      case "AdvanceGenerateDataKeyPair":
      case "AdvanceGenerateDataKeyPairWithoutPlaintext":
        return generateDataKeyPair(this.instance, operation, body, ctx);
      case "GetSecretValue":
        return getSecretValue(this.instance, decode("GetSecretValueRequest", body), ctx);
    }
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
    const key = await usableKey(this.instance, req.KeyId, "SIGN/VERIFY", ctx);
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
    const key = await usableKey(this.instance, req.KeyId, "SIGN/VERIFY", ctx);
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
    const key = await usableKey(this.instance, req.KeyId, undefined, ctx);
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

  private async encrypt(req: KmsMessages["EncryptRequest"], ctx: RequestContext): Promise<Buffer> {
    const key = await usableKey(this.instance, req.KeyId, "ENCRYPT/DECRYPT", ctx);
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
      const { blob, iv } = await sealGcm(this.instance, key, req.Plaintext, req.Aad, ctx);
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
    const key = await usableKey(this.instance, keyName, "ENCRYPT/DECRYPT", ctx);
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
    const key = await usableKey(this.instance, req.KeyId, "ENCRYPT/DECRYPT", ctx);
    if (KEY_SPECS[key.spec].kind !== "aes") {
      throw new KmsServiceError("UnsupportedOperation", "GenerateDataKey needs a symmetric key.");
    }
    const algName = req.Algorithm === "" ? SYMMETRIC_ALGORITHM : req.Algorithm;
    if (algName !== SYMMETRIC_ALGORITHM)
      throw new KmsServiceError("InvalidParameter", "Use Algorithm AES_GCM.");
    const size = dataKeySize(req.NumberOfBytes);
    ctx.detail = `${algName} ${size}B`;
    const plaintext = randomBytes(size);
    const { blob, iv } = await sealGcm(this.instance, key, plaintext, req.Aad, ctx);
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
