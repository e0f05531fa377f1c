/**
 * The server handshake entry point and the TLS 1.1/1.2 server (RFC 5246 §7.3), written
 * straight through like the client: read the ClientHello, choose, answer, read the
 * client's flight, check it, finish. The key handle signs ServerKeyExchange and decrypts
 * RSA premasters; the private key never leaves it. Once the ClientHello picks TLS 1.3,
 * the configured 1.3 handshake takes over from the same entry point.
 */
import { randomBytes } from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";
import { type CipherSuite, suiteAllowsVersion, suiteById } from "./cipher_suites.ts";
import { type ClientHelloInfo, negotiateAlpn, negotiateVersion, parseClientHello } from "./client_hello.ts";
import type { HandshakeResult } from "./conn.ts";
import {
  DOWNGRADE_TLS11,
  DOWNGRADE_TLS12,
  ExtensionType,
  HandshakeType,
  ProtocolVersion,
} from "./constants.ts";
import { alpnExtension, ecPointFormats, emptyExtension, renegotiationInfo } from "./extensions.ts";
import { expectFinished, expectType, type HandshakeIO, type HandshakeMessage } from "./handshake_io.ts";
import {
  decodeEcdheClientKeyExchange,
  decodeRsaClientKeyExchange,
  type Extension,
  encodeCertificate12,
  encodeServerHello,
} from "./messages.ts";
import { finishedData, keyBlock, masterSecret, type PrfHash, transcriptHash } from "./prf.ts";
import { keyBlockLayout, protectionFor, type RecordProtection, splitKeyBlock } from "./protection.ts";
import {
  certificateRequestBody,
  checkCertificateVerify,
  readClientCertificate,
} from "./server_client_auth.ts";
import type { ServerConfig } from "./server_config.ts";
import { decryptPremaster, ecdheServerKeyExchange, selectSuite } from "./server_kx.ts";
import { encodeNewSessionTicket12, type SessionState } from "./session.ts";

const EMPTY = Buffer.alloc(0);

/** The highest version this server speaks: 1.3 only when a 1.3 handshake is configured. */
export function highestVersion(cfg: ServerConfig): ProtocolVersion {
  if (cfg.tls13 && cfg.maxVersion >= ProtocolVersion.TLS13) return ProtocolVersion.TLS13;
  return Math.min(cfg.maxVersion, ProtocolVersion.TLS12) as ProtocolVersion;
}

/** Runs the server side of a handshake: reads the ClientHello, then the chosen version's handshake. */
export async function serverHandshake(io: HandshakeIO, cfg: ServerConfig): Promise<HandshakeResult> {
  const msg = await io.readMessage();
  expectType(msg, HandshakeType.client_hello);
  const hello = parseClientHello(msg);
  const max = highestVersion(cfg);
  const version = negotiateVersion(hello, { min: cfg.minVersion, max });
  if (version === ProtocolVersion.TLS13 && cfg.tls13) return cfg.tls13(io, cfg, hello);
  return serverHandshake12(io, cfg, hello, version, max);
}

/** ServerHello.random: 32 random bytes, the last 8 a downgrade sentinel below our best (RFC 8446 §4.1.3). */
function serverRandomFor(version: ProtocolVersion, max: ProtocolVersion): Buffer {
  const random = randomBytes(32);
  if (version === ProtocolVersion.TLS12 && max >= ProtocolVersion.TLS13) DOWNGRADE_TLS12.copy(random, 24);
  if (version <= ProtocolVersion.TLS11 && max >= ProtocolVersion.TLS12) DOWNGRADE_TLS11.copy(random, 24);
  return random;
}

/** Per-connection facts both the full and the abbreviated handshake use. */
interface Connection12 {
  io: HandshakeIO;
  cfg: ServerConfig;
  hello: ClientHelloInfo;
  version: ProtocolVersion;
  serverRandom: Buffer;
  alpn: string | false;
  transcript: Buffer[];
}

async function serverHandshake12(
  io: HandshakeIO,
  cfg: ServerConfig,
  hello: ClientHelloInfo,
  version: ProtocolVersion,
  max: ProtocolVersion,
): Promise<HandshakeResult> {
  const c: Connection12 = {
    io,
    cfg,
    hello,
    version,
    serverRandom: serverRandomFor(version, max),
    alpn: negotiateAlpn(hello, cfg.alpn),
    transcript: [hello.message.raw],
  };
  io.setRecordVersion(version);
  const session = findSession(c);
  cfg.onDetails?.({ serverName: hello.serverName, resumed: session !== undefined });
  return session ? resume(c, session) : fullHandshake(c);
}

