/**
 * The KMS instance protocol's protobuf messages. Field names and numbers are the contract
 * (docs/architecture.md): they are what the existing instance SDKs put on the wire, so they are
 * spelled here exactly once, as .proto text, and every encoder/decoder comes from it.
 */
import protobuf from "protobufjs";

/** The message definitions, proto3. Shipped in code so no file lookup can go wrong at run time. */
export const KMS_PROTO = `
syntax = "proto3";
message SignRequest { string KeyId = 1; bytes Digest = 2; string Algorithm = 3; bytes Message = 4; string MessageType = 5; }
message SignResponse { string KeyId = 1; bytes Signature = 2; string RequestId = 3; string Algorithm = 4; string MessageType = 5; }
message VerifyRequest { string KeyId = 1; bytes Digest = 2; bytes Signature = 3; string Algorithm = 4; bytes Message = 5; string MessageType = 6; }
message VerifyResponse { string KeyId = 1; bool Value = 2; string RequestId = 3; string Algorithm = 4; string MessageType = 5; }
message GetPublicKeyRequest { string KeyId = 1; }
message GetPublicKeyResponse { string KeyId = 1; string PublicKey = 2; string RequestId = 3; }
message EncryptRequest { string KeyId = 1; bytes Plaintext = 2; string Algorithm = 3; bytes Aad = 4; bytes Iv = 5; string PaddingMode = 6; }
message EncryptResponse { string KeyId = 1; bytes CiphertextBlob = 2; bytes Iv = 3; string RequestId = 4; string Algorithm = 5; string PaddingMode = 6; }
message DecryptRequest { bytes CiphertextBlob = 1; string KeyId = 2; string Algorithm = 3; bytes Aad = 4; bytes Iv = 5; string PaddingMode = 6; }
message DecryptResponse { string KeyId = 1; bytes Plaintext = 2; string RequestId = 3; string Algorithm = 4; string PaddingMode = 5; }
message GenerateDataKeyRequest { string KeyId = 1; string Algorithm = 2; int32 NumberOfBytes = 3; bytes Aad = 4; }
message GenerateDataKeyResponse { string KeyId = 1; bytes Iv = 2; bytes Plaintext = 3; bytes CiphertextBlob = 4; string RequestId = 5; string Algorithm = 6; }
message GenerateRandomRequest { int32 Length = 1; }
message GenerateRandomResponse { bytes Random = 1; string RequestId = 2; }
message Error { int32 StatusCode = 1; string ErrorCode = 2; string ErrorMessage = 3; string RequestId = 4; }
`;

