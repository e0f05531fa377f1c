/**
 * The client handshake for TLS 1.3 (RFC 8446 §2), from the first ServerHello on, as a
 * state object whose run() calls one named step per message or flight:
 * HelloRetryRequest, key schedule, EncryptedExtensions, server authentication, optional
 * client authentication signed by the key handle, Finished, and the post-handshake
 * messages (NewSessionTicket, KeyUpdate).
 */
import { AlertDescription, fail } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { type HelloParams, writeClientHello } from "./client_offer.ts";
import type { ClientConfig } from "./config.ts";
import { ExtensionType, HandshakeType, ProtocolVersion } from "./constants.ts";
import { decodeAlpn, decodeU16ListExtension, findExtension } from "./extensions.ts";
import type { HandshakeChannel } from "./handshake_channel.ts";
import { expectType, type HandshakeMessage, type HandshakeResult } from "./handshake_io.ts";
import { protection13, TrafficSecrets, writeCertificateAndVerify } from "./handshake13.ts";
import { finishedMac, KeySchedule, type Tls13Hash, ticketPsk } from "./key_schedule.ts";
import { generateKeyShare, isSupportedGroup } from "./key_share.ts";
import { decodeDigitallySigned, decodeServerHello, type Extension, type ServerHello } from "./messages.ts";
import {
  certificateVerifyContent,
  decodeCertificate13,
  decodeCertificateRequest13,
  decodeCookie,
  decodeEncryptedExtensions,
  decodeHrrKeyShare,
  decodeNewSessionTicket13,
  decodeServerKeyShare,
  decodeServerPsk,
  decodeServerSupportedVersion,
  HRR_RANDOM,
} from "./messages13.ts";
import { NULL_PROTECTION } from "./protection.ts";
import type { ClientTicket } from "./psk.ts";
import { chooseScheme, verifyHandshakeSignature } from "./signature.ts";
import { judgeServerChain, leafPublicKey } from "./verify_peer.ts";

/** What the server's authentication messages established. */
interface ServerAuth {
  certRequest: { context: Buffer; schemes: number[] } | undefined;
  chain: Buffer[];
  authorized: boolean;
  authorizationError: string | undefined;
}

/** The traffic secrets of the handshake phase. */
interface HandshakeSecrets {
  client: Buffer;
  server: Buffer;
}

/** The TLS 1.3 client from the first ServerHello (or HelloRetryRequest) on. */
export class ClientHandshake13 {
  private readonly suite: CipherSuite;
  private readonly hash: Tls13Hash;
  /** A compatibility ChangeCipherSpec went out already (after a HelloRetryRequest). */
  private sentCcs = false;
  private ticket: ClientTicket | undefined;
  private schedule: KeySchedule | undefined;

  constructor(
    private readonly channel: HandshakeChannel,
    private readonly cfg: ClientConfig,
    private params: HelloParams,
    private sh: ServerHello,
  ) {
    channel.io.allowCompatChangeCipherSpec();
    const suite = params.suites.find((s) => s.id === sh.cipherSuite && s.kx === "tls13");
    if (!suite)
      fail(
        AlertDescription.illegal_parameter,
        `server chose a TLS 1.3 cipher suite we did not offer (0x${sh.cipherSuite.toString(16)})`,
      );
    this.suite = suite;
    this.hash = suite.prfHash;
  }

  /** The rest of the handshake, step by step. */
  async run(): Promise<HandshakeResult> {
    this.channel.transcript.useHash(this.hash);
    if (this.sh.random.equals(HRR_RANDOM)) await this.retryHello();
    const hs = this.acceptServerHello();
    const alpn = await this.readEncryptedExtensions();
    // Server authentication is absent when resuming: the ticket vouches for the server.
    const auth = this.ticket
      ? resumedAuth(this.cfg, this.ticket.peerCertificates)
      : await this.readServerAuth();
    const [clientAp, serverAp] = await this.readServerFinished(hs.server);
    const resumptionSecret = await this.writeClientFlight(hs.client, clientAp, auth);
    hs.client.fill(0);
    hs.server.fill(0);
    return {
      version: ProtocolVersion.TLS13,
      suite: this.suite,
      peerCertificates: auth.chain,
      authorized: auth.authorized,
      authorizationError: auth.authorizationError,
      alpnProtocol: alpn,
      postHandshake: this.postHandshake(
        new TrafficSecrets(this.channel.io, this.suite, serverAp, clientAp),
        auth,
        resumptionSecret,
      ),
    };
  }

