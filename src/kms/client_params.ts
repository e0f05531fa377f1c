/** Parameters of the KmsClient methods (client.ts), one interface per operation family. */
/** Sign parameters. Give `message` (RAW) or `digest` (MessageType DIGEST). */
export interface SignParams {
  readonly keyId: string;
  readonly algorithm: string;
  readonly message?: Uint8Array;
  readonly digest?: Uint8Array;
}
/** Verify parameters. */
export interface VerifyParams extends SignParams {
  readonly signature: Uint8Array;
}
/** Encrypt parameters. */
export interface EncryptParams {
  readonly keyId: string;
  readonly plaintext: Uint8Array;
  readonly algorithm?: string;
  readonly aad?: Uint8Array;
  /**
   * Sent as the request's Iv. hsmkit's KMS refuses any IV here (InvalidParameter) and
   * returns a fresh one; kept for servers of the protocol that still accept it.
   */
  readonly iv?: Uint8Array;
}
/** Decrypt parameters. */
export interface DecryptParams {
  readonly ciphertextBlob: Uint8Array;
  readonly keyId?: string;
  readonly algorithm?: string;
  readonly aad?: Uint8Array;
  readonly iv?: Uint8Array;
}
/** GenerateDataKey parameters. */
export interface GenerateDataKeyParams {
  readonly keyId: string;
  readonly numberOfBytes?: number;
  readonly algorithm?: string;
  readonly aad?: Uint8Array;
}
/** Data key pair parameters (every form; the Advance forms ignore `algorithm`). */
export interface DataKeyPairParams {
  /** The AES key that wraps the private key. */
  readonly keyId: string;
  /** RSA_2048, RSA_3072, EC_P256 or EC_P384. */
  readonly keyPairSpec: string;
  /** PEM (default) or DER. */
  readonly keyFormat?: string;
  readonly algorithm?: string;
  readonly aad?: Uint8Array;
}
/** GetSecretValue parameters. */
export interface GetSecretValueParams {
  readonly secretName: string;
  /** Default ACSCurrent. */
  readonly versionStage?: string;
  readonly versionId?: string;
  readonly fetchExtendedConfig?: boolean;
}
