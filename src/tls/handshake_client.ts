/**
 * The client handshake entry point and the TLS 1.1/1.2 client (RFC 5246 §7.3), as a state
 * object whose run() calls one named step per flight, in the spirit of Go's crypto/tls:
 * send ClientHello, read each server message, check it, compute, answer. Client
 * authentication signs CertificateVerify with the key handle; the private key never
 * leaves it. Once the ServerHello selects TLS 1.3, ClientHandshake13 takes over.
 */
import { constants, type KeyObject, publicEncrypt, randomBytes } from "node:crypto";
import { AlertDescription, fail, NegotiationError } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { firstHelloParams, type HelloParams, writeClientHello } from "./client_offer.ts";
import type { ClientConfig } from "./config.ts";
import {
  DOWNGRADE_TLS11,
  DOWNGRADE_TLS12,
  ExtensionType,
  HandshakeType,
  ProtocolVersion,
  versionName,
} from "./constants.ts";
import { decodeAlpn, decodeRenegotiationInfo, expectEmpty, findExtension } from "./extensions.ts";
import { HandshakeChannel } from "./handshake_channel.ts";
import { ClientHandshake13 } from "./handshake_client13.ts";
import { expectType, type HandshakeIO, type HandshakeResult } from "./handshake_io.ts";
import { generateKeyShare, isSupportedGroup } from "./key_share.ts";
import {
  type CertificateRequest12,
  decodeCertificate12,
  decodeCertificateRequest12,
  decodeEcdheServerKeyExchange,
  decodeServerHello,
  type Extension,
  encodeCertificate12,
  encodeDigitallySigned,
  encodeEcdheClientKeyExchange,
  encodeRsaClientKeyExchange,
  type ServerHello,
} from "./messages.ts";
import { decodeServerSupportedVersion } from "./messages13.ts";
import { finishedData, keyBlock, masterSecret, type PrfHash } from "./prf.ts";
import { keyBlockLayout, protectionFor, splitKeyBlock } from "./protection.ts";
import { chooseScheme, signWith, verifyHandshakeSignature } from "./signature.ts";
import { judgeServerChain, leafPublicKey, type ServerJudgement } from "./verify_peer.ts";

const CERT_TYPE_RSA_SIGN = 1;
const CERT_TYPE_ECDSA_SIGN = 64;

/** Runs the client handshake: ClientHello, then TLS 1.3 or TLS 1.2/1.1 as the ServerHello decides. */
export async function clientHandshake(io: HandshakeIO, cfg: ClientConfig): Promise<HandshakeResult> {
  const channel = new HandshakeChannel(io);
  const params = firstHelloParams(cfg);
  io.setRecordVersion(ProtocolVersion.TLS10);
  const hello = writeClientHello(channel, cfg, params);
  await io.flush();
  const sh = await readServerHello(channel, cfg, params);
  if (selectsTls13(sh, params)) return new ClientHandshake13(channel, cfg, params, sh).run();
  return new ClientHandshake12(channel, cfg, params, hello.extensions, sh).run();
}

/** The ServerHello (a refusal before it most often means nothing we offered suits the server). */
async function readServerHello(
  channel: HandshakeChannel,
  cfg: ClientConfig,
  p: HelloParams,
): Promise<ServerHello> {
  const offeredMax = p.offer13 ? ProtocolVersion.TLS13 : p.legacyMax;
  channel.io.explainPeerAlert((alert) =>
    NegotiationError.ifRefusal(alert, cfg.minVersion, offeredMax, p.suites),
  );
  const msg = await channel.read();
  channel.io.explainPeerAlert(undefined);
  expectType(msg, HandshakeType.server_hello);
  return decodeServerHello(msg.body);
}

/** True when the ServerHello selects TLS 1.3 through supported_versions (RFC 8446 §4.2.1). */
function selectsTls13(sh: ServerHello, p: HelloParams): boolean {
  const supportedVersion = findExtension(sh.extensions, ExtensionType.supported_versions);
  if (!supportedVersion) return false;
  if (!p.offer13)
    fail(AlertDescription.unsupported_extension, "server sent supported_versions, which we did not offer");
  if (decodeServerSupportedVersion(supportedVersion.data) !== ProtocolVersion.TLS13) {
    fail(
      AlertDescription.illegal_parameter,
      "server selected a version through supported_versions that is not TLS 1.3",
    );
  }
  return true;
}

/** What the ServerHello extensions turned on. */
interface Negotiated {
  ems: boolean;
  etm: boolean;
  alpn: string | false;
}

