/** Wire constants shared by the record layer and the handshakes. */

/** Record content types. */
export enum ContentType {
  change_cipher_spec = 20,
  alert = 21,
  handshake = 22,
  application_data = 23,
}

/** Handshake message types. */
export enum HandshakeType {
  hello_request = 0,
  client_hello = 1,
  server_hello = 2,
  new_session_ticket = 4,
  end_of_early_data = 5,
  encrypted_extensions = 8,
  certificate = 11,
  server_key_exchange = 12,
  certificate_request = 13,
  server_hello_done = 14,
  certificate_verify = 15,
  client_key_exchange = 16,
  finished = 20,
  key_update = 24,
  message_hash = 254,
}

/** Protocol versions hsmkit speaks, by their wire values. */
export enum ProtocolVersion {
  TLS10 = 0x0301,
  TLS11 = 0x0302,
  TLS12 = 0x0303,
  TLS13 = 0x0304,
}

/** Names as Node's `getProtocol()` reports them. */
export function versionName(v: number): string {
  switch (v) {
    case ProtocolVersion.TLS10:
      return "TLSv1";
    case ProtocolVersion.TLS11:
      return "TLSv1.1";
    case ProtocolVersion.TLS12:
      return "TLSv1.2";
    case ProtocolVersion.TLS13:
      return "TLSv1.3";
    default:
      return `0x${v.toString(16).padStart(4, "0")}`;
  }
}

const VERSION_NAMES: Readonly<Record<string, ProtocolVersion>> = {
  "1.1": ProtocolVersion.TLS11,
  "1.2": ProtocolVersion.TLS12,
  "1.3": ProtocolVersion.TLS13,
};

/** Parses "1.1" | "1.2" | "1.3" (as in --tls-min) into a wire version; undefined for anything else. */
export function parseVersion(text: string): ProtocolVersion | undefined {
  return Object.hasOwn(VERSION_NAMES, text) ? VERSION_NAMES[text] : undefined;
}

/** Extension code points. */
export enum ExtensionType {
  server_name = 0,
  supported_groups = 10,
  ec_point_formats = 11,
  signature_algorithms = 13,
  alpn = 16,
  encrypt_then_mac = 22,
  extended_master_secret = 23,
  session_ticket = 35,
  pre_shared_key = 41,
  supported_versions = 43,
  cookie = 44,
  psk_key_exchange_modes = 45,
  certificate_authorities = 47,
  signature_algorithms_cert = 50,
  key_share = 51,
  renegotiation_info = 0xff01,
}

/** Plaintext fragment limit (2^14), RFC 5246 §6.2.1. */
export const MAX_PLAINTEXT = 16384;
/** Ciphertext fragment limit for TLS 1.2 and below (2^14 + 2048). */
export const MAX_CIPHERTEXT = MAX_PLAINTEXT + 2048;
/** The largest handshake message we accept (certificate chains included). */
export const MAX_HANDSHAKE_MESSAGE = 256 * 1024;

/** The signalling cipher suite value for secure renegotiation (RFC 5746). */
export const TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;
/** The fallback signalling value (RFC 7507). */
export const TLS_FALLBACK_SCSV = 0x5600;

/** Last 8 bytes of ServerHello.random when a TLS 1.3 server negotiates 1.2 (RFC 8446 §4.1.3). */
export const DOWNGRADE_TLS12 = Buffer.from("444f574e47524401", "hex");
/** Last 8 bytes of ServerHello.random when a 1.2+ server negotiates 1.1 or below. */
export const DOWNGRADE_TLS11 = Buffer.from("444f574e47524400", "hex");
