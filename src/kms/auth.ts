/**
 * Request authentication of the KMS instance protocol: every request carries an RSA
 * PKCS#1 v1.5 SHA-256 signature, made with the access point's private key, over a canonical
 * string built from the method, the body hash, the content type, the date and the sorted
 * `x-kms-*` headers. Client and server build that string with the same function.
 */
import { createHash, type KeyObject, sign, verify } from "node:crypto";

/** The protocol version the instance SDKs send in `x-kms-apiversion`. */
export const API_VERSION = "dkms-gcs-0.2";
/** The only request signature method defined by the protocol. */
export const SIGNATURE_METHOD = "RSA_PKCS1_SHA_256";
/** The access key id header, spelled with three c's exactly as the SDKs send it. */
export const ACCESS_KEY_HEADER = "x-kms-acccesskeyid";
/** The body media type of requests and replies. */
export const PROTOBUF_CONTENT_TYPE = "application/x-protobuf";
/** How far a request's `date` may be from the server's clock. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

/** Upper-case hex SHA-256 of the body, the value of the `content-sha256` header. */
export function contentSha256(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("hex").toUpperCase();
}

/** The headers that enter the string to sign; names lower-case. */
export interface SignedHeaders {
  readonly "content-sha256"?: string;
  readonly "content-type"?: string;
  readonly date?: string;
  readonly [name: string]: string | undefined;
}

/**
 * The canonical string: `METHOD\n<content-sha256>\n<content-type>\n<date>\n`, then every
 * `x-kms-*` header sorted by name as `name:value\n` (value trimmed), then the resource `/`.
 */
export function stringToSign(method: string, headers: SignedHeaders): string {
  const kmsHeaders = Object.keys(headers)
    .filter((name) => name.startsWith("x-kms-") && headers[name] !== undefined)
    .sort()
    .map((name) => `${name}:${(headers[name] ?? "").trim()}\n`)
    .join("");
  return `${method}\n${headers["content-sha256"] ?? ""}\n${headers["content-type"] ?? ""}\n${headers.date ?? ""}\n${kmsHeaders}/`;
}

/** The `authorization` header value: `Bearer base64(RSASSA-PKCS1-v1_5-SHA256(string))`. */
export function authorizationFor(canonical: string, accessPointKey: KeyObject): string {
  return `Bearer ${sign("sha256", Buffer.from(canonical, "utf8"), accessPointKey).toString("base64")}`;
}

/**
 * The signature bytes from an `authorization` header (`Bearer X` or `TOKEN X`), or undefined
 * when the header is not of that form or X is not canonical base64.
 */
export function parseAuthorization(header: string | undefined): Buffer | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:Bearer|TOKEN) ([A-Za-z0-9+/]+={0,2})$/.exec(header.trim());
  if (!match?.[1]) return undefined;
  const bytes = Buffer.from(match[1], "base64");
  // Reject anything that does not round-trip: junk after padding, wrong padding.
  if (bytes.toString("base64") !== match[1]) return undefined;
  return bytes;
}

/** True when `signature` is the access point's signature over `canonical`. */
export function verifyAuthorization(
  canonical: string,
  signature: Buffer,
  accessPointPublicKey: KeyObject,
): boolean {
  try {
    return verify("sha256", Buffer.from(canonical, "utf8"), accessPointPublicKey, signature);
  } catch {
    return false;
  }
}

/** An RFC 1123 date in GMT, e.g. `Tue, 07 Jan 2025 10:11:12 GMT` (what the SDKs send). */
export function formatHttpDate(when: Date): string {
  return when.toUTCString();
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const RFC1123 =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;

/** Parses an RFC 1123 GMT date strictly; undefined for anything else (or an impossible date). */
export function parseHttpDate(text: string): Date | undefined {
  const m = RFC1123.exec(text);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2] ?? "");
  if (month < 0) return undefined;
  const [day, year, hour, minute, second] = [m[1], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const date = new Date(Date.UTC(year, month, day, hour, minute, second));
  // Date.UTC rolls 31 Feb over into March; such a date was never valid.
  if (date.getUTCDate() !== day || date.getUTCMonth() !== month || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  return date;
}
