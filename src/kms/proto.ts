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
message AdvanceEncryptRequest { string KeyId = 1; bytes Plaintext = 2; string Algorithm = 3; bytes Aad = 4; bytes Iv = 5; string PaddingMode = 6; }
message AdvanceEncryptResponse { string KeyId = 1; bytes CiphertextBlob = 2; bytes Iv = 3; string RequestId = 4; string Algorithm = 5; string PaddingMode = 6; string KeyVersionId = 7; }
message AdvanceDecryptRequest { bytes CiphertextBlob = 1; string KeyId = 2; string Algorithm = 3; bytes Aad = 4; bytes Iv = 5; string PaddingMode = 6; }
message AdvanceDecryptResponse { string KeyId = 1; bytes Plaintext = 2; string RequestId = 3; string Algorithm = 4; string PaddingMode = 5; string KeyVersionId = 6; }
message AdvanceGenerateDataKeyRequest { string KeyId = 1; int32 NumberOfBytes = 2; bytes Aad = 3; }
message AdvanceGenerateDataKeyResponse { string KeyId = 1; bytes Iv = 2; bytes Plaintext = 3; bytes CiphertextBlob = 4; string RequestId = 5; string Algorithm = 6; string KeyVersionId = 7; }
message GenerateDataKeyPairRequest { string KeyId = 1; string Algorithm = 2; string KeyPairSpec = 3; string KeyFormat = 4; bytes Aad = 5; }
message GenerateDataKeyPairResponse { string KeyId = 1; bytes Iv = 2; string KeyPairSpec = 3; bytes PrivateKeyPlaintext = 4; bytes PrivateKeyCiphertextBlob = 5; bytes PublicKey = 6; string RequestId = 7; string Algorithm = 8; }
message GenerateDataKeyPairWithoutPlaintextRequest { string KeyId = 1; string Algorithm = 2; string KeyPairSpec = 3; string KeyFormat = 4; bytes Aad = 5; }
message GenerateDataKeyPairWithoutPlaintextResponse { string KeyId = 1; bytes Iv = 2; string KeyPairSpec = 3; bytes PrivateKeyCiphertextBlob = 4; bytes PublicKey = 5; string RequestId = 6; string Algorithm = 7; }
message AdvanceGenerateDataKeyPairRequest { string KeyId = 1; string KeyPairSpec = 2; string KeyFormat = 3; bytes Aad = 4; }
message AdvanceGenerateDataKeyPairResponse { string KeyId = 1; bytes Iv = 2; string KeyPairSpec = 3; bytes PrivateKeyPlaintext = 4; bytes PrivateKeyCiphertextBlob = 5; bytes PublicKey = 6; string RequestId = 7; string Algorithm = 8; string KeyVersionId = 9; }
message AdvanceGenerateDataKeyPairWithoutPlaintextRequest { string KeyId = 1; string KeyPairSpec = 2; string KeyFormat = 3; bytes Aad = 4; }
message AdvanceGenerateDataKeyPairWithoutPlaintextResponse { string KeyId = 1; bytes Iv = 2; string KeyPairSpec = 3; bytes PrivateKeyCiphertextBlob = 4; bytes PublicKey = 5; string RequestId = 6; string Algorithm = 7; string KeyVersionId = 8; }
message GetSecretValueRequest { string SecretName = 1; string VersionStage = 2; string VersionId = 3; bool FetchExtendedConfig = 4; }
message GetSecretValueResponse { string SecretName = 1; string SecretType = 2; string SecretData = 3; string SecretDataType = 4; repeated string VersionStages = 5; string VersionId = 6; string CreateTime = 7; string RequestId = 8; string LastRotationDate = 9; string NextRotationDate = 10; string ExtendedConfig = 11; string AutomaticRotation = 12; string RotationInterval = 13; }
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
/** Encrypt into a blob that names its key and version (AdvanceDecrypt needs no KeyId). */
export type AdvanceEncryptRequest = EncryptRequest;
/** Reply to AdvanceEncrypt: the version that sealed it is named too. */
export interface AdvanceEncryptResponse extends EncryptResponse {
  KeyVersionId: string;
}
/** Decrypt an AdvanceEncrypt / AdvanceGenerateDataKey blob; KeyId, if given, must be the blob's key. */
export type AdvanceDecryptRequest = DecryptRequest;
/** Reply to AdvanceDecrypt. */
export interface AdvanceDecryptResponse extends DecryptResponse {
  KeyVersionId: string;
}
/** A data key wrapped in an Advance blob (always AES_GCM). */
export interface AdvanceGenerateDataKeyRequest {
  KeyId: string;
  NumberOfBytes: number;
  Aad: Buffer;
}
/** Reply to AdvanceGenerateDataKey. */
export interface AdvanceGenerateDataKeyResponse extends GenerateDataKeyResponse {
  KeyVersionId: string;
}
/** A fresh RSA or EC key pair whose private key comes back wrapped under a KMS key. */
export interface GenerateDataKeyPairRequest {
  KeyId: string;
  Algorithm: string;
  KeyPairSpec: string;
  /** PEM (default) or DER, for the private and the public key. */
  KeyFormat: string;
  Aad: Buffer;
}
/** The pair without the plaintext private key. */
export interface GenerateDataKeyPairWithoutPlaintextResponse {
  KeyId: string;
  Iv: Buffer;
  KeyPairSpec: string;
  PrivateKeyCiphertextBlob: Buffer;
  PublicKey: Buffer;
  RequestId: string;
  Algorithm: string;
}
/** Reply to GenerateDataKeyPair: the private key in the clear and wrapped. */
export interface GenerateDataKeyPairResponse extends GenerateDataKeyPairWithoutPlaintextResponse {
  PrivateKeyPlaintext: Buffer;
}
/** The same request without the plaintext in the reply. */
export type GenerateDataKeyPairWithoutPlaintextRequest = GenerateDataKeyPairRequest;
/** A key pair whose private key is wrapped in an Advance blob (always AES_GCM). */
export type AdvanceGenerateDataKeyPairRequest = Omit<GenerateDataKeyPairRequest, "Algorithm">;
/** Reply to AdvanceGenerateDataKeyPair. */
export interface AdvanceGenerateDataKeyPairResponse extends GenerateDataKeyPairResponse {
  KeyVersionId: string;
}
/** The Advance form without the plaintext in the reply. */
export type AdvanceGenerateDataKeyPairWithoutPlaintextRequest = AdvanceGenerateDataKeyPairRequest;
/** Reply to AdvanceGenerateDataKeyPairWithoutPlaintext. */
export interface AdvanceGenerateDataKeyPairWithoutPlaintextResponse
  extends GenerateDataKeyPairWithoutPlaintextResponse {
  KeyVersionId: string;
}
/** Read a secret's value: by VersionId, else by VersionStage (default ACSCurrent). */
export interface GetSecretValueRequest {
  SecretName: string;
  VersionStage: string;
  VersionId: string;
  FetchExtendedConfig: boolean;
}
/** A secret's value and version facts; rotation fields stay empty (no automatic rotation). */
export interface GetSecretValueResponse {
  SecretName: string;
  SecretType: string;
  /** The value: text as is, binary values base64 (SecretDataType says which). */
  SecretData: string;
  SecretDataType: string;
  VersionStages: string[];
  VersionId: string;
  CreateTime: string;
  RequestId: string;
  LastRotationDate: string;
  NextRotationDate: string;
  ExtendedConfig: string;
  AutomaticRotation: string;
  RotationInterval: string;
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
  AdvanceEncryptRequest: AdvanceEncryptRequest;
  AdvanceEncryptResponse: AdvanceEncryptResponse;
  AdvanceDecryptRequest: AdvanceDecryptRequest;
  AdvanceDecryptResponse: AdvanceDecryptResponse;
  AdvanceGenerateDataKeyRequest: AdvanceGenerateDataKeyRequest;
  AdvanceGenerateDataKeyResponse: AdvanceGenerateDataKeyResponse;
  GenerateDataKeyPairRequest: GenerateDataKeyPairRequest;
  GenerateDataKeyPairResponse: GenerateDataKeyPairResponse;
  GenerateDataKeyPairWithoutPlaintextRequest: GenerateDataKeyPairWithoutPlaintextRequest;
  GenerateDataKeyPairWithoutPlaintextResponse: GenerateDataKeyPairWithoutPlaintextResponse;
  AdvanceGenerateDataKeyPairRequest: AdvanceGenerateDataKeyPairRequest;
  AdvanceGenerateDataKeyPairResponse: AdvanceGenerateDataKeyPairResponse;
  AdvanceGenerateDataKeyPairWithoutPlaintextRequest: AdvanceGenerateDataKeyPairWithoutPlaintextRequest;
  AdvanceGenerateDataKeyPairWithoutPlaintextResponse: AdvanceGenerateDataKeyPairWithoutPlaintextResponse;
  GetSecretValueRequest: GetSecretValueRequest;
  GetSecretValueResponse: GetSecretValueResponse;
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
  const plain = type.toObject(decoded, { defaults: true, arrays: true, longs: Number }) as Record<
    string,
    unknown
  >;
  for (const field of type.fieldsArray) {
    const v = plain[field.name];
    if (field.type === "bytes") {
      plain[field.name] =
        v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : Buffer.alloc(0);
    }
  }
  return plain as unknown as KmsMessages[N];
}
