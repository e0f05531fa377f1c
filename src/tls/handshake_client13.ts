/**
 * The client handshake for TLS 1.3 (RFC 8446 §2), from the first ServerHello on:
 * HelloRetryRequest, key schedule, EncryptedExtensions, server authentication, optional
 * client authentication signed by the key handle, Finished, and the post-handshake
 * messages (NewSessionTicket, KeyUpdate).
 */
import { AlertDescription, TlsError } from "./alert.ts";
import type { ClientConfig } from "./config.ts";
import type { HandshakeResult } from "./conn.ts";
import { ExtensionType, HandshakeType, ProtocolVersion } from "./constants.ts";
import { decodeAlpn, decodeU16ListExtension, findExtension } from "./extensions.ts";
import { buildClientHello, encodeHelloBody, type HelloParams } from "./handshake_client.ts";
import { expectFinished, expectType, type HandshakeIO, type HandshakeMessage } from "./handshake_io.ts";
import { messageHash, protection13, TrafficSecrets, writeCertificateAndVerify } from "./handshake13.ts";
import { finishedMac, hashMessages, KeySchedule, type Tls13Hash, ticketPsk } from "./key_schedule.ts";
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
import { chooseScheme, verifyHandshakeSignature } from "./signature.ts";
import { judgeServerChain, leafPublicKey } from "./verify_peer.ts";

/** What the version-neutral first flight hands over. */
export interface Client13Start {
  transcript: Buffer[];
  params: HelloParams;
  serverHello: ServerHello;
}

function fail(alert: AlertDescription, message: string): never {
  throw new TlsError(alert, message);
}

function onlyAllowed(exts: readonly Extension[], allowed: readonly ExtensionType[], where: string): void {
  for (const e of exts) {
    if (!allowed.includes(e.type))
      fail(AlertDescription.unsupported_extension, `extension ${e.type} is not allowed in ${where}`);
  }
}

/** Continues a handshake whose ServerHello selected TLS 1.3. */
export async function clientHandshake13(
  io: HandshakeIO,
  cfg: ClientConfig,
  start: Client13Start,
): Promise<HandshakeResult> {
  let { params, serverHello: sh } = start;
  let transcript = start.transcript;
  io.allowCompatChangeCipherSpec();
  const suite = params.suites.find((s) => s.id === sh.cipherSuite && s.kx === "tls13");
  if (!suite)
    fail(
      AlertDescription.illegal_parameter,
      `server chose a TLS 1.3 cipher suite we did not offer (0x${sh.cipherSuite.toString(16)})`,
    );
  const hash = suite.prfHash;
  let sentCcs = false;

  if (sh.random.equals(HRR_RANDOM)) {
    checkHello(sh, params, "HelloRetryRequest");
    onlyAllowed(
      sh.extensions,
      [ExtensionType.supported_versions, ExtensionType.key_share, ExtensionType.cookie],
      "HelloRetryRequest",
    );
    const groupExt = findExtension(sh.extensions, ExtensionType.key_share);
    const cookieExt = findExtension(sh.extensions, ExtensionType.cookie);
    if (!groupExt && !cookieExt)
      fail(AlertDescription.illegal_parameter, "HelloRetryRequest changes nothing");
    let shares = params.shares;
    if (groupExt) {
      const group = decodeHrrKeyShare(groupExt.data);
      if (!isSupportedGroup(group) || !cfg.groups.includes(group) || shares.some((k) => k.group === group)) {
        fail(
          AlertDescription.illegal_parameter,
          `HelloRetryRequest asks for group ${group}, which we cannot use`,
        );
      }
      shares = [generateKeyShare(group)];
    }
    params = {
      ...params,
      suites: [suite],
      shares,
      cookie: cookieExt ? decodeCookie(cookieExt.data) : undefined,
      // The PSK stays on offer only if the suite chosen can use it (same hash).
      psk: params.psk?.hash === hash ? params.psk : undefined,
    };
    transcript = [messageHash(hash, transcript[0]!), transcript[1]!];
    io.writeChangeCipherSpec(NULL_PROTECTION);
    sentCcs = true;
    const secondHello = encodeHelloBody(buildClientHello(cfg, params), params, transcript);
    transcript.push(io.writeMessage(HandshakeType.client_hello, secondHello));
    await io.flush();
    const msg = await io.readMessage();
    expectType(msg, HandshakeType.server_hello);
    sh = decodeServerHello(msg.body);
    if (sh.random.equals(HRR_RANDOM)) fail(AlertDescription.unexpected_message, "a second HelloRetryRequest");
    if (sh.cipherSuite !== suite.id)
      fail(AlertDescription.illegal_parameter, "ServerHello changed the suite chosen in HelloRetryRequest");
    const version = findExtension(sh.extensions, ExtensionType.supported_versions);
    if (!version || decodeServerSupportedVersion(version.data) !== ProtocolVersion.TLS13) {
      fail(
        AlertDescription.illegal_parameter,
        "the ServerHello after HelloRetryRequest did not select TLS 1.3",
      );
    }
    transcript.push(msg.raw);
  }

  // ServerHello
  checkHello(sh, params, "ServerHello");
  const allowed = [ExtensionType.supported_versions, ExtensionType.key_share];
  if (params.psk) allowed.push(ExtensionType.pre_shared_key);
  onlyAllowed(sh.extensions, allowed, "ServerHello");
  const pskExt = findExtension(sh.extensions, ExtensionType.pre_shared_key);
  const ticket = pskExt ? params.psk : undefined;
  if (pskExt && (decodeServerPsk(pskExt.data) !== 0 || ticket?.hash !== hash)) {
    fail(AlertDescription.illegal_parameter, "server selected a PSK we did not offer");
  }
  const shareExt = findExtension(sh.extensions, ExtensionType.key_share);
  if (!shareExt) fail(AlertDescription.missing_extension, "ServerHello has no key_share");
  const serverShare = decodeServerKeyShare(shareExt.data);
  const ours = params.shares.find((k) => k.group === serverShare.group);
  if (!ours) fail(AlertDescription.illegal_parameter, "server key share is for a group we did not send");
  const shared = ours.agree(serverShare.keyExchange);
  const schedule = new KeySchedule(hash, ticket?.psk);
  const [clientHs, serverHs] = schedule.handshake(shared, hashMessages(hash, transcript));
  shared.fill(0);
  io.setRecordVersion(ProtocolVersion.TLS12);
  io.setReadProtection(protection13(suite, serverHs));

  // EncryptedExtensions
  let msg = await io.readMessage();
  expectType(msg, HandshakeType.encrypted_extensions);
  transcript.push(msg.raw);
  const ee = decodeEncryptedExtensions(msg.body);
  const alpn = checkEncryptedExtensions(ee, cfg);

  // Server authentication (absent when resuming: the ticket vouches for the server).
  const auth = ticket
    ? resumedAuth(cfg, ticket.peerCertificates)
    : await readServerAuth(io, cfg, hash, transcript);
  const { certRequest } = auth;
  msg = await io.readMessage();
  expectFinished(msg, finishedMac(hash, serverHs, hashMessages(hash, transcript)), "server", transcript);
  const [clientAp, serverAp] = schedule.application(hashMessages(hash, transcript));
  // Switch at once: records after the server Finished (tickets, data) use application keys.
  io.setReadProtection(protection13(suite, serverAp));

  // Our flight: [Certificate, CertificateVerify,] Finished
  if (sentCcs) io.setWriteProtection(protection13(suite, clientHs));
  else io.writeChangeCipherSpec(protection13(suite, clientHs));
  if (certRequest) {
    const signer = clientSigner(cfg, certRequest.schemes);
    const chain = signer ? cfg.certificateChain : [];
    await writeCertificateAndVerify(io, transcript, hash, "client", certRequest.context, chain, signer);
  }
  transcript.push(
    io.writeMessage(HandshakeType.finished, finishedMac(hash, clientHs, hashMessages(hash, transcript))),
  );
  io.setWriteProtection(protection13(suite, clientAp));
  await io.flush();
  const resumptionSecret = schedule.resumption(hashMessages(hash, transcript));
  clientHs.fill(0);
  serverHs.fill(0);

  const secrets = new TrafficSecrets(io, suite, serverAp, clientAp);
  const postHandshake = (m: HandshakeMessage): void => {
    switch (m.type) {
      case HandshakeType.new_session_ticket: {
        const nst = decodeNewSessionTicket13(m.body);
        // Only sessions whose server was authenticated are kept for resumption.
        if (cfg.sessionCache && nst.lifetime > 0 && auth.authorized) {
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
        }
        return;
      }
      case HandshakeType.key_update:
        secrets.onKeyUpdate(m.body);
        return;
      default:
        fail(
          AlertDescription.unexpected_message,
          `unexpected ${HandshakeType[m.type] ?? m.type} after the handshake`,
        );
    }
  };
  return {
    version: ProtocolVersion.TLS13,
    suite,
    peerCertificates: auth.chain,
    authorized: auth.authorized,
    authorizationError: auth.authorizationError,
    alpnProtocol: alpn,
    postHandshake,
  };
}

