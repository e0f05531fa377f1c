/**
 * Server-side checks of an incoming request's protocol headers and signature, in the order
 * that leaks least: headers and date first, then the signature with the access point's public
 * key, and only then the access point's state and source address (so an unauthenticated caller
 * learns nothing about an access point). The signature covers content-sha256, so all of this
 * runs before the body is read (no stranger can make the server buffer one); the body is then
 * checked against that hash.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import {
  ACCESS_KEY_HEADER,
  API_VERSION,
  contentSha256,
  MAX_CLOCK_SKEW_MS,
  parseAuthorization,
  parseHttpDate,
  SIGNATURE_METHOD,
  stringToSign,
  verifyAuthorization,
} from "./auth.ts";
import { KmsServiceError } from "./errors.ts";
import { allowsSource, isOperation, type Operation } from "./policy.ts";
import type { AccessPointRecord } from "./store.ts";

/** The request facts authentication needs; header names lower-case, single values. */
export interface IncomingRequest {
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly sourceAddress: string;
}

/**
 * Where access points are looked up: only intact rows are returned (access_point_store.ts), so
 * a row edited in the database is refused here exactly as an id that does not exist.
 */
export interface AccessPointLookup {
  find(id: string): Promise<AccessPointRecord | undefined>;
}

/** Who is asking, and for what. */
export interface Authenticated {
  readonly operation: Operation;
  readonly accessPoint: AccessPointRecord;
}

// Parsing an SPKI costs about as much as verifying with it; keep the parsed keys (they never change).
const parsedKeys = new Map<string, { der: Buffer; key: KeyObject }>();

function accessPointKey(ap: AccessPointRecord): KeyObject {
  const hit = parsedKeys.get(ap.id);
  if (hit?.der.equals(ap.publicDer)) return hit.key;
  if (parsedKeys.size >= 10_000) parsedKeys.clear();
  const key = createPublicKey({ key: ap.publicDer, format: "der", type: "spki" });
  parsedKeys.set(ap.id, { der: Buffer.from(ap.publicDer), key });
  return key;
}

/** What the caller claims before it is verified (for the audit log of refusals). */
export function claimedAccessKeyId(headers: Readonly<Record<string, string>>): string {
  return headers[ACCESS_KEY_HEADER] ?? "";
}

/** Checks a body, once read, against the content-sha256 the request signed. */
export function checkBodyHash(headers: Readonly<Record<string, string>>, body: Buffer): void {
  if (headers["content-sha256"] !== contentSha256(body)) {
    throw new KmsServiceError("InvalidParam", "The Param content-sha256 does not match the body.");
  }
}

/** Authenticates a request's headers (before its body is read) or throws the {@link KmsServiceError} to send back. */
export async function authenticate(
  req: IncomingRequest,
  accessPoints: AccessPointLookup,
  now: number,
): Promise<Authenticated> {
  const h = req.headers;
  const version = h["x-kms-apiversion"];
  if (version !== API_VERSION) {
    throw new KmsServiceError("InvalidApiVersion", `The ApiVersion "${version ?? ""}" is invalid.`);
  }
  const apiName = h["x-kms-apiname"] ?? "";
  if (!isOperation(apiName))
    throw new KmsServiceError("InvalidApiName", `The ApiName "${apiName}" is invalid.`);
  const method = h["x-kms-signaturemethod"];
  if (method !== SIGNATURE_METHOD)
    throw new KmsServiceError("InvalidParam", "The Param x-kms-signaturemethod is invalid.");
  const dateText = h.date;
  const date = dateText === undefined ? undefined : parseHttpDate(dateText);
  if (!date) throw new KmsServiceError("InvalidParam", "The Param Date is invalid.");
  if (Math.abs(now - date.getTime()) > MAX_CLOCK_SKEW_MS) {
    throw new KmsServiceError(
      "RequestTimeTooSkewed",
      "Request time exceeds server time more than 15 minutes.",
    );
  }
  const accessKeyId = h[ACCESS_KEY_HEADER];
  if (!accessKeyId) {
    throw new KmsServiceError(
      "MissingParameter",
      `Parameter ${ACCESS_KEY_HEADER} does not exist in http header or body.`,
    );
  }
  const claimedHash = h["content-sha256"];
  if (claimedHash === undefined || !/^[0-9A-Fa-f]{64}$/.test(claimedHash))
    throw new KmsServiceError("MissingParameter", "The header content-sha256 is missing or malformed.");
  const signature = parseAuthorization(h.authorization);
  if (!signature)
    throw new KmsServiceError("MissingParameter", "The authorization header is missing or malformed.");
  const accessPoint = await accessPoints.find(accessKeyId);
  if (!accessPoint) throw new KmsServiceError("InvalidAccessKeyId", "The access key id does not exist.");
  const publicKey = accessPointKey(accessPoint);
  if (!verifyAuthorization(stringToSign(req.method, h), signature, publicKey)) {
    throw new KmsServiceError("SignatureDoesNotMatch", "The request signature does not match.");
  }
  if (accessPoint.state !== "Active") {
    throw new KmsServiceError("Forbidden.AccessPointRevoked", "This access point has been revoked.");
  }
  if (!allowsSource(accessPoint.policy, req.sourceAddress)) {
    throw new KmsServiceError(
      "Forbidden.SourceIpNotAllowed",
      "This access point may not be used from this address.",
    );
  }
  return { operation: apiName, accessPoint };
}
