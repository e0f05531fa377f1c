/**
 * The server handshake for TLS 1.3 (RFC 8446 §2), from a ClientHello that chose 1.3:
 * HelloRetryRequest when the client guessed no group we take, the key schedule, a
 * CertificateVerify signed by the key handle, optional client authentication, and
 * post-handshake KeyUpdate.
 */
import { randomBytes } from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";
import { type ClientHelloInfo, negotiateAlpn, parseClientHello } from "./client_hello.ts";
import { Writer } from "./codec.ts";
import type { HandshakeResult } from "./conn.ts";
import { ExtensionType, HandshakeType, ProtocolVersion } from "./constants.ts";
import { alpnExtension, findExtension, u16ListExtension } from "./extensions.ts";
import { expectFinished, expectType, type HandshakeIO, type HandshakeMessage } from "./handshake_io.ts";
import { messageHash, protection13, TrafficSecrets, writeCertificateAndVerify } from "./handshake13.ts";
import { finishedMac, hashMessages, KeySchedule } from "./key_schedule.ts";
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
import type { ServerConfig } from "./server_config.ts";
import { acceptPsk, writeTicket } from "./server_psk13.ts";
import { chooseScheme, verifyHandshakeSignature, verifySchemeCodes } from "./signature.ts";
import { leafPublicKey } from "./verify_peer.ts";

