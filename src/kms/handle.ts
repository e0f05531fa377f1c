/**
 * `kms://` key handles: a key held by an hsmkit KMS (or any server speaking the KMS instance
 * protocol) behind the same PrivateKeyHandle as files and tokens, so TLS, the CA and file
 * signing use it unchanged. Importing this module registers the `kms` key backend.
 *
 * Small in-memory messages (TLS handshakes, certificates) go whole as MessageType RAW, which the
 * server signs on its thread pool; streams and large messages are hashed here and sent as
 * MessageType DIGEST, so a 2 GiB file costs one small request.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { digestMessage, isBytes } from "../keys/digest.ts";
import { registerKeyBackend } from "../keys/index.ts";
import { type KeyShape, keyShape } from "../keys/public_key.ts";
import { SCHEMES, type SignatureScheme, schemesForKey } from "../keys/schemes.ts";
import {
  KeyError,
  type KeyType,
  type NamedCurve,
  type PrivateKeyHandle,
  type SignInput,
} from "../keys/types.ts";
import { KmsClient, KmsCredentialError, KmsRequestError } from "./client.ts";
import { parseKmsRef } from "./kms_ref.ts";

/** TLS signature schemes the KMS can perform, by the KMS algorithm that does each. */
const ALGORITHM_FOR: Partial<Record<SignatureScheme, string>> = {
  rsa_pss_rsae_sha256: "RSA_PSS_SHA_256",
  rsa_pss_rsae_sha384: "RSA_PSS_SHA_384",
  rsa_pss_rsae_sha512: "RSA_PSS_SHA_512",
  rsa_pkcs1_sha256: "RSA_PKCS1_SHA_256",
  rsa_pkcs1_sha384: "RSA_PKCS1_SHA_384",
  rsa_pkcs1_sha512: "RSA_PKCS1_SHA_512",
  ecdsa_secp256r1_sha256: "ECDSA_SHA_256",
  ecdsa_secp384r1_sha384: "ECDSA_SHA_384",
  ecdsa_secp521r1_sha512: "ECDSA_SHA_512",
};

/** In-memory messages up to this size are sent whole (RAW); larger ones as a digest. */
const RAW_LIMIT = 64 * 1024;

/** Maps a client failure to the KeyError kinds users see. */
function keyError(description: string, err: unknown): KeyError {
  if (err instanceof KeyError) return err;
  if (err instanceof KmsCredentialError) {
    const kind = /password|MAC/i.test(err.message) ? "bad-passphrase" : "not-found";
    return new KeyError(kind, `${description}: ${err.message}`, { cause: err });
  }
  if (err instanceof KmsRequestError && err.code === "Forbidden.KeyNotFound") {
    return new KeyError("not-found", `${description}: ${err.message}`, { cause: err });
  }
  return new KeyError("backend", `${description}: ${(err as Error).message}`, { cause: err });
}

/** A private key held by a KMS. */
export class KmsKeyHandle implements PrivateKeyHandle {
  readonly type: KeyType;
  readonly bits: number;
  readonly curve: NamedCurve | undefined;
  readonly spki: Buffer;
  readonly schemes: readonly SignatureScheme[];

  private constructor(
    private readonly client: KmsClient,
    private readonly keyId: string,
    readonly description: string,
    readonly publicKey: KeyObject,
    shape: KeyShape,
  ) {
    this.type = shape.type;
    this.curve = shape.curve;
    this.bits = shape.bits;
    this.spki = publicKey.export({ type: "spki", format: "der" });
    this.schemes = schemesForKey(this.type, this.curve).filter((s) => ALGORITHM_FOR[s] !== undefined);
  }

  /** Opens a `kms://` reference: reads the client key, fetches the public key. */
  static async open(ref: string): Promise<KmsKeyHandle> {
    const parsed = parseKmsRef(ref);
    const description = `kms://${parsed.endpoint}/${parsed.keyId}`;
    let client: KmsClient;
    try {
      client = new KmsClient({
        endpoint: parsed.endpoint,
        clientKeyFile: parsed.clientKey,
        passwordFile: parsed.passwordFile,
        ...(parsed.ca ? { caFilePath: parsed.ca } : {}),
      });
    } catch (err) {
      throw keyError(description, err);
    }
    try {
      const reply = await client.getPublicKey(parsed.keyId);
      const publicKey = createPublicKey(reply.PublicKey);
      // Refuses malformed keys (before anything reads their details) and key types other than RSA and EC.
      const shape = keyShape(publicKey, description);
      return new KmsKeyHandle(client, reply.KeyId || parsed.keyId, description, publicKey, shape);
    } catch (err) {
      client.close();
      throw keyError(description, err);
    }
  }

  private algorithm(scheme: SignatureScheme): string {
    const alg = ALGORITHM_FOR[scheme];
    if (!alg || SCHEMES[scheme].keyType !== this.type) {
      throw new KeyError("unsupported", `${this.description}: the KMS cannot sign ${scheme} with this key`);
    }
    return alg;
  }

  async sign(scheme: SignatureScheme, message: SignInput): Promise<Buffer> {
    const algorithm = this.algorithm(scheme);
    if (isBytes(message) && message.length <= RAW_LIMIT) {
      return this.request({ keyId: this.keyId, algorithm, message });
    }
    return this.signDigest(scheme, await digestMessage(SCHEMES[scheme].hash, message));
  }

  async signDigest(scheme: SignatureScheme, digest: Uint8Array): Promise<Buffer> {
    const algorithm = this.algorithm(scheme);
    if (digest.length !== SCHEMES[scheme].hashLength) {
      throw new KeyError("unsupported", `${scheme} needs a ${SCHEMES[scheme].hashLength}-byte digest`);
    }
    return this.request({ keyId: this.keyId, algorithm, digest });
  }

  private async request(params: Parameters<KmsClient["sign"]>[0]): Promise<Buffer> {
    try {
      return (await this.client.sign(params)).Signature;
    } catch (err) {
      throw keyError(this.description, err);
    }
  }

  async decrypt(_ciphertext: Uint8Array): Promise<Buffer> {
    throw new KeyError(
      "unsupported",
      `${this.description}: the KMS protocol offers RSA-OAEP decryption only, not the PKCS#1 v1.5 TLS RSA key exchange needs`,
    );
  }

  async close(): Promise<void> {
    this.client.close();
  }
}

/** Opens a `kms://` key reference (also reachable through keys/ openKey once registered). */
export function openKmsKey(ref: string): Promise<PrivateKeyHandle> {
  return KmsKeyHandle.open(ref);
}

registerKeyBackend("kms", { open: openKmsKey });
