/**
 * The server handshake for TLS 1.3 (RFC 8446 §2), from a ClientHello that chose 1.3, as a
 * state object whose run() calls one named step per message or flight, like Go's
 * serverHandshakeStateTLS13: HelloRetryRequest when the client guessed no group we take,
 * the key schedule, a CertificateVerify signed by the key handle, optional client
 * authentication, and post-handshake KeyUpdate.
 */
import type { SchemeInfo } from "../keys/schemes.ts";
import { AlertDescription, fail, TlsError } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { type ClientHelloInfo, negotiateAlpn, parseClientHello } from "./client_hello.ts";
import { Writer } from "./codec.ts";
import { ExtensionType, HandshakeType, ProtocolVersion } from "./constants.ts";
import { alpnExtension, findExtension, u16ListExtension } from "./extensions.ts";
import type { HandshakeChannel } from "./handshake_channel.ts";
import type { HandshakeMessage, HandshakeResult } from "./handshake_io.ts";
import { protection13, TrafficSecrets, writeCertificateAndVerify } from "./handshake13.ts";
import { finishedMac, KeySchedule, type Tls13Hash } from "./key_schedule.ts";
import { generateKeyShare, isSupportedGroup, type NamedGroup } from "./key_share.ts";
import { decodeDigitallySigned, type Extension, encodeServerHello } from "./messages.ts";
import {
  certificateVerifyContent,
  decodeCertificate13,
  decodeClientKeyShare,
  encodeCertificateRequest13,
  encodeEncryptedExtensions,
  HRR_RANDOM,
  hrrKeyShare,
  type KeyShareEntry,
  serverKeyShare,
  serverPsk,
  serverSupportedVersion,
} from "./messages13.ts";
import { NULL_PROTECTION } from "./protection.ts";
import { publicRandom } from "./public_random.ts";
import type { ServerConfig } from "./server_config.ts";
import { type AcceptedPsk, acceptPsk, writeTicket } from "./server_psk13.ts";
import { chooseScheme, verifyHandshakeSignature, verifySchemeCodes } from "./signature.ts";
import { Transcript } from "./transcript.ts";
import { leafPublicKey } from "./verify_peer.ts";

/** Runs a TLS 1.3 server handshake for a ClientHello that selected TLS 1.3. */
export function serverHandshake13(
  channel: HandshakeChannel,
  cfg: ServerConfig,
  hello: ClientHelloInfo,
): Promise<HandshakeResult> {
  return new ServerHandshake13(channel, cfg, hello).run();
}

/** What the client's authentication established. */
interface ClientAuthResult {
  peerCertificates: Buffer[];
  authorized: boolean;
  authorizationError: string | undefined;
}

/** The TLS 1.3 server from the first ClientHello on. */
class ServerHandshake13 {
  private readonly suite: CipherSuite;
  private readonly hash: Tls13Hash;
  private readonly scheme: SchemeInfo;
  /** The transcript before the ClientHello that goes on (a PSK binder covers it). */
  private helloPrefix = new Transcript();
  /** A compatibility ChangeCipherSpec went out already (after a HelloRetryRequest). */
  private sentCcs = false;
  private accepted: AcceptedPsk | undefined;
  private schedule: KeySchedule | undefined;

  constructor(
    private readonly channel: HandshakeChannel,
    private readonly cfg: ServerConfig,
    private hello: ClientHelloInfo,
  ) {
    channel.io.allowCompatChangeCipherSpec();
    channel.io.setRecordVersion(ProtocolVersion.TLS12);
    const suite = cfg.suites.find((s) => s.kx === "tls13" && hello.cipherSuites.includes(s.id));
    if (!suite) fail(AlertDescription.handshake_failure, "no TLS 1.3 cipher suite in common");
    this.suite = suite;
    this.hash = suite.prfHash;
    if (!hello.signatureSchemes)
      fail(AlertDescription.missing_extension, "TLS 1.3 ClientHello without signature_algorithms");
    this.scheme = chooseScheme(cfg.key, ProtocolVersion.TLS13, hello.signatureSchemes);
  }

  /** The handshake, step by step. */
  async run(): Promise<HandshakeResult> {
    const { channel, cfg, suite } = this;
    channel.transcript.useHash(this.hash);
    const { group, share } = await this.chooseKeyShare();
    // Resumption is decided on the ClientHello that goes on (the second one after an HRR).
    this.accepted = acceptPsk(cfg, this.hello, this.hash, this.helloPrefix);
    channel.transcript.releaseMessages();
    const hs = this.writeServerHello(group, share);
    const alpn = this.writeEncryptedExtensions();
    const clientAuth = await this.writeAuthentication();
    const [clientAp, serverAp] = await this.writeServerFinished(hs.server);
    const peer = await this.readClientAuth(clientAuth);
    await this.readClientFinished(hs.client, clientAp, peer);
    hs.client.fill(0);
    hs.server.fill(0);
    const secrets = new TrafficSecrets(channel.io, suite, clientAp, serverAp);
    return {
      version: ProtocolVersion.TLS13,
      suite,
      ...peer,
      alpnProtocol: alpn,
      postHandshake: (m: HandshakeMessage): void => {
        if (m.type !== HandshakeType.key_update) {
          fail(
            AlertDescription.unexpected_message,
            `unexpected ${HandshakeType[m.type] ?? m.type} after the handshake`,
          );
        }
        secrets.onKeyUpdate(m.body);
      },
    };
  }

