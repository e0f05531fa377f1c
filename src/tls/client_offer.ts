/**
 * What the client offers (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2): the parameters of its
 * ClientHello, the message built from them, and writing it with its PSK binder. Both the
 * first ClientHello and the second one after a HelloRetryRequest come from here, for TLS
 * 1.2 and 1.3 alike, so neither handshake file depends on the other for it.
 */
import { AlertDescription, fail } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import type { ClientConfig } from "./config.ts";
import {
  ExtensionType,
  HandshakeType,
  ProtocolVersion,
  TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
} from "./constants.ts";
import {
  alpnExtension,
  ecPointFormats,
  emptyExtension,
  serverNameExtension,
  u16ListExtension,
} from "./extensions.ts";
import type { HandshakeChannel } from "./handshake_channel.ts";
import { generateKeyShare, type KeyShare } from "./key_share.ts";
import { type ClientHello, type Extension, encodeClientHello } from "./messages.ts";
import { clientKeyShare, clientSupportedVersions, cookieExtension, pskModes } from "./messages13.ts";
import { bindClientHello, type ClientTicket, offeredPskExtension } from "./psk.ts";
import { publicRandom } from "./public_random.ts";
import { verifySchemeCodes } from "./signature.ts";

/** The parts of the ClientHello that later steps (HelloRetryRequest, key shares) refer back to. */
export interface HelloParams {
  random: Buffer;
  sessionId: Buffer;
  suites: readonly CipherSuite[];
  shares: readonly KeyShare[];
  offer13: boolean;
  /** The highest version below 1.3 offered (0 when none is). */
  legacyMax: number;
  cookie: Buffer | undefined;
  /** A ticket to resume with (TLS 1.3), offered as the last extension. */
  psk: ClientTicket | undefined;
}

/** A cached ticket for this server whose suite we still offer. */
function resumableTicket(cfg: ClientConfig, suites: readonly CipherSuite[]): ClientTicket | undefined {
  const t = cfg.sessionCache?.take(cfg.sessionKey);
  return t && suites.some((s) => s.id === t.suiteId) ? t : undefined;
}

/** The first ClientHello's parameters for the configuration; handshake_failure when nothing fits. */
export function firstHelloParams(cfg: ClientConfig): HelloParams {
  const suites = cfg.suites.filter((s) => s.maxVersion >= cfg.minVersion && s.minVersion <= cfg.maxVersion);
  const offer13 = cfg.maxVersion >= ProtocolVersion.TLS13 && suites.some((s) => s.kx === "tls13");
  const legacyMax =
    cfg.minVersion <= ProtocolVersion.TLS12 && suites.some((s) => s.kx !== "tls13")
      ? Math.min(cfg.maxVersion, ProtocolVersion.TLS12)
      : 0;
  if (!offer13 && !legacyMax)
    fail(
      AlertDescription.handshake_failure,
      "none of the configured cipher suites fits the TLS versions allowed",
    );
  return {
    random: publicRandom(32),
    // A non-empty legacy session id turns on middlebox compatibility mode (RFC 8446 §D.4).
    sessionId: offer13 ? publicRandom(32) : Buffer.alloc(0),
    suites,
    shares: offer13 ? [generateKeyShare(cfg.groups[0]!)] : [],
    offer13,
    legacyMax,
    cookie: undefined,
    psk: offer13 ? resumableTicket(cfg, suites) : undefined,
  };
}

/** Extensions every version reads: SNI, EMS/EtM, groups, signature algorithms, ALPN. */
function commonExtensions(cfg: ClientConfig, p: HelloParams): Extension[] {
  const legacySuites = p.suites.filter((s) => s.kx !== "tls13");
  const extensions: Extension[] = [];
  const sni = cfg.serverName ? serverNameExtension(cfg.serverName) : undefined;
  if (sni) extensions.push(sni);
  if (p.legacyMax) {
    extensions.push(emptyExtension(ExtensionType.extended_master_secret));
    if (cfg.encryptThenMac && legacySuites.some((s) => s.mac))
      extensions.push(emptyExtension(ExtensionType.encrypt_then_mac));
  }
  if (p.offer13 || legacySuites.some((s) => s.kx !== "rsa")) {
    extensions.push(u16ListExtension(ExtensionType.supported_groups, cfg.groups), ecPointFormats());
  }
  if (p.offer13 || p.legacyMax >= ProtocolVersion.TLS12) {
    extensions.push(
      u16ListExtension(ExtensionType.signature_algorithms, verifySchemeCodes(ProtocolVersion.TLS12)),
    );
  }
  if (cfg.alpn.length > 0) extensions.push(alpnExtension(cfg.alpn));
  return extensions;
}

/** The TLS 1.3 extensions: versions, key shares, PSK modes, cookie, and the PSK last (RFC 8446 §4.2.11). */
function tls13Extensions(cfg: ClientConfig, p: HelloParams): Extension[] {
  const versions = [ProtocolVersion.TLS13, ProtocolVersion.TLS12, ProtocolVersion.TLS11].filter(
    (v) => v >= cfg.minVersion && (v === ProtocolVersion.TLS13 || v <= p.legacyMax),
  );
  const extensions = [
    clientSupportedVersions(versions),
    clientKeyShare(p.shares.map((k) => ({ group: k.group, keyExchange: k.publicKey }))),
    pskModes(),
  ];
  if (p.cookie) extensions.push(cookieExtension(p.cookie));
  if (p.psk) extensions.push(offeredPskExtension(p.psk));
  return extensions;
}

/** Builds the ClientHello for the configuration (the same code builds the second one after HRR). */
export function buildClientHello(cfg: ClientConfig, p: HelloParams): ClientHello {
  const extensions = commonExtensions(cfg, p);
  if (p.offer13) extensions.push(...tls13Extensions(cfg, p));
  const scsv = p.legacyMax ? [TLS_EMPTY_RENEGOTIATION_INFO_SCSV] : [];
  return {
    version: p.offer13 ? ProtocolVersion.TLS12 : p.legacyMax,
    random: p.random,
    sessionId: p.sessionId,
    cipherSuites: [...p.suites.map((s) => s.id), ...scsv],
    compressionMethods: [0],
    extensions,
  };
}

/**
 * Builds and writes a ClientHello, its PSK (if any) bound to the transcript so far (empty,
 * or message_hash + HelloRetryRequest); returns the message as built.
 */
export function writeClientHello(channel: HandshakeChannel, cfg: ClientConfig, p: HelloParams): ClientHello {
  const hello = buildClientHello(cfg, p);
  const body = encodeClientHello(hello);
  channel.write(HandshakeType.client_hello, p.psk ? bindClientHello(body, p.psk, channel.transcript) : body);
  return hello;
}
