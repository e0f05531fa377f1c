/**
 * Targets for every handshake message decoder, fed with captured real messages (openssl
 * handshakes), messages made with the stack's own encoders, and their mutations. Each
 * decoder must refuse bad input with a TlsError only.
 */
import { createPublicKey, randomBytes } from "node:crypto";
import { negotiateAlpn, negotiateVersion, parseClientHello } from "../../src/tls/client_hello.ts";
import { ExtensionType, HandshakeType, ProtocolVersion } from "../../src/tls/constants.ts";
import {
  decodeAlpn,
  decodeRenegotiationInfo,
  decodeServerName,
  decodeU16ListExtension,
  expectEmpty,
} from "../../src/tls/extensions.ts";
import { checkFinished } from "../../src/tls/handshake_io.ts";
import { generateKeyShare, NamedGroup } from "../../src/tls/key_share.ts";
import {
  decodeCertificate12,
  decodeCertificateRequest12,
  decodeDigitallySigned,
  decodeEcdheClientKeyExchange,
  decodeEcdheServerKeyExchange,
  decodeExtensions,
  decodeRsaClientKeyExchange,
  decodeServerHello,
  type Extension,
  encodeServerHello,
} from "../../src/tls/messages.ts";
import {
  cookieExtension,
  decodeCertificate13,
  decodeCertificateRequest13,
  decodeClientKeyShare,
  decodeClientSupportedVersions,
  decodeCookie,
  decodeEncryptedExtensions,
  decodeHrrKeyShare,
  decodeKeyUpdate,
  decodeNewSessionTicket13,
  decodeOfferedPsks,
  decodePskModes,
  decodeServerKeyShare,
  decodeServerPsk,
  decodeServerSupportedVersion,
  encodeEncryptedExtensions,
  encodeNewSessionTicket13,
  HRR_RANDOM,
  hrrKeyShare,
  serverSupportedVersion,
} from "../../src/tls/messages13.ts";
import { decodeNewSessionTicket12 } from "../../src/tls/session.ts";
import { verifyHandshakeSignature } from "../../src/tls/signature.ts";
import type { FuzzTarget } from "../target.ts";
import { bodiesOf, messageTarget, runAll, tlsExpected } from "./tls_shared.ts";

const { TLS11, TLS12, TLS13 } = ProtocolVersion;

/** Decoders for the extensions a server reads in a ClientHello beyond parseClientHello's own. */
function clientExtension(e: Extension): void {
  switch (e.type) {
    case ExtensionType.key_share:
      decodeClientKeyShare(e.data);
      break;
    case ExtensionType.pre_shared_key:
      decodeOfferedPsks(e.data);
      break;
    case ExtensionType.psk_key_exchange_modes:
      decodePskModes(e.data);
      break;
    case ExtensionType.cookie:
      decodeCookie(e.data);
      break;
    case ExtensionType.supported_versions:
      decodeClientSupportedVersions(e.data);
      break;
    case ExtensionType.signature_algorithms_cert:
      decodeU16ListExtension(e.data, "signature_algorithms_cert");
      break;
  }
}

/** Decoders for the extensions a client reads in a ServerHello, HelloRetryRequest or EncryptedExtensions. */
function serverExtension(e: Extension, hrr: boolean): void {
  switch (e.type) {
    case ExtensionType.key_share:
      if (hrr) decodeHrrKeyShare(e.data);
      else decodeServerKeyShare(e.data);
      break;
    case ExtensionType.pre_shared_key:
      decodeServerPsk(e.data);
      break;
    case ExtensionType.supported_versions:
      decodeServerSupportedVersion(e.data);
      break;
    case ExtensionType.cookie:
      decodeCookie(e.data);
      break;
    case ExtensionType.renegotiation_info:
      decodeRenegotiationInfo(e.data);
      break;
    case ExtensionType.alpn:
      decodeAlpn(e.data);
      break;
    case ExtensionType.server_name:
      if (e.data.length > 0) decodeServerName(e.data);
      break;
    case ExtensionType.supported_groups:
    case ExtensionType.signature_algorithms:
      decodeU16ListExtension(e.data, "u16 list");
      break;
    case ExtensionType.extended_master_secret:
    case ExtensionType.encrypt_then_mac:
      expectEmpty(e, "flag");
      break;
  }
}