  /** HelloRetryRequest: the second ClientHello with the group or cookie asked for, then its ServerHello. */
  private async retryHello(): Promise<void> {
    const { channel, sh, suite } = this;
    checkHello(sh, this.params, "HelloRetryRequest");
    const allowed = [ExtensionType.supported_versions, ExtensionType.key_share, ExtensionType.cookie];
    onlyAllowed(sh.extensions, allowed, "HelloRetryRequest");
    const groupExt = findExtension(sh.extensions, ExtensionType.key_share);
    const cookieExt = findExtension(sh.extensions, ExtensionType.cookie);
    if (!groupExt && !cookieExt)
      fail(AlertDescription.illegal_parameter, "HelloRetryRequest changes nothing");
    this.params = {
      ...this.params,
      suites: [suite],
      shares: groupExt ? [this.retryShare(decodeHrrKeyShare(groupExt.data))] : this.params.shares,
      cookie: cookieExt ? decodeCookie(cookieExt.data) : undefined,
      // The PSK stays on offer only if the suite chosen can use it (same hash).
      psk: this.params.psk?.hash === this.hash ? this.params.psk : undefined,
    };
    channel.transcript.replaceWithMessageHash();
    channel.io.writeChangeCipherSpec(NULL_PROTECTION);
    this.sentCcs = true;
    writeClientHello(channel, this.cfg, this.params);
    await channel.io.flush();
    const msg = await channel.expect(HandshakeType.server_hello);
    this.sh = decodeServerHello(msg.body);
    if (this.sh.random.equals(HRR_RANDOM))
      fail(AlertDescription.unexpected_message, "a second HelloRetryRequest");
    if (this.sh.cipherSuite !== suite.id)
      fail(AlertDescription.illegal_parameter, "ServerHello changed the suite chosen in HelloRetryRequest");
    const version = findExtension(this.sh.extensions, ExtensionType.supported_versions);
    if (!version || decodeServerSupportedVersion(version.data) !== ProtocolVersion.TLS13) {
      fail(
        AlertDescription.illegal_parameter,
        "the ServerHello after HelloRetryRequest did not select TLS 1.3",
      );
    }
  }

  /** A key share for the group a HelloRetryRequest asks for: one we offer and did not send. */
  private retryShare(group: number) {
    if (
      !isSupportedGroup(group) ||
      !this.cfg.groups.includes(group) ||
      this.params.shares.some((k) => k.group === group)
    ) {
      fail(
        AlertDescription.illegal_parameter,
        `HelloRetryRequest asks for group ${group}, which we cannot use`,
      );
    }
    return generateKeyShare(group);
  }

  /**
   * ServerHello: the PSK and key share it selects, the handshake secrets, and both directions'
   * handshake keys at once, so that from here on our alerts are protected too (RFC 8446 §5).
   */
  private acceptServerHello(): HandshakeSecrets {
    const { sh, params, hash, suite, channel } = this;
    checkHello(sh, params, "ServerHello");
    const allowed = [ExtensionType.supported_versions, ExtensionType.key_share];
    if (params.psk) allowed.push(ExtensionType.pre_shared_key);
    onlyAllowed(sh.extensions, allowed, "ServerHello");
    const pskExt = findExtension(sh.extensions, ExtensionType.pre_shared_key);
    this.ticket = pskExt ? params.psk : undefined;
    if (pskExt && (decodeServerPsk(pskExt.data) !== 0 || this.ticket?.hash !== hash)) {
      fail(AlertDescription.illegal_parameter, "server selected a PSK we did not offer");
    }
    const shareExt = findExtension(sh.extensions, ExtensionType.key_share);
    if (!shareExt) fail(AlertDescription.missing_extension, "ServerHello has no key_share");
    const serverShare = decodeServerKeyShare(shareExt.data);
    const ours = params.shares.find((k) => k.group === serverShare.group);
    if (!ours) fail(AlertDescription.illegal_parameter, "server key share is for a group we did not send");
    const shared = ours.agree(serverShare.keyExchange);
    this.schedule = new KeySchedule(hash, this.ticket?.psk);
    const [client, server] = this.schedule.handshake(shared, channel.transcript.hash());
    shared.fill(0);
    channel.transcript.releaseMessages();
    channel.io.setRecordVersion(ProtocolVersion.TLS12);
    channel.io.setReadProtection(protection13(suite, server));
    // The compatibility ChangeCipherSpec goes first, in clear, unless it went after the HRR.
    if (this.sentCcs) channel.io.setWriteProtection(protection13(suite, client));
    else channel.io.writeChangeCipherSpec(protection13(suite, client));
    return { client, server };
  }

