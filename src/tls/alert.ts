/**
 * TLS alerts (RFC 8446 §6, RFC 5246 §7.2) and the error type that carries one.
 * Every failure inside the stack is a TlsError naming the alert to send, so no peer
 * input can end a connection without telling the peer why.
 */
import { HsmkitError, type OptionText } from "../errors.ts";
import { versionName } from "./constants.ts";

/** Alert description code points. */
export enum AlertDescription {
  close_notify = 0,
  unexpected_message = 10,
  bad_record_mac = 20,
  record_overflow = 22,
  handshake_failure = 40,
  bad_certificate = 42,
  unsupported_certificate = 43,
  certificate_revoked = 44,
  certificate_expired = 45,
  certificate_unknown = 46,
  illegal_parameter = 47,
  unknown_ca = 48,
  access_denied = 49,
  decode_error = 50,
  decrypt_error = 51,
  protocol_version = 70,
  insufficient_security = 71,
  internal_error = 80,
  inappropriate_fallback = 86,
  user_canceled = 90,
  no_renegotiation = 100,
  missing_extension = 109,
  unsupported_extension = 110,
  unrecognized_name = 112,
  bad_certificate_status_response = 113,
  unknown_psk_identity = 115,
  certificate_required = 116,
  no_application_protocol = 120,
}

/** Alert levels. */
export enum AlertLevel {
  warning = 1,
  fatal = 2,
}

/** The name of an alert code, or its number when unknown. */
export function alertName(code: number): string {
  return AlertDescription[code] ?? `alert ${code}`;
}

/** What kind of failure a TlsError is, for callers that map failures to exit codes. */
export type TlsErrorKind =
  | "protocol" // we detected a protocol violation and sent `alert`
  | "peer-alert" // the peer sent us a fatal alert (`alert` is theirs)
  | "certificate" // the peer's certificate failed validation
  | "closed" // the transport closed or timed out mid-handshake
  | "config" // our own options are unusable
  | "key"; // the key handle failed (token, PIN, KMS)

/** A TLS failure, carrying the alert that was (or will be) sent and a one-line reason. */
export class TlsError extends HsmkitError {
  /** The alert this failure sends (or, for "peer-alert", received). */
  readonly alert: AlertDescription;
  /** Broad category of the failure. */
  readonly kind: TlsErrorKind;

  constructor(
    alert: AlertDescription,
    message: string | OptionText,
    kind: TlsErrorKind = "protocol",
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TlsError";
    this.alert = alert;
    this.kind = kind;
  }
}

/** Throws the TlsError for a protocol failure: the alert to send and a one-line reason. */
export function fail(alert: AlertDescription, message: string): never {
  throw new TlsError(alert, message);
}

/**
 * The error for a fatal alert the peer sent. With `missingCertificate` (certificate_required, or
 * a failure where the server was known to want a client certificate we did not have), the
 * message says which options give one.
 */
export function peerAlertError(
  alert: AlertDescription,
  peer: "client" | "server",
  missingCertificate: boolean,
): TlsError {
  const hint: OptionText = missingCertificate
    ? (name) =>
        `: the server requires a client certificate and none was given (use ${name("cert")} and ${name("key")})`
    : () => "";
  return new TlsError(alert, (name) => `${peer} sent alert ${alertName(alert)}${hint(name)}`, "peer-alert");
}

/**
 * The server refused our ClientHello with a fatal alert (handshake_failure, protocol_version,
 * insufficient_security) before choosing anything: most often nothing we offered suits it. The
 * error names what was offered, so callers can tell the user which option would help.
 */
export class NegotiationError extends TlsError {
  /** The versions offered, e.g. "TLS 1.2 to TLS 1.3". */
  readonly offeredVersions: string;
  /** The cipher suites offered, by IANA name. */
  readonly offeredSuites: readonly string[];

  constructor(alert: AlertDescription, offeredVersions: string, offeredSuites: readonly string[]) {
    super(
      alert,
      `server sent alert ${alertName(alert)} in answer to the ClientHello: no cipher suite or TLS version ` +
        `in common (offered ${offeredVersions} with ${offeredSuites.join(", ")}); set the \`ciphers\` option ` +
        "to a suite the server has (RSA key-exchange suites are offered only when named) or " +
        "`minVersion`/`maxVersion` to a version it speaks",
      "peer-alert",
    );
    this.name = "NegotiationError";
    this.offeredVersions = offeredVersions;
    this.offeredSuites = offeredSuites;
  }

  /**
   * The error for a fatal alert answering our ClientHello: a NegotiationError for the alerts a
   * server refuses an offer with (RFC 8446 §4.1.1, RFC 5246 §7.4.1.3), undefined for others.
   */
  static ifRefusal(
    alert: AlertDescription,
    minVersion: number,
    maxVersion: number,
    suites: readonly { name: string }[],
  ): NegotiationError | undefined {
    if (!REFUSALS.has(alert)) return undefined;
    const name = (v: number) => versionName(v).replace("TLSv", "TLS ");
    const versions =
      minVersion === maxVersion ? name(maxVersion) : `${name(minVersion)} to ${name(maxVersion)}`;
    return new NegotiationError(
      alert,
      versions,
      suites.map((s) => s.name),
    );
  }
}

/** The alerts a server answers a ClientHello with when it shares no suite or version with it. */
const REFUSALS = new Set([
  AlertDescription.handshake_failure,
  AlertDescription.protocol_version,
  AlertDescription.insufficient_security,
]);