const clientHello = messageTarget({
  name: "tls-client-hello",
  about: "ClientHello and its extensions as a server reads them (SNI, ALPN, key_share, PSK, versions)",
  types: [HandshakeType.client_hello],
  makeRun: () => (body) => {
    const info = parseClientHello({ type: HandshakeType.client_hello, body, raw: body });
    runAll(
      () => negotiateVersion(info, { min: TLS11, max: TLS13 }),
      () => negotiateAlpn(info, ["h2", "http/1.1"]),
      ...info.extensions.map((e) => () => clientExtension(e)),
    );
  },
});

function helloRetrySeed(): Buffer {
  return encodeServerHello({
    version: TLS12,
    random: HRR_RANDOM,
    sessionId: randomBytes(32),
    cipherSuite: 0x1301,
    compressionMethod: 0,
    extensions: [
      serverSupportedVersion(TLS13),
      hrrKeyShare(NamedGroup.secp256r1),
      cookieExtension(randomBytes(40)),
    ],
  });
}

const serverHello = messageTarget({
  name: "tls-server-hello",
  about: "ServerHello and HelloRetryRequest with their extensions as a client reads them",
  types: [HandshakeType.server_hello],
  extraSeeds: () => [helloRetrySeed()],
  makeRun: () => (body) => {
    const sh = decodeServerHello(body);
    const hrr = sh.random.equals(HRR_RANDOM);
    runAll(...sh.extensions.map((e) => () => serverExtension(e, hrr)));
  },
});

const certificate = messageTarget({
  name: "tls-certificate",
  about: "Certificate message framing, TLS 1.2 list and TLS 1.3 entries with extensions",
  types: [HandshakeType.certificate],
  makeRun: () => (body) =>
    runAll(
      () => decodeCertificate12(body),
      () => decodeCertificate13(body),
    ),
});

const certificateRequest = messageTarget({
  name: "tls-certificate-request",
  about: "CertificateRequest of TLS 1.1, 1.2 and 1.3 (with its signature_algorithms)",
  types: [HandshakeType.certificate_request],
  makeRun: () => (body) =>
    runAll(
      () => decodeCertificateRequest12(body, TLS11),
      () => decodeCertificateRequest12(body, TLS12),
      () => {
        for (const e of decodeCertificateRequest13(body).extensions) serverExtension(e, false);
      },
    ),
});

const serverKeyExchange = messageTarget({
  name: "tls-server-key-exchange",
  about: "ECDHE ServerKeyExchange (1.1 and 1.2), its point, and its signature checked with the server key",
  types: [HandshakeType.server_key_exchange],
  makeRun: (corpus) => {
    const serverKey = createPublicKey(corpus.peers.serverChainPem);
    const share = generateKeyShare(NamedGroup.secp256r1);
    return (body) =>
      runAll(
        () => decodeEcdheServerKeyExchange(body, TLS11),
        () => {
          const ske = decodeEcdheServerKeyExchange(body, TLS12);
          runAll(
            () => share.agree(ske.publicKey),
            () => verifyHandshakeSignature(serverKey, ske.scheme, ske.params, ske.signature, TLS12),
          );
        },
      );
  },
});

const clientKeyExchange = messageTarget({
  name: "tls-client-key-exchange",
  about: "ClientKeyExchange, RSA and ECDHE forms, and the ECDHE point as the server takes it",
  types: [HandshakeType.client_key_exchange],
  makeRun: () => {
    const shares = [generateKeyShare(NamedGroup.secp256r1), generateKeyShare(NamedGroup.x25519)];
    return (body) =>
      runAll(
        () => decodeRsaClientKeyExchange(body),
        () => {
          const point = decodeEcdheClientKeyExchange(body);
          runAll(...shares.map((s) => () => s.agree(point)));
        },
      );
  },
});

const certificateVerify = messageTarget({
  name: "tls-certificate-verify",
  about: "CertificateVerify / digitally-signed with and without a scheme, checked with a real key",
  types: [HandshakeType.certificate_verify],
  makeRun: (corpus) => {
    const key = createPublicKey(corpus.peers.serverChainPem);
    const data = Buffer.from("transcript");
    return (body) =>
      runAll(
        () => {
          const cv = decodeDigitallySigned(body, false);
          verifyHandshakeSignature(key, cv.scheme, data, cv.signature, TLS11);
        },
        ...[TLS12, TLS13].map((v) => () => {
          const cv = decodeDigitallySigned(body, true);
          verifyHandshakeSignature(key, cv.scheme, data, cv.signature, v);
        }),
      );
  },
});