/** Sign a message (MessageType RAW) or a precomputed digest (MessageType DIGEST, in `Digest` or `Message`). */
export interface SignRequest {
  KeyId: string;
  Digest: Buffer;
  Algorithm: string;
  Message: Buffer;
  MessageType: string;
}
/** Reply to Sign. */
export interface SignResponse {
  KeyId: string;
  Signature: Buffer;
  RequestId: string;
  Algorithm: string;
  MessageType: string;
}
/** Verify a signature over a message or digest. */
export interface VerifyRequest {
  KeyId: string;
  Digest: Buffer;
  Signature: Buffer;
  Algorithm: string;
  Message: Buffer;
  MessageType: string;
}
/** Reply to Verify: `Value` is the verdict. */
export interface VerifyResponse {
  KeyId: string;
  Value: boolean;
  RequestId: string;
  Algorithm: string;
  MessageType: string;
}
/** Ask for a key's public half. */
export interface GetPublicKeyRequest {
  KeyId: string;
}
/** The public key as SPKI PEM. */
export interface GetPublicKeyResponse {
  KeyId: string;
  PublicKey: string;
  RequestId: string;
}
/** Encrypt with a symmetric (AES_GCM) or RSA (RSAES_OAEP_*) key. */
export interface EncryptRequest {
  KeyId: string;
  Plaintext: Buffer;
  Algorithm: string;
  Aad: Buffer;
  Iv: Buffer;
  PaddingMode: string;
}
/** Reply to Encrypt. */
export interface EncryptResponse {
  KeyId: string;
  CiphertextBlob: Buffer;
  Iv: Buffer;
  RequestId: string;
  Algorithm: string;
  PaddingMode: string;
}
/** Decrypt a blob produced by Encrypt or GenerateDataKey. */
export interface DecryptRequest {
  CiphertextBlob: Buffer;
  KeyId: string;
  Algorithm: string;
  Aad: Buffer;
  Iv: Buffer;
  PaddingMode: string;
}
/** Reply to Decrypt. */
export interface DecryptResponse {
  KeyId: string;
  Plaintext: Buffer;
  RequestId: string;
  Algorithm: string;
  PaddingMode: string;
}
/** Ask for a fresh data key, returned in the clear and wrapped under a KMS key. */
export interface GenerateDataKeyRequest {
  KeyId: string;
  Algorithm: string;
  NumberOfBytes: number;
  Aad: Buffer;
}
/** Reply to GenerateDataKey. */
export interface GenerateDataKeyResponse {
  KeyId: string;
  Iv: Buffer;
  Plaintext: Buffer;
  CiphertextBlob: Buffer;
  RequestId: string;
  Algorithm: string;
}
/** Ask for random bytes. */
export interface GenerateRandomRequest {
  Length: number;
}
/** Random bytes. */
export interface GenerateRandomResponse {
  Random: Buffer;
  RequestId: string;
}
/** The body of every 4xx/5xx reply. */
export interface ErrorMessage {
  StatusCode: number;
  ErrorCode: string;
  ErrorMessage: string;
  RequestId: string;
}

/** Every message by its .proto name. */
export interface KmsMessages {
  SignRequest: SignRequest;
  SignResponse: SignResponse;
  VerifyRequest: VerifyRequest;
  VerifyResponse: VerifyResponse;
  GetPublicKeyRequest: GetPublicKeyRequest;
  GetPublicKeyResponse: GetPublicKeyResponse;
  EncryptRequest: EncryptRequest;
  EncryptResponse: EncryptResponse;
  DecryptRequest: DecryptRequest;
  DecryptResponse: DecryptResponse;
  GenerateDataKeyRequest: GenerateDataKeyRequest;
  GenerateDataKeyResponse: GenerateDataKeyResponse;
  GenerateRandomRequest: GenerateRandomRequest;
  GenerateRandomResponse: GenerateRandomResponse;
  Error: ErrorMessage;
}

/** A message name. */
export type KmsMessageName = keyof KmsMessages;

/** Raised when bytes are not a valid encoding of the expected message. */
export class ProtoDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtoDecodeError";
  }
}

const root = protobuf.parse(KMS_PROTO, { keepCase: true }).root;

function lookup(name: KmsMessageName): protobuf.Type {
  return root.lookupType(name);
}

/** Encodes a message; fields left out take their proto3 defaults (and are not sent). */
export function encodeMessage<N extends KmsMessageName>(name: N, value: Partial<KmsMessages[N]>): Buffer {
  const type = lookup(name);
  const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes a message strictly: malformed, truncated or wrongly-typed input raises
 * {@link ProtoDecodeError}; every field of the result is present (proto3 defaults), bytes
 * fields are Buffers.
 */
export function decodeMessage<N extends KmsMessageName>(name: N, bytes: Uint8Array): KmsMessages[N] {
  const type = lookup(name);
  let decoded: protobuf.Message;
  try {
    decoded = type.decode(bytes);
  } catch (err) {
    throw new ProtoDecodeError(`malformed ${name}: ${(err as Error).message}`);
  }
  const plain = type.toObject(decoded, { defaults: true, longs: Number }) as Record<string, unknown>;
  for (const field of type.fieldsArray) {
    const v = plain[field.name];
    if (field.type === "bytes") {
      plain[field.name] =
        v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : Buffer.alloc(0);
    }
  }
  return plain as unknown as KmsMessages[N];
}
