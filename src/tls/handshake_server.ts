/**
 * The server handshake entry point and the TLS 1.1/1.2 server (RFC 5246 §7.3), as a state
 * object whose run() calls one named step per flight, like the client: read the
 * ClientHello, choose, answer, read the client's flight, check it, finish. The key handle
 * signs ServerKeyExchange and decrypts RSA premasters; the private key never leaves it.
 * Once the ClientHello picks TLS 1.3, the configured 1.3 handshake takes over from the same
 * entry point.
 */
import { AlertDescription, TlsError } from "./alert.ts";
import { type CipherSuite, suiteAllowsVersion, suiteById } from "./cipher_suites.ts";
import { type ClientHelloInfo, negotiateAlpn, negotiateVersion, parseClientHello } from "./client_hello.ts";
import {
  DOWNGRADE_TLS11,
  DOWNGRADE_TLS12,
  ExtensionType,
  HandshakeType,
  ProtocolVersion,
} from "./constants.ts";
import { alpnExtension, ecPointFormats, emptyExtension, renegotiationInfo } from "./extensions.ts";
import { HandshakeChannel } from "./handshake_channel.ts";
import type { HandshakeIO, HandshakeResult } from "./handshake_io.ts";
import {
  decodeEcdheClientKeyExchange,
  decodeRsaClientKeyExchange,
  type Extension,
  encodeCertificate12,
  encodeServerHello,
} from "./messages.ts";
import { finishedData, keyBlock, masterSecret, type PrfHash } from "./prf.ts";
import { keyBlockLayout, protectionFor, type RecordProtection, splitKeyBlock } from "./protection.ts";
import { publicRandom } from "./public_random.ts";
import {
  type ClientIdentity,
  certificateRequestBody,
  checkCertificateVerify,
  readClientCertificate,
} from "./server_client_auth.ts";
import type { ServerConfig } from "./server_config.ts";
import { decryptPremaster, ecdheServerKeyExchange, type SuiteChoice, selectSuite } from "./server_kx.ts";
import { encodeNewSessionTicket12, type SessionState } from "./session.ts";

const EMPTY = Buffer.alloc(0);

/** The highest version this server speaks: 1.3 only when a 1.3 handshake is configured. */
export function highestVersion(cfg: ServerConfig): ProtocolVersion {
  if (cfg.tls13 && cfg.maxVersion >= ProtocolVersion.TLS13) return ProtocolVersion.TLS13;
  return Math.min(cfg.maxVersion, ProtocolVersion.TLS12) as ProtocolVersion;
}

/** Runs the server side of a handshake: reads the ClientHello, then the chosen version's handshake. */
export async function serverHandshake(io: HandshakeIO, cfg: ServerConfig): Promise<HandshakeResult> {
  const channel = new HandshakeChannel(io);
  const msg = await channel.expect(HandshakeType.client_hello);
  const hello = parseClientHello(msg);
  const max = highestVersion(cfg);
  const version = negotiateVersion(hello, { min: cfg.minVersion, max });
  if (version === ProtocolVersion.TLS13 && cfg.tls13) return cfg.tls13(channel, cfg, hello);
  return new ServerHandshake12(channel, cfg, hello, version, max).run();
}

/** ServerHello.random: 32 random bytes, the last 8 a downgrade sentinel below our best (RFC 8446 §4.1.3). */
function serverRandomFor(version: ProtocolVersion, max: ProtocolVersion): Buffer {
  const random = publicRandom(32);
  if (version === ProtocolVersion.TLS12 && max >= ProtocolVersion.TLS13) DOWNGRADE_TLS12.copy(random, 24);
  if (version <= ProtocolVersion.TLS11 && max >= ProtocolVersion.TLS12) DOWNGRADE_TLS11.copy(random, 24);
  return random;
}

/** A session the client may resume, with its suite. */
interface Resumable {
  state: SessionState;
  suite: CipherSuite;
  /** Re-checked now: a chain that expired since the full handshake no longer authorizes. */
  authorizationError: string | undefined;
}

/** The ServerHello extensions to answer with. */
interface HelloAnswers {
  ems: boolean;
  etm: boolean;
  ecdhe: boolean;
  ticket: boolean;
}

