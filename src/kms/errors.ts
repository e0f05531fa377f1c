/**
 * The error vocabulary of the KMS instance protocol: each code has one HTTP status, and both
 * the server (to reply) and the client SDK (to raise typed errors) use this one table.
 */

/** Error codes the server sends in the protobuf `Error` reply. */
export const KMS_ERROR_STATUS = {
  InvalidApiName: 400,
  InvalidApiVersion: 400,
  InvalidParam: 400,
  InvalidParameter: 400,
  MissingParameter: 400,
  RequestTimeTooSkewed: 400,
  UnsupportedOperation: 400,
  InvalidAccessKeyId: 401,
  SignatureDoesNotMatch: 401,
  "Forbidden.NoPermission": 403,
  "Forbidden.AccessPointRevoked": 403,
  "Forbidden.SourceIpNotAllowed": 403,
  "Forbidden.KeyNotFound": 404,
  "Forbidden.ResourceNotFound": 404,
  IncorrectKeyState: 409,
  InvalidCiphertext: 400,
  RequestEntityTooLarge: 413,
  "Rejected.Throttling": 429,
  InternalFailure: 500,
  ServiceUnavailableTemporary: 503,
} as const satisfies Record<string, number>;

/** A protocol error code. */
export type KmsErrorCode = keyof typeof KMS_ERROR_STATUS;

/** Codes a client may retry after a pause (the same set the instance SDKs retry on). */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  "Rejected.Throttling",
  "ServiceUnavailableTemporary",
  "InternalFailure",
]);

/**
 * A refusal decided by the server: becomes an `Error` reply with the code's HTTP status.
 * The message is sent to the client, so it never contains key material or secrets.
 */
export class KmsServiceError extends Error {
  /** The protocol error code. */
  readonly code: KmsErrorCode;
  /** The HTTP status that goes with the code. */
  readonly status: number;

  constructor(code: KmsErrorCode, message: string) {
    super(message);
    this.name = "KmsServiceError";
    this.code = code;
    this.status = KMS_ERROR_STATUS[code];
  }
}