/** The TLS 1.1/1.2 client from the ServerHello on. */
class ClientHandshake12 {
  private readonly version: ProtocolVersion;
  private readonly suite: CipherSuite;
  private readonly prfHash: PrfHash;
  private readonly negotiated: Negotiated;
  private chain: Buffer[] = [];
  private serverKey: KeyObject | undefined;
  private judgement: ServerJudgement = { authorized: false, authorizationError: undefined };
  private premaster: Buffer = Buffer.alloc(0);
  private clientKeyExchange: Buffer = Buffer.alloc(0);
  private certRequest: CertificateRequest12 | undefined;

  constructor(
    private readonly channel: HandshakeChannel,
    private readonly cfg: ClientConfig,
    private readonly params: HelloParams,
    sentExtensions: readonly Extension[],
    private readonly sh: ServerHello,
  ) {
    this.version = this.checkVersion();
    this.suite = this.checkSuite();
    if (sh.compressionMethod !== 0) fail(AlertDescription.illegal_parameter, "server chose compression");
    this.negotiated = checkServerExtensions(sh.extensions, sentExtensions, this.suite);
    this.prfHash = this.version >= ProtocolVersion.TLS12 ? this.suite.prfHash : "md5-sha1";
    channel.io.setRecordVersion(this.version);
    channel.transcript.useHash(this.prfHash);
  }

  /** The rest of the handshake, flight by flight. */
  async run(): Promise<HandshakeResult> {
    await this.readCertificate();
    await this.readServerKeyExchange();
    await this.readCertificateRequestAndDone();
    const master = await this.writeClientFlight();
    try {
      await this.finish(master);
    } finally {
      master.fill(0);
    }
    return {
      version: this.version,
      suite: this.suite,
      peerCertificates: this.chain,
      ...this.judgement,
      alpnProtocol: this.negotiated.alpn,
    };
  }

  /** The version chosen: inside our range, and no downgrade sentinel (RFC 8446 §4.1.3). */
  private checkVersion(): ProtocolVersion {
    const { sh, params, cfg } = this;
    const version = sh.version;
    if (version < cfg.minVersion || version > params.legacyMax) {
      fail(
        AlertDescription.protocol_version,
        `server chose ${versionName(version)}, outside the allowed range`,
      );
    }
    const tail = sh.random.subarray(24);
    if (
      (params.legacyMax >= ProtocolVersion.TLS12 &&
        version < ProtocolVersion.TLS12 &&
        tail.equals(DOWNGRADE_TLS11)) ||
      (params.offer13 && tail.equals(DOWNGRADE_TLS12))
    ) {
      fail(
        AlertDescription.illegal_parameter,
        "downgrade attack detected (server random carries the downgrade sentinel)",
      );
    }
    return version;
  }

  /** The suite chosen: one we offered, for the version chosen. */
  private checkSuite(): CipherSuite {
    const { sh, version } = this;
    const suite = this.params.suites.find((s) => s.id === sh.cipherSuite && s.kx !== "tls13");
    if (!suite || version < suite.minVersion || version > suite.maxVersion) {
      fail(
        AlertDescription.illegal_parameter,
        `server chose a cipher suite we did not offer (0x${sh.cipherSuite.toString(16)})`,
      );
    }
    return suite;
  }

  /** Certificate: the chain, judged, whose leaf key must fit the suite. */
  private async readCertificate(): Promise<void> {
    const msg = await this.channel.expect(HandshakeType.certificate);
    this.chain = decodeCertificate12(msg.body);
    if (this.chain.length === 0) fail(AlertDescription.handshake_failure, "server sent no certificate");
    this.serverKey = leafPublicKey(this.chain[0]!, "server");
    this.judgement = judgeServerChain(this.cfg, this.chain);
    const keyType = this.serverKey.asymmetricKeyType;
    const wantKey = this.suite.kx === "ecdhe_ecdsa" ? "ec" : "rsa";
    if (keyType !== wantKey)
      fail(
        AlertDescription.unsupported_certificate,
        `server certificate key (${keyType}) does not fit ${this.suite.name}`,
      );
  }

