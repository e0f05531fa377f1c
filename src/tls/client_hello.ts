/**
 * The ClientHello as a server reads it (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2): the message
 * decoded once, every extension the server acts on parsed and checked, and the version
 * choice that decides which server handshake runs. Shared by the TLS 1.2 and 1.3 servers.
 */
import { AlertDescription, fail } from "./alert.ts";
import {
  ExtensionType,
  ProtocolVersion,
  TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
  TLS_FALLBACK_SCSV,
  versionName,
} from "./constants.ts";
import {
  decodeAlpn,
  decodePointFormats,
  decodeRenegotiationInfo,
  decodeServerName,
  decodeU16ListExtension,
  expectEmpty,
} from "./extensions.ts";
import type { HandshakeMessage } from "./handshake_io.ts";
import { decodeClientHello, type Extension } from "./messages.ts";
import { decodeClientSupportedVersions } from "./messages13.ts";

/** What the client offered, parsed. Absent extensions are `undefined`, never an empty default. */
export interface ClientHelloInfo {
  /** The message as received (its `raw` bytes start the transcript). */
  message: HandshakeMessage;
  /** ClientHello.client_version (legacy_version in TLS 1.3). */
  legacyVersion: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuites: number[];
  /** Every extension, in order, for handshakes that need more than is parsed here. */
  extensions: Extension[];
  /** server_name host_name, if sent. */
  serverName: string | undefined;
  /** signature_algorithms code points. */
  signatureSchemes: number[] | undefined;
  /** supported_groups code points. */
  groups: number[] | undefined;
  /** ec_point_formats. */
  pointFormats: number[] | undefined;
  /** extended_master_secret offered (RFC 7627). */
  extendedMasterSecret: boolean;
  /** encrypt_then_mac offered (RFC 7366). */
  encryptThenMac: boolean;
  /** Secure renegotiation signalled, by SCSV or an empty renegotiation_info (RFC 5746). */
  secureRenegotiation: boolean;
  /** ALPN protocols offered. */
  alpn: string[] | undefined;
  /** session_ticket: undefined when absent, empty when the client wants a ticket, else its ticket. */
  sessionTicket: Buffer | undefined;
  /** supported_versions (TLS 1.3 clients). */
  supportedVersions: number[] | undefined;
  /** TLS_FALLBACK_SCSV present (RFC 7507). */
  fallbackScsv: boolean;
}

/** Decodes and checks a ClientHello; malformed input ends in decode_error or illegal_parameter. */
export function parseClientHello(message: HandshakeMessage): ClientHelloInfo {
  const ch = decodeClientHello(message.body);
  if (!ch.compressionMethods.includes(0))
    fail(AlertDescription.illegal_parameter, "client offers no null compression method");
  if (ch.cipherSuites.length === 0) fail(AlertDescription.decode_error, "client offers no cipher suites");
  const info: ClientHelloInfo = {
    message,
    legacyVersion: ch.version,
    random: ch.random,
    sessionId: ch.sessionId,
    cipherSuites: ch.cipherSuites,
    extensions: ch.extensions,
    serverName: undefined,
    signatureSchemes: undefined,
    groups: undefined,
    pointFormats: undefined,
    extendedMasterSecret: false,
    encryptThenMac: false,
    secureRenegotiation: ch.cipherSuites.includes(TLS_EMPTY_RENEGOTIATION_INFO_SCSV),
    alpn: undefined,
    sessionTicket: undefined,
    supportedVersions: undefined,
    fallbackScsv: ch.cipherSuites.includes(TLS_FALLBACK_SCSV),
  };
  for (const e of ch.extensions) readExtension(info, e);
  return info;
}