/** The TLS 1.1/1.2 server from the ClientHello on: a full or an abbreviated handshake. */
class ServerHandshake12 {
  private readonly serverRandom: Buffer;
  private readonly alpn: string | false;

  constructor(
    private readonly channel: HandshakeChannel,
    private readonly cfg: ServerConfig,
    private readonly hello: ClientHelloInfo,
    private readonly version: ProtocolVersion,
    max: ProtocolVersion,
  ) {
    this.serverRandom = serverRandomFor(version, max);
    this.alpn = negotiateAlpn(hello, cfg.alpn);
  }

  /** Resumes the session the client names when it still fits, else runs a full handshake. */
  async run(): Promise<HandshakeResult> {
    this.channel.io.setRecordVersion(this.version);
    const session = this.findSession();
    this.cfg.onDetails?.({ serverName: this.hello.serverName, resumed: session !== undefined });
    return session ? this.resume(session) : this.fullHandshake();
  }

  /** The full handshake (RFC 5246 §7.3). */
  private async fullHandshake(): Promise<HandshakeResult> {
    const { cfg, hello, version } = this;
    const choice = selectSuite(hello, cfg.suites, cfg.groups, cfg.key, version);
    const suite = choice.suite;
    const ems = hello.extendedMasterSecret;
    const etm = this.etmFor(suite);
    const ticket = (cfg.sessions?.tickets ?? false) && hello.sessionTicket !== undefined;
    const sessionId = !ticket && cfg.sessions?.cache ? publicRandom(32) : EMPTY;
    const prfHash = this.useSuite(suite);
    this.writeServerHello(suite, sessionId, { ems, etm, ecdhe: suite.kx !== "rsa", ticket });
    const ecdhe = await this.writeServerFlight(choice);
    const identity = await this.readClientCertificate();
    const master = await this.readClientKeyExchange(prfHash, ecdhe?.share, ems);
    const state: SessionState = {
      version,
      suiteId: suite.id,
      masterSecret: master,
      extendedMasterSecret: ems,
      createdAt: Date.now(),
      peerCertificates: identity?.chain ?? [],
      authorized: identity?.authorized ?? false,
    };
    try {
      await this.readCertificateVerify(identity);
      // ChangeCipherSpec and Finished: the client's first, then NewSessionTicket and ours.
      const keys = this.protections(suite, prfHash, master, etm);
      this.channel.io.setPendingRead(keys.client);
      await this.readClientFinished(prfHash, master);
      if (ticket) this.writeTicket(state);
      this.writeServerFinished(prfHash, master, keys.server);
      await this.channel.io.flush();
      if (sessionId.length > 0) cfg.sessions?.remember(sessionId, state);
    } finally {
      master.fill(0);
    }
    return this.result(suite, state, identity?.authorizationError);
  }

  /** Certificate, ServerKeyExchange (ECDHE), CertificateRequest, ServerHelloDone; returns the ECDHE share. */
  private async writeServerFlight(choice: SuiteChoice) {
    const { channel, cfg, version } = this;
    channel.write(HandshakeType.certificate, encodeCertificate12(cfg.certificateChain));
    const ecdhe =
      choice.suite.kx === "rsa"
        ? undefined
        : await ecdheServerKeyExchange(cfg.key, choice, version, this.hello.random, this.serverRandom);
    if (ecdhe) channel.write(HandshakeType.server_key_exchange, ecdhe.body);
    if (cfg.clientAuth)
      channel.write(HandshakeType.certificate_request, certificateRequestBody(cfg.clientAuth, version));
    channel.write(HandshakeType.server_hello_done, EMPTY);
    await channel.io.flush();
    return ecdhe;
  }

  /** The client's Certificate, when one was requested. */
  private async readClientCertificate(): Promise<ClientIdentity | undefined> {
    if (!this.cfg.clientAuth) return undefined;
    const msg = await this.channel.expect(HandshakeType.certificate);
    return readClientCertificate(msg, this.cfg.clientAuth);
  }

