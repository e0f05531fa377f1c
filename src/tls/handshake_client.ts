/**
 * The client handshake for TLS 1.1 and 1.2 (RFC 5246 §7.3), written straight through:
 * send ClientHello, read each server message, check it, compute, answer. Client
 * authentication signs CertificateVerify with the key handle; the private key never
 * leaves it.
 */
import { constants, publicEncrypt, randomBytes } from "node:crypto";
import { AlertDescription, NegotiationError, TlsError } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import type { ClientConfig } from "./config.ts";
import type { HandshakeResult } from "./conn.ts";
import {
  DOWNGRADE_TLS11,
  DOWNGRADE_TLS12,
  ExtensionType,
  HandshakeType,
  ProtocolVersion,
  TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
  versionName,
} from "./constants.ts";
import {
  alpnExtension,
  decodeAlpn,
  decodeRenegotiationInfo,
  ecPointFormats,
  emptyExtension,
  expectEmpty,
  findExtension,
  serverNameExtension,
  u16ListExtension,
} from "./extensions.ts";
import { clientHandshake13 } from "./handshake_client13.ts";
import { expectFinished, expectType, type HandshakeIO } from "./handshake_io.ts";
import { generateKeyShare, isSupportedGroup, type KeyShare } from "./key_share.ts";
import {
  type CertificateRequest12,
  type ClientHello,
  decodeCertificate12,
  decodeCertificateRequest12,
  decodeEcdheServerKeyExchange,
  decodeServerHello,
  type Extension,
  encodeCertificate12,
  encodeClientHello,
  encodeDigitallySigned,
  encodeEcdheClientKeyExchange,
  encodeRsaClientKeyExchange,
} from "./messages.ts";
import {
  clientKeyShare,
  clientSupportedVersions,
  cookieExtension,
  decodeServerSupportedVersion,
  pskModes,
} from "./messages13.ts";
import { finishedData, keyBlock, masterSecret, type PrfHash, transcriptHash } from "./prf.ts";
import { keyBlockLayout, protectionFor, splitKeyBlock } from "./protection.ts";
import { bindClientHello, type ClientTicket, offeredPskExtension } from "./psk.ts";
import { chooseScheme, signWith, verifyHandshakeSignature, verifySchemeCodes } from "./signature.ts";
import { judgeServerChain, leafPublicKey } from "./verify_peer.ts";

const CERT_TYPE_RSA_SIGN = 1;
const CERT_TYPE_ECDSA_SIGN = 64;

function fail(alert: AlertDescription, message: string): never {
  throw new TlsError(alert, message);
}

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