  /** A key share the client sent for a group we take, or one asked for with HelloRetryRequest. */
  private async chooseKeyShare(): Promise<{ group: NamedGroup; share: KeyShareEntry }> {
    const shares = clientShares(this.hello);
    const group = this.cfg.groups.find((g) => shares.some((s) => s.group === g));
    if (group !== undefined) return this.usableShare(group, shares);
    const wanted = this.cfg.groups.find((g) => this.hello.groups!.includes(g));
    if (wanted === undefined) fail(AlertDescription.handshake_failure, "no key exchange group in common");
    await this.retryHello(wanted);
    const second = clientShares(this.hello);
    if (second.length !== 1 || second[0]!.group !== wanted)
      fail(AlertDescription.illegal_parameter, "the second ClientHello has not the key share asked for");
    return this.usableShare(wanted, second);
  }

  private usableShare(group: number, shares: readonly KeyShareEntry[]) {
    if (!isSupportedGroup(group)) fail(AlertDescription.internal_error, "unsupported group configured");
    return { group, share: shares.find((s) => s.group === group)! };
  }

  /** HelloRetryRequest for `group`, then the second ClientHello, which must match the first. */
  private async retryHello(group: number): Promise<void> {
    const { channel, hello, suite } = this;
    channel.transcript.replaceWithMessageHash();
    const extensions = [serverSupportedVersion(ProtocolVersion.TLS13), hrrKeyShare(group)];
    channel.write(HandshakeType.server_hello, serverHelloBody(hello, suite, HRR_RANDOM, extensions));
    channel.io.writeChangeCipherSpec(NULL_PROTECTION);
    this.sentCcs = true;
    await channel.io.flush();
    this.helloPrefix = channel.transcript.snapshot();
    const second = parseClientHello(await channel.expect(HandshakeType.client_hello));
    if (!second.sessionId.equals(hello.sessionId) || !second.cipherSuites.includes(suite.id)) {
      fail(AlertDescription.illegal_parameter, "the second ClientHello does not match the first");
    }
    if (!second.supportedVersions?.includes(ProtocolVersion.TLS13))
      fail(AlertDescription.illegal_parameter, "the second ClientHello dropped TLS 1.3");
    this.hello = second;
  }

  /** ServerHello; then everything else goes under handshake keys. Returns the handshake secrets. */
  private writeServerHello(group: NamedGroup, peerShare: KeyShareEntry): { client: Buffer; server: Buffer } {
    const { channel, suite, accepted } = this;
    const ours = generateKeyShare(group);
    const shared = ours.agree(peerShare.keyExchange);
    const extensions = [
      serverSupportedVersion(ProtocolVersion.TLS13),
      serverKeyShare({ group, keyExchange: ours.publicKey }),
      ...(accepted ? [serverPsk(accepted.index)] : []),
    ];
    channel.write(
      HandshakeType.server_hello,
      serverHelloBody(this.hello, suite, publicRandom(32), extensions),
    );
    this.schedule = new KeySchedule(this.hash, accepted?.state.masterSecret);
    accepted?.state.masterSecret.fill(0);
    const [client, server] = this.schedule.handshake(shared, channel.transcript.hash());
    shared.fill(0);
    if (this.sentCcs) channel.io.setWriteProtection(protection13(suite, server));
    else channel.io.writeChangeCipherSpec(protection13(suite, server));
    channel.io.setReadProtection(protection13(suite, client));
    return { client, server };
  }

  /** EncryptedExtensions: SNI acknowledged, ALPN chosen. Returns the ALPN protocol. */
  private writeEncryptedExtensions(): string | false {
    const { hello, cfg } = this;
    const alpn = negotiateAlpn(hello, cfg.alpn);
    const ee: Extension[] = [];
    if (hello.serverName) ee.push({ type: ExtensionType.server_name, data: Buffer.alloc(0) });
    if (alpn !== false) ee.push(alpnExtension([alpn]));
    this.channel.write(HandshakeType.encrypted_extensions, encodeEncryptedExtensions(ee));
    cfg.onDetails?.({ serverName: hello.serverName, resumed: this.accepted !== undefined });
    return alpn;
  }

  /**
   * [CertificateRequest,] Certificate, CertificateVerify; a resumed session authenticates by
   * the PSK, with no certificates either way (RFC 8446 §4.3.2). Returns the client auth asked for.
   */
  private async writeAuthentication() {
    const { channel, cfg } = this;
    const clientAuth = this.accepted ? undefined : cfg.clientAuth;
    if (clientAuth) {
      const exts = [
        u16ListExtension(ExtensionType.signature_algorithms, verifySchemeCodes(ProtocolVersion.TLS13)),
      ];
      if (clientAuth.authorities.length > 0) exts.push(certificateAuthorities(clientAuth.authorities));
      const body = encodeCertificateRequest13({ context: Buffer.alloc(0), extensions: exts });
      channel.write(HandshakeType.certificate_request, body);
    }
    if (!this.accepted) {
      const signer = { key: cfg.key, scheme: this.scheme };
      await writeCertificateAndVerify(channel, "server", Buffer.alloc(0), cfg.certificateChain, signer);
    }
    return clientAuth;
  }