  /** ClientKeyExchange: the premaster (agreed or decrypted by the key handle); returns the master secret. */
  private async readClientKeyExchange(
    prfHash: PrfHash,
    share: { agree(peer: Buffer): Buffer } | undefined,
    ems: boolean,
  ): Promise<Buffer> {
    const { channel, cfg, hello } = this;
    const msg = await channel.expect(HandshakeType.client_key_exchange);
    const premaster = share
      ? share.agree(decodeEcdheClientKeyExchange(msg.body))
      : await decryptPremaster(cfg.key, decodeRsaClientKeyExchange(msg.body), hello.legacyVersion);
    const sessionHash = ems ? channel.transcript.hash() : undefined;
    const master = masterSecret(prfHash, premaster, hello.random, this.serverRandom, sessionHash);
    premaster.fill(0);
    return master;
  }

  /** CertificateVerify, when the client sent a certificate: its signature over the messages before it. */
  private async readCertificateVerify(identity: ClientIdentity | undefined): Promise<void> {
    const { channel } = this;
    if (identity?.publicKey) {
      const signed = channel.transcript.bytes();
      const msg = await channel.expect(HandshakeType.certificate_verify);
      checkCertificateVerify(msg, identity.publicKey, signed, this.version);
    }
    channel.transcript.releaseMessages();
  }

  /**
   * The session the client's ticket or session ID names, when it is fresh and still fits:
   * same version, a suite both sides still enable, extended master secret in both the session
   * and the new ClientHello (RFC 7627 §5.3), and a client chain that still validates when one
   * is required. A session made with extended master secret offered by a ClientHello without it
   * aborts the handshake; a session made without it is never resumed (full handshake instead).
   */
  private findSession(): Resumable | undefined {
    const { cfg, hello } = this;
    const store = cfg.sessions;
    if (!store) return undefined;
    const ticket = hello.sessionTicket;
    const state =
      ticket && ticket.length > 0 && store.tickets ? store.openTicket(ticket) : store.recall(hello.sessionId);
    if (!state) return undefined;
    const suite = suiteById(state.suiteId);
    if (!suite || !this.resumable(state, suite)) {
      state.masterSecret.fill(0);
      if (state.extendedMasterSecret && !hello.extendedMasterSecret) {
        throw new TlsError(
          AlertDescription.handshake_failure,
          "client offered a session made with extended master secret without the extension (RFC 7627 §5.3)",
        );
      }
      return undefined;
    }
    const authorizationError = this.recheckClient(state);
    if (cfg.clientAuth?.require && !state.authorized) {
      state.masterSecret.fill(0);
      return undefined;
    }
    return { state, suite, authorizationError };
  }

  /** Whether a recalled session fits this connection (version, suite, EMS on both sides). */
  private resumable(state: SessionState, suite: CipherSuite): boolean {
    const { cfg, hello, version } = this;
    return (
      state.version === version &&
      state.masterSecret.length === 48 &&
      cfg.suites.includes(suite) &&
      hello.cipherSuites.includes(suite.id) &&
      suiteAllowsVersion(suite, version) &&
      state.extendedMasterSecret &&
      hello.extendedMasterSecret
    );
  }

  /** Validates a resumed session's client chain again now; returns why it no longer authorizes. */
  private recheckClient(state: SessionState): string | undefined {
    const auth = this.cfg.clientAuth;
    if (auth && state.peerCertificates.length > 0) {
      const verdict = auth.verify(state.peerCertificates);
      state.authorized = verdict.ok;
      return verdict.ok ? undefined : verdict.reason;
    }
    if (!auth) return undefined;
    state.authorized = false;
    return "client sent no certificate";
  }

  /** The abbreviated handshake (RFC 5246 §7.3, RFC 5077 §3.1): the server finishes first. */
  private async resume(session: Resumable): Promise<HandshakeResult> {
    const { cfg, hello, channel } = this;
    const { state, suite } = session;
    const prfHash = this.useSuite(suite);
    channel.transcript.releaseMessages();
    // A resumed ticket is replaced by a fresh one under the current ticket key.
    const renew = (cfg.sessions?.tickets ?? false) && hello.sessionTicket !== undefined;
    const etm = this.etmFor(suite);
    this.writeServerHello(suite, hello.sessionId, {
      ems: state.extendedMasterSecret,
      etm,
      ecdhe: false,
      ticket: renew,
    });
    const master = state.masterSecret;
    try {
      if (renew) this.writeTicket(state);
      const keys = this.protections(suite, prfHash, master, etm);
      this.writeServerFinished(prfHash, master, keys.server);
      channel.io.setPendingRead(keys.client);
      await channel.io.flush();
      await this.readClientFinished(prfHash, master);
    } finally {
      master.fill(0);
    }
    return this.result(suite, state, session.authorizationError);
  }