/** Builds the ClientHello for the configuration (the same code builds the second one after HRR). */
export function buildClientHello(cfg: ClientConfig, p: HelloParams): ClientHello {
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
  if (p.offer13) {
    const versions = [ProtocolVersion.TLS13, ProtocolVersion.TLS12, ProtocolVersion.TLS11].filter(
      (v) => v >= cfg.minVersion && (v === ProtocolVersion.TLS13 || v <= p.legacyMax),
    );
    extensions.push(clientSupportedVersions(versions));
    extensions.push(clientKeyShare(p.shares.map((k) => ({ group: k.group, keyExchange: k.publicKey }))));
    extensions.push(pskModes());
    if (p.cookie) extensions.push(cookieExtension(p.cookie));
    if (p.psk) extensions.push(offeredPskExtension(p.psk)); // must be last (RFC 8446 §4.2.11)
  }
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

/** Encodes a ClientHello, binding its PSK (if any) to the transcript so far. */
export function encodeHelloBody(hello: ClientHello, p: HelloParams, prefix: readonly Buffer[]): Buffer {
  const body = encodeClientHello(hello);
  return p.psk ? bindClientHello(body, p.psk, prefix) : body;
}

/** A cached ticket for this server whose suite we still offer. */
function resumableTicket(cfg: ClientConfig, suites: readonly CipherSuite[]): ClientTicket | undefined {
  const t = cfg.sessionCache?.take(cfg.sessionKey);
  return t && suites.some((s) => s.id === t.suiteId) ? t : undefined;
}

/** Runs the client handshake: ClientHello, then TLS 1.3 or TLS 1.2/1.1 as the ServerHello decides. */
export async function clientHandshake(io: HandshakeIO, cfg: ClientConfig): Promise<HandshakeResult> {
  const transcript: Buffer[] = [];
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

  // ClientHello
  const params: HelloParams = {
    random: randomBytes(32),
    // A non-empty legacy session id turns on middlebox compatibility mode (RFC 8446 §D.4).
    sessionId: offer13 ? randomBytes(32) : Buffer.alloc(0),
    suites,
    shares: offer13 ? [generateKeyShare(cfg.groups[0]!)] : [],
    offer13,
    legacyMax,
    cookie: undefined,
    psk: offer13 ? resumableTicket(cfg, suites) : undefined,
  };
  const hello = buildClientHello(cfg, params);
  io.setRecordVersion(ProtocolVersion.TLS10);
  transcript.push(io.writeMessage(HandshakeType.client_hello, encodeHelloBody(hello, params, [])));
  await io.flush();

  // ServerHello (a refusal before it most often means nothing we offered suits the server)
  const offeredMax = offer13 ? ProtocolVersion.TLS13 : legacyMax;
  io.explainPeerAlert((alert) => NegotiationError.ifRefusal(alert, cfg.minVersion, offeredMax, suites));
  let msg = await io.readMessage();
  io.explainPeerAlert(undefined);
  expectType(msg, HandshakeType.server_hello);
  transcript.push(msg.raw);
  const sh = decodeServerHello(msg.body);
  const supportedVersion = findExtension(sh.extensions, ExtensionType.supported_versions);
  if (supportedVersion) {
    if (!offer13)
      fail(AlertDescription.unsupported_extension, "server sent supported_versions, which we did not offer");
    if (decodeServerSupportedVersion(supportedVersion.data) !== ProtocolVersion.TLS13) {
      fail(
        AlertDescription.illegal_parameter,
        "server selected a version through supported_versions that is not TLS 1.3",
      );
    }
    return clientHandshake13(io, cfg, { transcript, params, serverHello: sh });
  }
  const version = sh.version;
  const offered = legacyMax;
  const clientRandom = params.random;
  if (version < cfg.minVersion || version > offered) {
    fail(
      AlertDescription.protocol_version,
      `server chose ${versionName(version)}, outside the allowed range`,
    );
  }
  const tail = sh.random.subarray(24);
  if (
    (offered >= ProtocolVersion.TLS12 && version < ProtocolVersion.TLS12 && tail.equals(DOWNGRADE_TLS11)) ||
    (offer13 && tail.equals(DOWNGRADE_TLS12))
  ) {
    fail(
      AlertDescription.illegal_parameter,
      "downgrade attack detected (server random carries the downgrade sentinel)",
    );
  }
  const suite = suites.find((s) => s.id === sh.cipherSuite && s.kx !== "tls13");
  if (!suite || version < suite.minVersion || version > suite.maxVersion) {
    fail(
      AlertDescription.illegal_parameter,
      `server chose a cipher suite we did not offer (0x${sh.cipherSuite.toString(16)})`,
    );
  }
  if (sh.compressionMethod !== 0) fail(AlertDescription.illegal_parameter, "server chose compression");
  const negotiated = checkServerExtensions(sh.extensions, hello.extensions, suite);
  io.setRecordVersion(version);
  const prfHash: PrfHash = version >= ProtocolVersion.TLS12 ? suite.prfHash : "md5-sha1";

  // Certificate
  msg = await io.readMessage();
  expectType(msg, HandshakeType.certificate);
  transcript.push(msg.raw);
  const chain = decodeCertificate12(msg.body);
  if (chain.length === 0) fail(AlertDescription.handshake_failure, "server sent no certificate");
  const serverKey = leafPublicKey(chain[0]!, "server");
  const { authorized, authorizationError } = judgeServerChain(cfg, chain);
  const keyType = serverKey.asymmetricKeyType;
  const wantKey = suite.kx === "ecdhe_ecdsa" ? "ec" : "rsa";
  if (keyType !== wantKey)
    fail(
      AlertDescription.unsupported_certificate,
      `server certificate key (${keyType}) does not fit ${suite.name}`,
    );

  // ServerKeyExchange (ECDHE only)
  let premaster: Buffer;
  let clientKeyExchange: Buffer;
  if (suite.kx === "rsa") {
    premaster = Buffer.concat([Buffer.from([offered >> 8, offered & 0xff]), randomBytes(46)]);
    const encrypted = publicEncrypt({ key: serverKey, padding: constants.RSA_PKCS1_PADDING }, premaster);
    clientKeyExchange = encodeRsaClientKeyExchange(encrypted);
    msg = await io.readMessage();
  } else {
    msg = await io.readMessage();
    expectType(msg, HandshakeType.server_key_exchange);
    transcript.push(msg.raw);
    const ske = decodeEcdheServerKeyExchange(msg.body, version);
    if (!isSupportedGroup(ske.group) || !cfg.groups.includes(ske.group)) {
      fail(AlertDescription.illegal_parameter, `server chose a group we did not offer (${ske.group})`);
    }
    verifyHandshakeSignature(
      serverKey,
      ske.scheme,
      Buffer.concat([clientRandom, sh.random, ske.params]),
      ske.signature,
      version,
    );
    const share = generateKeyShare(ske.group);
    premaster = share.agree(ske.publicKey);
    clientKeyExchange = encodeEcdheClientKeyExchange(share.publicKey);
    msg = await io.readMessage();
  }

  // CertificateRequest (optional), ServerHelloDone
  let certRequest: CertificateRequest12 | undefined;
  if (msg.type === HandshakeType.certificate_request) {
    transcript.push(msg.raw);
    certRequest = decodeCertificateRequest12(msg.body, version);
    msg = await io.readMessage();
  }
  expectType(msg, HandshakeType.server_hello_done);
  if (msg.body.length !== 0) fail(AlertDescription.decode_error, "ServerHelloDone must be empty");
  transcript.push(msg.raw);

  // Client Certificate, ClientKeyExchange, CertificateVerify
  const signingKey = certRequest ? usableClientKey(cfg, certRequest, version) : undefined;
  if (certRequest && !signingKey) io.expectRefusalForMissingCertificate();
  if (certRequest) {
    transcript.push(
      io.writeMessage(HandshakeType.certificate, encodeCertificate12(signingKey ? cfg.certificateChain : [])),
    );
  }
  transcript.push(io.writeMessage(HandshakeType.client_key_exchange, clientKeyExchange));
  const sessionHash = negotiated.ems ? transcriptHash(prfHash, transcript) : undefined;
  const master = masterSecret(prfHash, premaster, clientRandom, sh.random, sessionHash);
  premaster.fill(0);
  if (signingKey && certRequest) {
    const scheme = chooseScheme(signingKey, version, certRequest.signatureSchemes);
    const signature = await signWith(signingKey, scheme, Buffer.concat(transcript));
    const body = encodeDigitallySigned({
      scheme: version >= ProtocolVersion.TLS12 ? scheme.code : undefined,
      signature,
    });
    transcript.push(io.writeMessage(HandshakeType.certificate_verify, body));
  }

  // ChangeCipherSpec, Finished; then the server's
  const [m, k, i] = keyBlockLayout(suite);
  const block = keyBlock(prfHash, master, clientRandom, sh.random, 2 * (m + k + i));
  const keys = splitKeyBlock(suite, block);
  io.writeChangeCipherSpec(protectionFor(suite, keys.client, negotiated.etm));
  const clientFinished = finishedData(prfHash, master, "client", transcriptHash(prfHash, transcript));
  transcript.push(io.writeMessage(HandshakeType.finished, clientFinished));
  io.setPendingRead(protectionFor(suite, keys.server, negotiated.etm));
  block.fill(0);
  await io.flush();

  await io.readChangeCipherSpec();
  msg = await io.readMessage();
  const expected = finishedData(prfHash, master, "server", transcriptHash(prfHash, transcript));
  master.fill(0);
  expectFinished(msg, expected, "server", transcript);
  return {
    version,
    suite,
    peerCertificates: chain,
    authorized,
    authorizationError,
    alpnProtocol: negotiated.alpn,
  };
}

interface Negotiated {
  ems: boolean;
  etm: boolean;
  alpn: string | false;
}

/** Checks ServerHello extensions: only ones we sent, each well-formed (RFC 5246 §7.4.1.4). */
function checkServerExtensions(
  exts: readonly Extension[],
  sent: readonly Extension[],
  suite: CipherSuite,
): Negotiated {
  const out: Negotiated = { ems: false, etm: false, alpn: false };
  const sentTypes = new Set(sent.map((e) => e.type));
  for (const e of exts) {
    if (e.type !== ExtensionType.renegotiation_info && !sentTypes.has(e.type)) {
      fail(AlertDescription.unsupported_extension, `server sent extension ${e.type} we did not offer`);
    }
    switch (e.type) {
      case ExtensionType.renegotiation_info:
        if (decodeRenegotiationInfo(e.data).length !== 0)
          fail(AlertDescription.handshake_failure, "bad renegotiation_info");
        break;
      case ExtensionType.extended_master_secret:
        expectEmpty(e, "extended_master_secret");
        out.ems = true;
        break;
      case ExtensionType.encrypt_then_mac:
        expectEmpty(e, "encrypt_then_mac");
        out.etm = suite.mac !== undefined;
        break;
      case ExtensionType.alpn: {
        const list = decodeAlpn(e.data);
        const ours = sent.find((x) => x.type === ExtensionType.alpn);
        if (list.length !== 1 || !ours || !decodeAlpn(ours.data).includes(list[0]!)) {
          fail(AlertDescription.illegal_parameter, "server chose an ALPN protocol we did not offer");
        }
        out.alpn = list[0]!;
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** The client key to authenticate with, if it fits what the server asked for. */
function usableClientKey(cfg: ClientConfig, req: CertificateRequest12, version: number) {
  const key = cfg.key;
  if (!key || cfg.certificateChain.length === 0) return undefined;
  const type = key.type === "rsa" ? CERT_TYPE_RSA_SIGN : CERT_TYPE_ECDSA_SIGN;
  if (!req.certificateTypes.includes(type)) return undefined;
  if (version >= ProtocolVersion.TLS12) {
    try {
      chooseScheme(key, version, req.signatureSchemes);
    } catch {
      return undefined;
    }
  }
  return key;
}