/** ServerHello extensions: only answers to what the client offered (RFC 5246 §7.4.1.4). */
function serverHelloExtensions(
  c: Connection12,
  opts: { ems: boolean; etm: boolean; ecdhe: boolean; ticket: boolean },
): Extension[] {
  const exts: Extension[] = [];
  if (c.hello.secureRenegotiation) exts.push(renegotiationInfo());
  if (opts.ems) exts.push(emptyExtension(ExtensionType.extended_master_secret));
  if (opts.etm) exts.push(emptyExtension(ExtensionType.encrypt_then_mac));
  if (opts.ecdhe && c.hello.pointFormats) exts.push(ecPointFormats());
  if (c.alpn !== false) exts.push(alpnExtension([c.alpn]));
  if (opts.ticket) exts.push(emptyExtension(ExtensionType.session_ticket));
  return exts;
}

function writeServerHello(c: Connection12, suite: CipherSuite, sessionId: Buffer, exts: Extension[]): void {
  const body = encodeServerHello({
    version: c.version,
    random: c.serverRandom,
    sessionId,
    cipherSuite: suite.id,
    compressionMethod: 0,
    extensions: exts,
  });
  c.transcript.push(c.io.writeMessage(HandshakeType.server_hello, body));
}

function prfHashOf(c: Connection12, suite: CipherSuite): PrfHash {
  return c.version >= ProtocolVersion.TLS12 ? suite.prfHash : "md5-sha1";
}

async function fullHandshake(c: Connection12): Promise<HandshakeResult> {
  const { io, cfg, hello, version, transcript } = c;
  const choice = selectSuite(hello, cfg.suites, cfg.groups, cfg.key, version);
  const suite = choice.suite;
  const ems = hello.extendedMasterSecret;
  const etm = cfg.encryptThenMac && hello.encryptThenMac && suite.mac !== undefined;
  const ticket = (cfg.sessions?.tickets ?? false) && hello.sessionTicket !== undefined;
  const sessionId = !ticket && cfg.sessions?.cache ? randomBytes(32) : EMPTY;
  const prfHash = prfHashOf(c, suite);

  // ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone
  const exts = serverHelloExtensions(c, { ems, etm, ecdhe: suite.kx !== "rsa", ticket });
  writeServerHello(c, suite, sessionId, exts);
  transcript.push(io.writeMessage(HandshakeType.certificate, encodeCertificate12(cfg.certificateChain)));
  const ecdhe =
    suite.kx === "rsa"
      ? undefined
      : await ecdheServerKeyExchange(cfg.key, choice, version, hello.random, c.serverRandom);
  if (ecdhe) transcript.push(io.writeMessage(HandshakeType.server_key_exchange, ecdhe.body));
  if (cfg.clientAuth) {
    const body = certificateRequestBody(cfg.clientAuth, version);
    transcript.push(io.writeMessage(HandshakeType.certificate_request, body));
  }
  transcript.push(io.writeMessage(HandshakeType.server_hello_done, EMPTY));
  await io.flush();

  // Client Certificate, ClientKeyExchange, CertificateVerify
  let msg = await io.readMessage();
  const identity = cfg.clientAuth
    ? readClientCertificate(expectAndRecord(c, msg, HandshakeType.certificate), cfg.clientAuth)
    : undefined;
  if (identity) msg = await io.readMessage();
  expectAndRecord(c, msg, HandshakeType.client_key_exchange);
  const premaster = ecdhe
    ? ecdhe.share.agree(decodeEcdheClientKeyExchange(msg.body))
    : await decryptPremaster(cfg.key, decodeRsaClientKeyExchange(msg.body), hello.legacyVersion);
  const sessionHash = ems ? transcriptHash(prfHash, transcript) : undefined;
  const master = masterSecret(prfHash, premaster, hello.random, c.serverRandom, sessionHash);
  premaster.fill(0);
  if (identity?.publicKey) {
    msg = await io.readMessage();
    expectType(msg, HandshakeType.certificate_verify);
    checkCertificateVerify(msg, identity.publicKey, transcript, version);
    transcript.push(msg.raw);
  }

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
    // ChangeCipherSpec and Finished: the client's first, then NewSessionTicket and ours.
    const keys = protections(c, suite, prfHash, master, etm);
    io.setPendingRead(keys.client);
    await readClientFinished(c, prfHash, master);
    if (ticket) writeTicket(c, state);
    writeServerFinished(c, prfHash, master, keys.server);
    await io.flush();
    if (sessionId.length > 0) cfg.sessions?.remember(sessionId, state);
  } finally {
    master.fill(0);
  }
  return result(c, suite, state, identity?.authorizationError);
}

/** A session the client may resume, with its suite. */
interface Resumable {
  state: SessionState;
  suite: CipherSuite;
  /** Re-checked now: a chain that expired since the full handshake no longer authorizes. */
  authorizationError: string | undefined;
}

/**
 * The session the client's ticket or session ID names, when it is fresh and still fits:
 * same version, a suite both sides still enable, extended master secret in both the session
 * and the new ClientHello (RFC 7627 §5.3), and a client chain that still validates when one
 * is required. A session made with extended master secret offered by a ClientHello without it
 * aborts the handshake; a session made without it is never resumed (full handshake instead).
 */