  /** Chooses the transcript hash for the suite: its PRF hash, MD5||SHA-1 before TLS 1.2. */
  private useSuite(suite: CipherSuite): PrfHash {
    const prfHash: PrfHash = this.version >= ProtocolVersion.TLS12 ? suite.prfHash : "md5-sha1";
    this.channel.transcript.useHash(prfHash);
    return prfHash;
  }

  /** Encrypt-then-MAC when both sides want it and the suite is CBC (RFC 7366). */
  private etmFor(suite: CipherSuite): boolean {
    return this.cfg.encryptThenMac && this.hello.encryptThenMac && suite.mac !== undefined;
  }

  /** ServerHello, its extensions only answers to what the client offered (RFC 5246 §7.4.1.4). */
  private writeServerHello(suite: CipherSuite, sessionId: Buffer, answers: HelloAnswers): void {
    const exts: Extension[] = [];
    if (this.hello.secureRenegotiation) exts.push(renegotiationInfo());
    if (answers.ems) exts.push(emptyExtension(ExtensionType.extended_master_secret));
    if (answers.etm) exts.push(emptyExtension(ExtensionType.encrypt_then_mac));
    if (answers.ecdhe && this.hello.pointFormats) exts.push(ecPointFormats());
    if (this.alpn !== false) exts.push(alpnExtension([this.alpn]));
    if (answers.ticket) exts.push(emptyExtension(ExtensionType.session_ticket));
    const body = encodeServerHello({
      version: this.version,
      random: this.serverRandom,
      sessionId,
      cipherSuite: suite.id,
      compressionMethod: 0,
      extensions: exts,
    });
    this.channel.write(HandshakeType.server_hello, body);
  }

  /** Both directions' record protection from the master secret (RFC 5246 §6.3). */
  private protections(
    suite: CipherSuite,
    prfHash: PrfHash,
    master: Buffer,
    etm: boolean,
  ): { client: RecordProtection; server: RecordProtection } {
    const [m, k, i] = keyBlockLayout(suite);
    const block = keyBlock(prfHash, master, this.hello.random, this.serverRandom, 2 * (m + k + i));
    const keys = splitKeyBlock(suite, block);
    block.fill(0);
    return { client: protectionFor(suite, keys.client, etm), server: protectionFor(suite, keys.server, etm) };
  }

  /** The client's ChangeCipherSpec and Finished. */
  private async readClientFinished(prfHash: PrfHash, master: Buffer): Promise<void> {
    const { channel } = this;
    await channel.io.readChangeCipherSpec();
    await channel.readFinished(finishedData(prfHash, master, "client", channel.transcript.hash()), "client");
  }

  /** Our ChangeCipherSpec and Finished. */
  private writeServerFinished(prfHash: PrfHash, master: Buffer, next: RecordProtection): void {
    const { channel } = this;
    channel.io.writeChangeCipherSpec(next);
    channel.write(HandshakeType.finished, finishedData(prfHash, master, "server", channel.transcript.hash()));
  }

  /** NewSessionTicket (RFC 5077 §3.3), sealing the session under the current ticket key. */
  private writeTicket(state: SessionState): void {
    const store = this.cfg.sessions!;
    const body = encodeNewSessionTicket12(store.lifetimeSeconds, store.sealTicket(state));
    this.channel.write(HandshakeType.new_session_ticket, body);
  }

  private result(
    suite: CipherSuite,
    state: SessionState,
    authorizationError: string | undefined,
  ): HandshakeResult {
    return {
      version: this.version,
      suite,
      peerCertificates: state.peerCertificates,
      authorized: state.authorized,
      authorizationError,
      alpnProtocol: this.alpn,
      // No postHandshake: the connection refuses renegotiation with a warning, anything else fatally.
    };
  }
}