function readExtension(info: ClientHelloInfo, e: Extension): void {
  switch (e.type) {
    case ExtensionType.server_name:
      info.serverName = decodeServerName(e.data);
      break;
    case ExtensionType.signature_algorithms:
      info.signatureSchemes = decodeU16ListExtension(e.data, "signature_algorithms");
      break;
    case ExtensionType.supported_groups:
      info.groups = decodeU16ListExtension(e.data, "supported_groups");
      break;
    case ExtensionType.ec_point_formats:
      info.pointFormats = decodePointFormats(e.data);
      break;
    case ExtensionType.extended_master_secret:
      expectEmpty(e, "extended_master_secret");
      info.extendedMasterSecret = true;
      break;
    case ExtensionType.encrypt_then_mac:
      expectEmpty(e, "encrypt_then_mac");
      info.encryptThenMac = true;
      break;
    case ExtensionType.renegotiation_info:
      // RFC 5746 §3.6: on an initial handshake the renegotiated_connection field is empty.
      if (decodeRenegotiationInfo(e.data).length !== 0)
        fail(AlertDescription.handshake_failure, "renegotiation_info is not empty on an initial handshake");
      info.secureRenegotiation = true;
      break;
    case ExtensionType.alpn: {
      const list = decodeAlpn(e.data);
      if (list.length === 0 || list.some((p) => p.length === 0))
        fail(AlertDescription.decode_error, "empty ALPN protocol list or name");
      info.alpn = list;
      break;
    }
    case ExtensionType.session_ticket:
      info.sessionTicket = e.data;
      break;
    case ExtensionType.supported_versions:
      info.supportedVersions = decodeClientSupportedVersions(e.data);
      break;
    default:
      break; // Unknown extensions are ignored (RFC 5246 §7.4.1.4).
  }
}

/** The versions a server may negotiate: its configured range, capped at what it implements. */
export interface VersionRange {
  min: ProtocolVersion;
  /** The highest version this server will actually speak (1.3 only when a 1.3 handshake exists). */
  max: ProtocolVersion;
}

/**
 * Picks the protocol version (RFC 8446 §4.2.1 with supported_versions, RFC 5246 Appendix E
 * from client_version otherwise) and applies RFC 7507: a fallback SCSV from a client that
 * could have had a higher version is inappropriate_fallback.
 */
export function negotiateVersion(hello: ClientHelloInfo, range: VersionRange): ProtocolVersion {
  let chosen: number | undefined;
  if (hello.supportedVersions) {
    for (const v of [ProtocolVersion.TLS13, ProtocolVersion.TLS12, ProtocolVersion.TLS11]) {
      if (v >= range.min && v <= range.max && hello.supportedVersions.includes(v)) {
        chosen = v;
        break;
      }
    }
  } else if (hello.legacyVersion >= range.min) {
    chosen = Math.min(hello.legacyVersion, range.max, ProtocolVersion.TLS12);
  }
  if (chosen === undefined || chosen < range.min) {
    const offered = hello.supportedVersions
      ? hello.supportedVersions.map(versionName).join(", ")
      : versionName(hello.legacyVersion);
    fail(
      AlertDescription.protocol_version,
      `client offers ${offered}; this server speaks ${versionName(range.min)} to ${versionName(range.max)}`,
    );
  }
  if (hello.fallbackScsv && chosen < range.max) {
    fail(
      AlertDescription.inappropriate_fallback,
      `client fell back to ${versionName(chosen)} though ${versionName(range.max)} is available (RFC 7507)`,
    );
  }
  return chosen as ProtocolVersion;
}

/** The server's ALPN choice: its first protocol the client also offers (RFC 7301 §3.2). */
export function negotiateAlpn(hello: ClientHelloInfo, ours: readonly string[]): string | false {
  if (!hello.alpn || ours.length === 0) return false;
  const pick = ours.find((p) => hello.alpn!.includes(p));
  if (pick === undefined)
    fail(
      AlertDescription.no_application_protocol,
      `client offers ALPN ${hello.alpn.join(", ")}; this server speaks ${ours.join(", ")}`,
    );
  return pick;
}