function fail(alert: AlertDescription, message: string): never {
  throw new TlsError(alert, message);
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

/** Runs a TLS 1.3 server handshake for a ClientHello that selected TLS 1.3. */
export async function serverHandshake13(
  io: HandshakeIO,
  cfg: ServerConfig,
  first: ClientHelloInfo,
): Promise<HandshakeResult> {
  let hello = first;
  io.allowCompatChangeCipherSpec();
  io.setRecordVersion(ProtocolVersion.TLS12);
  const suite = cfg.suites.find((s) => s.kx === "tls13" && hello.cipherSuites.includes(s.id));
  if (!suite) fail(AlertDescription.handshake_failure, "no TLS 1.3 cipher suite in common");
  const hash = suite.prfHash;
  if (!hello.signatureSchemes)
    fail(AlertDescription.missing_extension, "TLS 1.3 ClientHello without signature_algorithms");
  const scheme = chooseScheme(cfg.key, ProtocolVersion.TLS13, hello.signatureSchemes);
  let transcript: Buffer[] = [hello.message.raw];

  // Key share: use one the client sent, or ask for one with HelloRetryRequest.
  let shares = clientShares(hello);
  let group = cfg.groups.find((g) => shares.some((s) => s.group === g));
  let sentCcs = false;
  if (group === undefined) {
    const wanted = cfg.groups.find((g) => hello.groups!.includes(g));
    if (wanted === undefined) fail(AlertDescription.handshake_failure, "no key exchange group in common");
    const hrr = io.writeMessage(
      HandshakeType.server_hello,
      encodeServerHello({
        version: ProtocolVersion.TLS12,
        random: HRR_RANDOM,
        sessionId: hello.sessionId,
        cipherSuite: suite.id,
        compressionMethod: 0,
        extensions: [serverSupportedVersion(ProtocolVersion.TLS13), hrrKeyShare(wanted)],
      }),
    );
    transcript = [messageHash(hash, transcript[0]!), hrr];
    io.writeChangeCipherSpec(NULL_PROTECTION);
    sentCcs = true;
    await io.flush();
    const msg = await io.readMessage();
    expectType(msg, HandshakeType.client_hello);
    const second = parseClientHello(msg);
    if (!second.sessionId.equals(hello.sessionId) || !second.cipherSuites.includes(suite.id)) {
      fail(AlertDescription.illegal_parameter, "the second ClientHello does not match the first");
    }
    if (!second.supportedVersions?.includes(ProtocolVersion.TLS13))
      fail(AlertDescription.illegal_parameter, "the second ClientHello dropped TLS 1.3");
    hello = second;
    transcript.push(msg.raw);
    shares = clientShares(hello);
    if (shares.length !== 1 || shares[0]!.group !== wanted)
      fail(AlertDescription.illegal_parameter, "the second ClientHello has not the key share asked for");
    group = wanted;
  }
  if (!isSupportedGroup(group)) fail(AlertDescription.internal_error, "unsupported group configured");
  // Resumption is decided on the ClientHello that goes on (the second one after an HRR).
  const accepted = acceptPsk(cfg, hello, hash, transcript.slice(0, -1));
  const ours = generateKeyShare(group as NamedGroup);
  const shared = ours.agree(shares.find((s) => s.group === group)!.keyExchange);

  // ServerHello, then everything else under handshake keys.
  transcript.push(
    io.writeMessage(
      HandshakeType.server_hello,
      encodeServerHello({
        version: ProtocolVersion.TLS12,
        random: randomBytes(32),
        sessionId: hello.sessionId,
        cipherSuite: suite.id,
        compressionMethod: 0,
        extensions: [
          serverSupportedVersion(ProtocolVersion.TLS13),
          serverKeyShare({ group, keyExchange: ours.publicKey }),
          ...(accepted ? [serverPsk(accepted.index)] : []),
        ],
      }),
    ),
  );
  const schedule = new KeySchedule(hash, accepted?.state.masterSecret);
  accepted?.state.masterSecret.fill(0);
  const [clientHs, serverHs] = schedule.handshake(shared, hashMessages(hash, transcript));
  shared.fill(0);
  if (sentCcs) io.setWriteProtection(protection13(suite, serverHs));
  else io.writeChangeCipherSpec(protection13(suite, serverHs));
  io.setReadProtection(protection13(suite, clientHs));

  const alpn = negotiateAlpn(hello, cfg.alpn);
  const ee: Extension[] = [];
  if (hello.serverName) ee.push({ type: ExtensionType.server_name, data: Buffer.alloc(0) });
  if (alpn !== false) ee.push(alpnExtension([alpn]));
  transcript.push(io.writeMessage(HandshakeType.encrypted_extensions, encodeEncryptedExtensions(ee)));
  cfg.onDetails?.({ serverName: hello.serverName, resumed: accepted !== undefined });
  // A resumed session authenticates by the PSK: no certificates either way (RFC 8446 §4.3.2).
  const clientAuth = accepted ? undefined : cfg.clientAuth;
  if (clientAuth) {
    const exts = [
      u16ListExtension(ExtensionType.signature_algorithms, verifySchemeCodes(ProtocolVersion.TLS13)),
    ];
    if (clientAuth.authorities.length > 0) exts.push(certificateAuthorities(clientAuth.authorities));
    transcript.push(
      io.writeMessage(
        HandshakeType.certificate_request,
        encodeCertificateRequest13({ context: Buffer.alloc(0), extensions: exts }),
      ),
    );
  }
  if (!accepted) {
    const signer = { key: cfg.key, scheme };
    await writeCertificateAndVerify(
      io,
      transcript,
      hash,
      "server",
      Buffer.alloc(0),
      cfg.certificateChain,
      signer,
    );
  }
  transcript.push(
    io.writeMessage(HandshakeType.finished, finishedMac(hash, serverHs, hashMessages(hash, transcript))),
  );
  const [clientAp, serverAp] = schedule.application(hashMessages(hash, transcript));
  io.setWriteProtection(protection13(suite, serverAp));
  await io.flush();

  // The client's flight: [Certificate, CertificateVerify,] Finished
  let peerCertificates: Buffer[] = accepted?.state.peerCertificates ?? [];
  let authorized = accepted ? accepted.state.authorized && !accepted.authorizationError : false;
  let authorizationError: string | undefined = accepted
    ? accepted.authorizationError
    : cfg.clientAuth
      ? undefined
      : "no client certificate requested";
  let msg = await io.readMessage();
  if (clientAuth) {
    expectType(msg, HandshakeType.certificate);
    const cert = decodeCertificate13(msg.body);
    if (cert.context.length !== 0)
      fail(AlertDescription.illegal_parameter, "client Certificate has the wrong request context");
    transcript.push(msg.raw);
    peerCertificates = cert.chain;
    if (cert.chain.length === 0) {
      authorizationError = "client sent no certificate";
      if (clientAuth.require)
        throw new TlsError(AlertDescription.certificate_required, authorizationError, "certificate");
    } else {
      const verdict = clientAuth.verify(cert.chain);
      authorized = verdict.ok;
      authorizationError = verdict.ok ? undefined : verdict.reason;
      if (!verdict.ok && clientAuth.require) throw new TlsError(verdict.alert, verdict.reason, "certificate");
      msg = await io.readMessage();
      expectType(msg, HandshakeType.certificate_verify);
      const cv = decodeDigitallySigned(msg.body, true);
      const publicKey = leafPublicKey(cert.chain[0]!, "client");
      verifyHandshakeSignature(
        publicKey,
        cv.scheme,
        certificateVerifyContent("client", hashMessages(hash, transcript)),
        cv.signature,
        ProtocolVersion.TLS13,
      );
      transcript.push(msg.raw);
    }
    msg = await io.readMessage();
  }
  expectFinished(msg, finishedMac(hash, clientHs, hashMessages(hash, transcript)), "client", transcript);
  io.setReadProtection(protection13(suite, clientAp));
  const resumptionSecret = schedule.resumption(hashMessages(hash, transcript));
  const createdAt = accepted?.state.createdAt ?? Date.now();
  writeTicket(io, cfg, { suite, hash, resumptionSecret, peerCertificates, authorized, createdAt });
  resumptionSecret.fill(0);
  await io.flush();
  clientHs.fill(0);
  serverHs.fill(0);

  const secrets = new TrafficSecrets(io, suite, clientAp, serverAp);
  const postHandshake = (m: HandshakeMessage): void => {
    if (m.type !== HandshakeType.key_update) {
      fail(
        AlertDescription.unexpected_message,
        `unexpected ${HandshakeType[m.type] ?? m.type} after the handshake`,
      );
    }
    secrets.onKeyUpdate(m.body);
  };
  return {
    version: ProtocolVersion.TLS13,
    suite,
    peerCertificates,
    authorized,
    authorizationError,
    alpnProtocol: alpn,
    postHandshake,
  };
}