/** What the server's authentication messages established. */
interface ServerAuth {
  certRequest: { context: Buffer; schemes: number[] } | undefined;
  chain: Buffer[];
  authorized: boolean;
  authorizationError: string | undefined;
}

/** Reads [CertificateRequest,] Certificate and CertificateVerify, validating the chain and signature. */
async function readServerAuth(
  io: HandshakeIO,
  cfg: ClientConfig,
  hash: Tls13Hash,
  transcript: Buffer[],
): Promise<ServerAuth> {
  let msg = await io.readMessage();
  let certRequest: { context: Buffer; schemes: number[] } | undefined;
  if (msg.type === HandshakeType.certificate_request) {
    transcript.push(msg.raw);
    const cr = decodeCertificateRequest13(msg.body);
    const sigAlgs = findExtension(cr.extensions, ExtensionType.signature_algorithms);
    if (!sigAlgs) fail(AlertDescription.missing_extension, "CertificateRequest without signature_algorithms");
    certRequest = {
      context: cr.context,
      schemes: decodeU16ListExtension(sigAlgs.data, "signature_algorithms"),
    };
    msg = await io.readMessage();
  }
  expectType(msg, HandshakeType.certificate);
  transcript.push(msg.raw);
  const cert = decodeCertificate13(msg.body);
  if (cert.context.length !== 0)
    fail(AlertDescription.illegal_parameter, "server Certificate has a request context");
  if (cert.chain.length === 0) fail(AlertDescription.decode_error, "server sent no certificate");
  const serverKey = leafPublicKey(cert.chain[0]!, "server");
  const { authorized, authorizationError } = judgeServerChain(cfg, cert.chain);
  msg = await io.readMessage();
  expectType(msg, HandshakeType.certificate_verify);
  const cv = decodeDigitallySigned(msg.body, true);
  verifyHandshakeSignature(
    serverKey,
    cv.scheme,
    certificateVerifyContent("server", hashMessages(hash, transcript)),
    cv.signature,
    ProtocolVersion.TLS13,
  );
  transcript.push(msg.raw);
  return { certRequest, chain: cert.chain, authorized, authorizationError };
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