const finished = messageTarget({
  name: "tls-finished",
  about: "Finished checked against expected verify_data of 12, 32 and 48 bytes",
  types: [HandshakeType.finished],
  makeRun: () => {
    const expected = [12, 32, 48].map((n) => randomBytes(n));
    return (body) =>
      runAll(
        ...expected.map(
          (e) => () => checkFinished({ type: HandshakeType.finished, body, raw: body }, e, "server"),
        ),
      );
  },
});

const newSessionTicket = messageTarget({
  name: "tls-new-session-ticket",
  about: "NewSessionTicket of TLS 1.2 (RFC 5077) and TLS 1.3 with extensions",
  types: [HandshakeType.new_session_ticket],
  extraSeeds: () => [
    encodeNewSessionTicket13({
      lifetime: 7200,
      ageAdd: 0x12345678,
      nonce: Buffer.from([0]),
      ticket: randomBytes(120),
      extensions: [{ type: 42, data: Buffer.from([0, 0, 0x40, 0]) }],
    }),
  ],
  makeRun: () => (body) =>
    runAll(
      () => decodeNewSessionTicket12(body),
      () => decodeNewSessionTicket13(body),
    ),
});

const encryptedExtensions = messageTarget({
  name: "tls-encrypted-extensions",
  about: "EncryptedExtensions and the extensions a client reads there (ALPN, SNI ack, groups)",
  types: [HandshakeType.encrypted_extensions],
  extraSeeds: () => [
    encodeEncryptedExtensions([
      { type: ExtensionType.alpn, data: Buffer.from([0, 3, 2, 0x68, 0x32]) },
      { type: ExtensionType.server_name, data: Buffer.alloc(0) },
      { type: ExtensionType.supported_groups, data: Buffer.from([0, 4, 0, 0x1d, 0, 0x17]) },
    ]),
  ],
  makeRun: () => (body) =>
    runAll(...decodeEncryptedExtensions(body).map((e) => () => serverExtension(e, false))),
});

const keyUpdate = messageTarget({
  name: "tls-key-update",
  about: "KeyUpdate (update_not_requested / update_requested only)",
  types: [HandshakeType.key_update],
  extraSeeds: () => [Buffer.from([0]), Buffer.from([1])],
  makeRun: () => (body) => decodeKeyUpdate(body),
});

/** Extensions as type + data, for the decoders of both sides (SNI and ALPN included). */
const extensions: FuzzTarget = {
  name: "tls-extensions",
  about: "every extension decoder, client and server side, on one extension (type + data)",
  async prepare(corpus) {
    const hellos = bodiesOf(corpus, HandshakeType.client_hello, HandshakeType.server_hello);
    const seeds: Buffer[] = [];
    for (const body of hellos) {
      const exts = body[0] === undefined ? [] : extensionsOf(body);
      for (const e of exts) seeds.push(Buffer.concat([Buffer.from([e.type >> 8, e.type & 0xff]), e.data]));
    }
    return {
      seeds,
      expected: tlsExpected,
      run(input: Buffer) {
        if (input.length < 2) return;
        const e = { type: input.readUInt16BE(0), data: input.subarray(2) };
        runAll(
          () => clientExtension(e),
          () => serverExtension(e, false),
          () => serverExtension(e, true),
          () => decodeServerName(e.data),
          () => decodeExtensions(e.data),
        );
      },
    };
  },
};

/** The extensions of a captured hello (ClientHello or ServerHello; the decoders agree on the tail). */
function extensionsOf(body: Buffer): Extension[] {
  try {
    return parseClientHello({ type: HandshakeType.client_hello, body, raw: body }).extensions;
  } catch {
    return decodeServerHello(body).extensions;
  }
}

/** Every handshake-message decoder target. */
export const TLS_MESSAGE_TARGETS: readonly FuzzTarget[] = [
  clientHello,
  serverHello,
  certificate,
  certificateRequest,
  serverKeyExchange,
  clientKeyExchange,
  certificateVerify,
  finished,
  newSessionTicket,
  encryptedExtensions,
  keyUpdate,
  extensions,
];