  /** EncryptedExtensions; returns the ALPN protocol chosen. */
  private async readEncryptedExtensions(): Promise<string | false> {
    const msg = await this.channel.expect(HandshakeType.encrypted_extensions);
    return checkEncryptedExtensions(decodeEncryptedExtensions(msg.body), this.cfg);
  }

  /** [CertificateRequest,] Certificate and CertificateVerify, validating the chain and signature. */
  private async readServerAuth(): Promise<ServerAuth> {
    const { channel, cfg } = this;
    let msg = await channel.read();
    const certRequest =
      msg.type === HandshakeType.certificate_request ? readCertificateRequest(msg) : undefined;
    if (certRequest) msg = await channel.read();
    expectType(msg, HandshakeType.certificate);
    const cert = decodeCertificate13(msg.body);
    if (cert.context.length !== 0)
      fail(AlertDescription.illegal_parameter, "server Certificate has a request context");
    if (cert.chain.length === 0) fail(AlertDescription.decode_error, "server sent no certificate");
    const serverKey = leafPublicKey(cert.chain[0]!, "server");
    const { authorized, authorizationError } = judgeServerChain(cfg, cert.chain);
    const signed = certificateVerifyContent("server", channel.transcript.hash());
    msg = await channel.expect(HandshakeType.certificate_verify);
    const cv = decodeDigitallySigned(msg.body, true);
    verifyHandshakeSignature(serverKey, cv.scheme, signed, cv.signature, ProtocolVersion.TLS13);
    return { certRequest, chain: cert.chain, authorized, authorizationError };
  }

  /** The server's Finished; then reads switch to application keys. Returns [client, server] application secrets. */
  private async readServerFinished(serverHs: Buffer): Promise<[Buffer, Buffer]> {
    const { channel, hash, suite } = this;
    await channel.readFinished(finishedMac(hash, serverHs, channel.transcript.hash()), "server");
    const [clientAp, serverAp] = this.schedule!.application(channel.transcript.hash());
    // Switch at once: records after the server Finished (tickets, data) use application keys.
    channel.io.setReadProtection(protection13(suite, serverAp));
    return [clientAp, serverAp];
  }

  /** Our flight: [Certificate, CertificateVerify,] Finished. Returns the resumption secret. */
  private async writeClientFlight(clientHs: Buffer, clientAp: Buffer, auth: ServerAuth): Promise<Buffer> {
    const { channel, cfg, hash } = this;
    if (auth.certRequest) {
      const signer = clientSigner(cfg, auth.certRequest.schemes);
      const chain = signer ? cfg.certificateChain : [];
      await writeCertificateAndVerify(channel, "client", auth.certRequest.context, chain, signer);
    }
    channel.write(HandshakeType.finished, finishedMac(hash, clientHs, channel.transcript.hash()));
    channel.io.setWriteProtection(protection13(this.suite, clientAp));
    await channel.io.flush();
    return this.schedule!.resumption(channel.transcript.hash());
  }