  /** ServerKeyExchange (ECDHE only, its signature checked), and our premaster and ClientKeyExchange. */
  private async readServerKeyExchange(): Promise<void> {
    const serverKey = this.serverKey!;
    if (this.suite.kx === "rsa") {
      const offered = this.params.legacyMax;
      this.premaster = Buffer.concat([Buffer.from([offered >> 8, offered & 0xff]), randomBytes(46)]);
      const encrypted = publicEncrypt(
        { key: serverKey, padding: constants.RSA_PKCS1_PADDING },
        this.premaster,
      );
      this.clientKeyExchange = encodeRsaClientKeyExchange(encrypted);
      return;
    }
    const msg = await this.channel.expect(HandshakeType.server_key_exchange);
    const ske = decodeEcdheServerKeyExchange(msg.body, this.version);
    if (!isSupportedGroup(ske.group) || !this.cfg.groups.includes(ske.group)) {
      fail(AlertDescription.illegal_parameter, `server chose a group we did not offer (${ske.group})`);
    }
    const signed = Buffer.concat([this.params.random, this.sh.random, ske.params]);
    verifyHandshakeSignature(serverKey, ske.scheme, signed, ske.signature, this.version);
    const share = generateKeyShare(ske.group);
    this.premaster = share.agree(ske.publicKey);
    this.clientKeyExchange = encodeEcdheClientKeyExchange(share.publicKey);
  }

  /** CertificateRequest (optional), then ServerHelloDone. */
  private async readCertificateRequestAndDone(): Promise<void> {
    let msg = await this.channel.read();
    if (msg.type === HandshakeType.certificate_request) {
      this.certRequest = decodeCertificateRequest12(msg.body, this.version);
      msg = await this.channel.read();
    }
    expectType(msg, HandshakeType.server_hello_done);
    if (msg.body.length !== 0) fail(AlertDescription.decode_error, "ServerHelloDone must be empty");
  }

  /** [Certificate,] ClientKeyExchange, [CertificateVerify]; returns the master secret. */
  private async writeClientFlight(): Promise<Buffer> {
    const { channel, cfg, certRequest, version, prfHash } = this;
    const signingKey = certRequest ? usableClientKey(cfg, certRequest, version) : undefined;
    if (certRequest && !signingKey) channel.io.expectRefusalForMissingCertificate();
    if (certRequest) {
      channel.write(HandshakeType.certificate, encodeCertificate12(signingKey ? cfg.certificateChain : []));
    }
    channel.write(HandshakeType.client_key_exchange, this.clientKeyExchange);
    const sessionHash = this.negotiated.ems ? channel.transcript.hash() : undefined;
    const master = masterSecret(prfHash, this.premaster, this.params.random, this.sh.random, sessionHash);
    this.premaster.fill(0);
    if (signingKey && certRequest) {
      const scheme = chooseScheme(signingKey, version, certRequest.signatureSchemes);
      // TLS 1.1/1.2 signs the handshake messages themselves, with the signature's own hash.
      const signature = await signWith(signingKey, scheme, channel.transcript.bytes());
      const code = version >= ProtocolVersion.TLS12 ? scheme.code : undefined;
      channel.write(HandshakeType.certificate_verify, encodeDigitallySigned({ scheme: code, signature }));
    }
    channel.transcript.releaseMessages();
    return master;
  }

  /** ChangeCipherSpec and Finished; then the server's. */
  private async finish(master: Buffer): Promise<void> {
    const { channel, suite, prfHash } = this;
    const etm = this.negotiated.etm;
    const [m, k, i] = keyBlockLayout(suite);
    const block = keyBlock(prfHash, master, this.params.random, this.sh.random, 2 * (m + k + i));
    const keys = splitKeyBlock(suite, block);
    channel.io.writeChangeCipherSpec(protectionFor(suite, keys.client, etm));
    channel.write(HandshakeType.finished, finishedData(prfHash, master, "client", channel.transcript.hash()));
    channel.io.setPendingRead(protectionFor(suite, keys.server, etm));
    block.fill(0);
    await channel.io.flush();
    await channel.io.readChangeCipherSpec();
    await channel.readFinished(finishedData(prfHash, master, "server", channel.transcript.hash()), "server");
  }
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
      case ExtensionType.alpn:
        out.alpn = chosenAlpn(e, sent);
        break;
      default:
        break;
    }
  }
  return out;
}

/** The server's ALPN choice, which must be one protocol we offered. */
function chosenAlpn(e: Extension, sent: readonly Extension[]): string {
  const list = decodeAlpn(e.data);
  const ours = sent.find((x) => x.type === ExtensionType.alpn);
  if (list.length !== 1 || !ours || !decodeAlpn(ours.data).includes(list[0]!)) {
    fail(AlertDescription.illegal_parameter, "server chose an ALPN protocol we did not offer");
  }
  return list[0]!;
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