  /** Our Finished, then writes under application keys. Returns [client, server] application secrets. */
  private async writeServerFinished(serverHs: Buffer): Promise<[Buffer, Buffer]> {
    const { channel, hash } = this;
    channel.write(HandshakeType.finished, finishedMac(hash, serverHs, channel.transcript.hash()));
    const [clientAp, serverAp] = this.schedule!.application(channel.transcript.hash());
    channel.io.setWriteProtection(protection13(this.suite, serverAp));
    await channel.io.flush();
    return [clientAp, serverAp];
  }

  /** The client's [Certificate, CertificateVerify] when asked for; what they (or the PSK) establish. */
  private async readClientAuth(clientAuth: ServerConfig["clientAuth"]): Promise<ClientAuthResult> {
    const { accepted, cfg, channel } = this;
    if (accepted) {
      const { authorized, peerCertificates } = accepted.state;
      const authorizationError = accepted.authorizationError;
      return { peerCertificates, authorized: authorized && !authorizationError, authorizationError };
    }
    if (!clientAuth) {
      const authorizationError = cfg.clientAuth ? undefined : "no client certificate requested";
      return { peerCertificates: [], authorized: false, authorizationError };
    }
    const cert = decodeCertificate13((await channel.expect(HandshakeType.certificate)).body);
    if (cert.context.length !== 0)
      fail(AlertDescription.illegal_parameter, "client Certificate has the wrong request context");
    if (cert.chain.length === 0) {
      const authorizationError = "client sent no certificate";
      if (clientAuth.require)
        throw new TlsError(AlertDescription.certificate_required, authorizationError, "certificate");
      return { peerCertificates: cert.chain, authorized: false, authorizationError };
    }
    const verdict = clientAuth.verify(cert.chain);
    if (!verdict.ok && clientAuth.require) throw new TlsError(verdict.alert, verdict.reason, "certificate");
    const signed = certificateVerifyContent("client", channel.transcript.hash());
    const cv = decodeDigitallySigned((await channel.expect(HandshakeType.certificate_verify)).body, true);
    const publicKey = leafPublicKey(cert.chain[0]!, "client");
    verifyHandshakeSignature(publicKey, cv.scheme, signed, cv.signature, ProtocolVersion.TLS13);
    return {
      peerCertificates: cert.chain,
      authorized: verdict.ok,
      authorizationError: verdict.ok ? undefined : verdict.reason,
    };
  }

  /** The client's Finished; then reads switch to application keys and a ticket goes out. */
  private async readClientFinished(
    clientHs: Buffer,
    clientAp: Buffer,
    peer: ClientAuthResult,
  ): Promise<void> {
    const { channel, hash, suite, cfg } = this;
    await channel.readFinished(finishedMac(hash, clientHs, channel.transcript.hash()), "client");
    channel.io.setReadProtection(protection13(suite, clientAp));
    const resumptionSecret = this.schedule!.resumption(channel.transcript.hash());
    const createdAt = this.accepted?.state.createdAt ?? Date.now();
    const { peerCertificates, authorized } = peer;
    writeTicket(channel.io, cfg, { suite, hash, resumptionSecret, peerCertificates, authorized, createdAt });
    resumptionSecret.fill(0);
    await channel.io.flush();
  }
}

/** A ServerHello body (or HelloRetryRequest, by its random) answering `hello`. */
function serverHelloBody(
  hello: ClientHelloInfo,
  suite: CipherSuite,
  random: Buffer,
  extensions: Extension[],
): Buffer {
  return encodeServerHello({
    version: ProtocolVersion.TLS12,
    random,
    sessionId: hello.sessionId,
    cipherSuite: suite.id,
    compressionMethod: 0,
    extensions,
  });
}

/** The client's key shares, checked against its own supported_groups (RFC 8446 §4.2.8). */
function clientShares(hello: ClientHelloInfo): KeyShareEntry[] {
  const ext = findExtension(hello.extensions, ExtensionType.key_share);
  if (!ext || !hello.groups)
    fail(AlertDescription.missing_extension, "TLS 1.3 ClientHello without key_share or supported_groups");
  const shares = decodeClientKeyShare(ext.data);
  if (shares.some((s) => !hello.groups!.includes(s.group))) {
    fail(AlertDescription.illegal_parameter, "key share for a group the client does not list");
  }
  return shares;
}

/** certificate_authorities (RFC 8446 §4.2.4) from DER subject names. */
function certificateAuthorities(names: readonly Buffer[]): Extension {
  const list = new Writer();
  for (const n of names) list.vec16(n);
  return { type: ExtensionType.certificate_authorities, data: new Writer().vec16(list.finish()).finish() };
}