  /** Handles NewSessionTicket (kept when the server was authenticated) and KeyUpdate. */
  private postHandshake(secrets: TrafficSecrets, auth: ServerAuth, resumptionSecret: Buffer) {
    const { cfg, suite, hash } = this;
    return (m: HandshakeMessage): void => {
      if (m.type === HandshakeType.key_update) {
        secrets.onKeyUpdate(m.body);
        return;
      }
      if (m.type !== HandshakeType.new_session_ticket) {
        fail(
          AlertDescription.unexpected_message,
          `unexpected ${HandshakeType[m.type] ?? m.type} after the handshake`,
        );
      }
      const nst = decodeNewSessionTicket13(m.body);
      // Only sessions whose server was authenticated are kept for resumption.
      if (!cfg.sessionCache || nst.lifetime <= 0 || !auth.authorized) return;
      cfg.sessionCache.put(cfg.sessionKey, {
        suiteId: suite.id,
        hash,
        psk: ticketPsk(hash, resumptionSecret, nst.nonce),
        ticket: Buffer.from(nst.ticket),
        ageAdd: nst.ageAdd,
        receivedAt: Date.now(),
        lifetime: nst.lifetime,
        peerCertificates: auth.chain,
      });
    };
  }
}

/** A TLS 1.3 CertificateRequest: its context and the signature schemes it accepts. */
function readCertificateRequest(msg: HandshakeMessage): { context: Buffer; schemes: number[] } {
  const cr = decodeCertificateRequest13(msg.body);
  const sigAlgs = findExtension(cr.extensions, ExtensionType.signature_algorithms);
  if (!sigAlgs) fail(AlertDescription.missing_extension, "CertificateRequest without signature_algorithms");
  return { context: cr.context, schemes: decodeU16ListExtension(sigAlgs.data, "signature_algorithms") };
}

function onlyAllowed(exts: readonly Extension[], allowed: readonly ExtensionType[], where: string): void {
  for (const e of exts) {
    if (!allowed.includes(e.type))
      fail(AlertDescription.unsupported_extension, `extension ${e.type} is not allowed in ${where}`);
  }
}

/** Our key and the scheme to sign with, when they fit the server's CertificateRequest. */
function clientSigner(cfg: ClientConfig, schemes: readonly number[]) {
  if (!cfg.key || cfg.certificateChain.length === 0) return undefined;
  try {
    return { key: cfg.key, scheme: chooseScheme(cfg.key, ProtocolVersion.TLS13, schemes) };
  } catch {
    return undefined;
  }
}

/**
 * The server's identity on resumption: the chain the ticket was issued with, validated
 * again now (trust anchors, host name and validity may have changed since; a cache may be
 * shared by connections with different trust settings).
 */
function resumedAuth(cfg: ClientConfig, chain: Buffer[]): ServerAuth {
  return { certRequest: undefined, chain, ...judgeServerChain(cfg, chain) };
}

function checkHello(sh: ServerHello, params: HelloParams, what: string): void {
  if (sh.version !== ProtocolVersion.TLS12)
    fail(AlertDescription.illegal_parameter, `${what} legacy_version must be TLS 1.2`);
  if (!sh.sessionId.equals(params.sessionId))
    fail(AlertDescription.illegal_parameter, `${what} did not echo our session id`);
  if (sh.compressionMethod !== 0) fail(AlertDescription.illegal_parameter, `${what} chose compression`);
}

function checkEncryptedExtensions(exts: readonly Extension[], cfg: ClientConfig): string | false {
  let alpn: string | false = false;
  for (const e of exts) {
    switch (e.type) {
      case ExtensionType.server_name:
        if (!cfg.serverName || e.data.length !== 0)
          fail(AlertDescription.illegal_parameter, "unexpected server_name in EncryptedExtensions");
        break;
      case ExtensionType.supported_groups:
        break; // the server's preference, informational
      case ExtensionType.alpn: {
        const list = decodeAlpn(e.data);
        if (list.length !== 1 || !cfg.alpn.includes(list[0]!))
          fail(AlertDescription.illegal_parameter, "server chose an ALPN protocol we did not offer");
        alpn = list[0]!;
        break;
      }
      default:
        fail(
          AlertDescription.unsupported_extension,
          `extension ${e.type} is not allowed in EncryptedExtensions`,
        );
    }
  }
  return alpn;
}