function findSession(c: Connection12): Resumable | undefined {
  const store = c.cfg.sessions;
  if (!store) return undefined;
  const ticket = c.hello.sessionTicket;
  const state =
    ticket && ticket.length > 0 && store.tickets ? store.openTicket(ticket) : store.recall(c.hello.sessionId);
  if (!state) return undefined;
  const suite = suiteById(state.suiteId);
  if (
    !suite ||
    state.version !== c.version ||
    state.masterSecret.length !== 48 ||
    !c.cfg.suites.includes(suite) ||
    !c.hello.cipherSuites.includes(suite.id) ||
    !suiteAllowsVersion(suite, c.version) ||
    !state.extendedMasterSecret ||
    !c.hello.extendedMasterSecret
  ) {
    state.masterSecret.fill(0);
    if (state.extendedMasterSecret && !c.hello.extendedMasterSecret) {
      throw new TlsError(
        AlertDescription.handshake_failure,
        "client offered a session made with extended master secret without the extension (RFC 7627 §5.3)",
      );
    }
    return undefined;
  }
  let authorizationError: string | undefined;
  const auth = c.cfg.clientAuth;
  if (auth && state.peerCertificates.length > 0) {
    const verdict = auth.verify(state.peerCertificates);
    state.authorized = verdict.ok;
    authorizationError = verdict.ok ? undefined : verdict.reason;
  } else if (auth) {
    state.authorized = false;
    authorizationError = "client sent no certificate";
  }
  if (auth?.require && !state.authorized) {
    state.masterSecret.fill(0);
    return undefined;
  }
  return { state, suite, authorizationError };
}

/** The abbreviated handshake (RFC 5246 §7.3, RFC 5077 §3.1): the server finishes first. */
async function resume(c: Connection12, session: Resumable): Promise<HandshakeResult> {
  const { io, cfg, hello } = c;
  const { state, suite } = session;
  const prfHash = prfHashOf(c, suite);
  const etm = cfg.encryptThenMac && hello.encryptThenMac && suite.mac !== undefined;
  // A resumed ticket is replaced by a fresh one under the current ticket key.
  const renew = (cfg.sessions?.tickets ?? false) && hello.sessionTicket !== undefined;
  const exts = serverHelloExtensions(c, {
    ems: state.extendedMasterSecret,
    etm,
    ecdhe: false,
    ticket: renew,
  });
  writeServerHello(c, suite, hello.sessionId, exts);
  const master = state.masterSecret;
  try {
    if (renew) writeTicket(c, state);
    const keys = protections(c, suite, prfHash, master, etm);
    writeServerFinished(c, prfHash, master, keys.server);
    io.setPendingRead(keys.client);
    await io.flush();
    await readClientFinished(c, prfHash, master);
  } finally {
    master.fill(0);
  }
  return result(c, suite, state, session.authorizationError);
}

function expectAndRecord(c: Connection12, msg: HandshakeMessage, type: HandshakeType): HandshakeMessage {
  expectType(msg, type);
  c.transcript.push(msg.raw);
  return msg;
}

/** Both directions' record protection from the master secret (RFC 5246 §6.3). */
function protections(
  c: Connection12,
  suite: CipherSuite,
  prfHash: PrfHash,
  master: Buffer,
  etm: boolean,
): { client: RecordProtection; server: RecordProtection } {
  const [m, k, i] = keyBlockLayout(suite);
  const block = keyBlock(prfHash, master, c.hello.random, c.serverRandom, 2 * (m + k + i));
  const keys = splitKeyBlock(suite, block);
  block.fill(0);
  return { client: protectionFor(suite, keys.client, etm), server: protectionFor(suite, keys.server, etm) };
}

async function readClientFinished(c: Connection12, prfHash: PrfHash, master: Buffer): Promise<void> {
  await c.io.readChangeCipherSpec();
  const msg = await c.io.readMessage();
  expectFinished(
    msg,
    finishedData(prfHash, master, "client", transcriptHash(prfHash, c.transcript)),
    "client",
    c.transcript,
  );
}

function writeServerFinished(
  c: Connection12,
  prfHash: PrfHash,
  master: Buffer,
  next: RecordProtection,
): void {
  c.io.writeChangeCipherSpec(next);
  const verifyData = finishedData(prfHash, master, "server", transcriptHash(prfHash, c.transcript));
  c.transcript.push(c.io.writeMessage(HandshakeType.finished, verifyData));
}

function writeTicket(c: Connection12, state: SessionState): void {
  const store = c.cfg.sessions!;
  const body = encodeNewSessionTicket12(store.lifetimeSeconds, store.sealTicket(state));
  c.transcript.push(c.io.writeMessage(HandshakeType.new_session_ticket, body));
}

function result(
  c: Connection12,
  suite: CipherSuite,
  state: SessionState,
  authorizationError: string | undefined,
): HandshakeResult {
  return {
    version: c.version,
    suite,
    peerCertificates: state.peerCertificates,
    authorized: state.authorized,
    authorizationError,
    alpnProtocol: c.alpn,
    // No postHandshake: the connection refuses renegotiation with a warning, anything else fatally.
  };
}
