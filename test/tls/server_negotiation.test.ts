/**
 * What the server decides from a ClientHello, unit by unit: parsing (truncated, oversized,
 * corrupted input), version choice with supported_versions and fallback SCSV, ALPN,
 * suite choice by key type, groups and signature schemes, and the RSA premaster
 * decryption with implicit rejection through a real key handle.
 */
import assert from "node:assert/strict";
import { constants, publicEncrypt, randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { AlertDescription, TlsError } from "../../src/tls/alert.ts";
import { defaultSuites, suiteByName } from "../../src/tls/cipher_suites.ts";
import { negotiateAlpn, negotiateVersion, parseClientHello } from "../../src/tls/client_hello.ts";
import { ExtensionType, HandshakeType, ProtocolVersion } from "../../src/tls/constants.ts";
import { alpnExtension, emptyExtension, u16ListExtension } from "../../src/tls/extensions.ts";
import { DEFAULT_GROUPS } from "../../src/tls/key_share.ts";
import { type Extension, encodeClientHello } from "../../src/tls/messages.ts";
import { decryptPremaster, selectSuite } from "../../src/tls/server_kx.ts";
import { makePki } from "../helpers/pki.ts";

const { TLS11, TLS12, TLS13 } = ProtocolVersion;

function hello(
  opts: { version?: number; suites?: number[]; extensions?: Extension[]; compression?: number[] } = {},
) {
  const body = encodeClientHello({
    version: opts.version ?? TLS12,
    random: randomBytes(32),
    sessionId: Buffer.alloc(0),
    cipherSuites: opts.suites ?? [0xc02f],
    compressionMethods: opts.compression ?? [0],
    extensions: opts.extensions ?? [],
  });
  return parseClientHello({ type: HandshakeType.client_hello, body, raw: body });
}

function alertOf(fn: () => unknown): AlertDescription | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof TlsError) return err.alert;
    throw err;
  }
  return undefined;
}

let rsa: PrivateKeyHandle;
let ec: PrivateKeyHandle;
before(async () => {
  const pki = await makePki();
  [rsa, ec] = await Promise.all([openKey(pki.server.keyPath), openKey(pki.serverEc.keyPath)]);
});
after(async () => {
  await Promise.all([rsa.close(), ec.close()]);
});

test("ClientHello: every extension the server acts on is read", () => {
  const h = hello({
    suites: [0xc02f, 0x00ff, 0x5600],
    extensions: [
      { type: ExtensionType.server_name, data: Buffer.from("000c0000096c6f63616c686f7374", "hex") },
      u16ListExtension(ExtensionType.signature_algorithms, [0x0804, 0x0403]),
      u16ListExtension(ExtensionType.supported_groups, [29]),
      { type: ExtensionType.ec_point_formats, data: Buffer.from([1, 0]) },
      emptyExtension(ExtensionType.extended_master_secret),
      emptyExtension(ExtensionType.encrypt_then_mac),
      alpnExtension(["h2", "http/1.1"]),
      emptyExtension(ExtensionType.session_ticket),
      { type: ExtensionType.supported_versions, data: Buffer.from([4, 3, 4, 3, 3]) },
      { type: 0xfafa, data: Buffer.from([1, 2]) },
    ],
  });
  assert.equal(h.serverName, "localhost");
  assert.deepEqual(h.signatureSchemes, [0x0804, 0x0403]);
  assert.deepEqual(h.groups, [29]);
  assert.deepEqual(h.pointFormats, [0]);
  assert.equal(h.extendedMasterSecret, true);
  assert.equal(h.encryptThenMac, true);
  assert.deepEqual(h.alpn, ["h2", "http/1.1"]);
  assert.deepEqual(h.sessionTicket, Buffer.alloc(0));
  assert.deepEqual(h.supportedVersions, [TLS13, TLS12]);
  assert.equal(h.secureRenegotiation, true);
  assert.equal(h.fallbackScsv, true);
});

test("ClientHello: truncated at every length, with trailing bytes or corrupted lengths: decode_error", () => {
  const body = encodeClientHello({
    version: TLS12,
    random: randomBytes(32),
    sessionId: randomBytes(32),
    cipherSuites: [0xc02f, 0x003c],
    compressionMethods: [0],
    extensions: [u16ListExtension(ExtensionType.supported_groups, [29, 23])],
  });
  const parse = (b: Buffer) => () => parseClientHello({ type: HandshakeType.client_hello, body: b, raw: b });
  for (let n = 0; n < body.length; n++) {
    // Cutting exactly before the extensions leaves a legal extension-less hello.
    if (n === body.length - 12) continue;
    assert.equal(alertOf(parse(body.subarray(0, n))), AlertDescription.decode_error, `cut at ${n}`);
  }
  assert.equal(alertOf(parse(Buffer.concat([body, Buffer.from([0])]))), AlertDescription.decode_error);
  const oddSuites = Buffer.from(body);
  oddSuites.writeUInt16BE(3, 2 + 32 + 1 + 32);
  assert.equal(alertOf(parse(oddSuites)), AlertDescription.decode_error);
  const longSession = Buffer.from(body);
  longSession[34] = 33;
  assert.equal(alertOf(parse(longSession)), AlertDescription.decode_error);
});

test("ClientHello: extension payloads that do not parse are refused", () => {
  const bad: Array<[Extension, AlertDescription]> = [
    [
      { type: ExtensionType.supported_groups, data: Buffer.from([0, 3, 0, 29, 0]) },
      AlertDescription.decode_error,
    ],
    [{ type: ExtensionType.signature_algorithms, data: Buffer.from([0, 0]) }, AlertDescription.decode_error],
    [{ type: ExtensionType.extended_master_secret, data: Buffer.from([0]) }, AlertDescription.decode_error],
    [{ type: ExtensionType.ec_point_formats, data: Buffer.from([0]) }, AlertDescription.decode_error],
    [
      { type: ExtensionType.supported_versions, data: Buffer.from([3, 3, 4, 3]) },
      AlertDescription.decode_error,
    ],
    [
      { type: ExtensionType.server_name, data: Buffer.from("000500000262ff", "hex") },
      AlertDescription.illegal_parameter,
    ],
    [{ type: ExtensionType.alpn, data: Buffer.from([0, 0]) }, AlertDescription.decode_error],
    [
      { type: ExtensionType.renegotiation_info, data: Buffer.from([1, 0]) },
      AlertDescription.handshake_failure,
    ],
  ];
  for (const [ext, alert] of bad) {
    assert.equal(
      alertOf(() => hello({ extensions: [ext] })),
      alert,
      `extension ${ext.type}`,
    );
  }
  assert.equal(
    alertOf(() => hello({ compression: [1] })),
    AlertDescription.illegal_parameter,
  );
});

test("version: the highest common one; fallback SCSV below our best is inappropriate_fallback", () => {
  const range = { min: TLS11, max: TLS12 };
  assert.equal(negotiateVersion(hello({ version: TLS12 }), range), TLS12);
  assert.equal(
    negotiateVersion(hello({ version: 0x0304 }), range),
    TLS12,
    "a newer legacy version caps at 1.2",
  );
  assert.equal(negotiateVersion(hello({ version: TLS11 }), range), TLS11);
  assert.equal(
    alertOf(() => negotiateVersion(hello({ version: TLS11 }), { min: TLS12, max: TLS12 })),
    AlertDescription.protocol_version,
  );
  const sv = (list: number[]): Extension => ({
    type: ExtensionType.supported_versions,
    data: Buffer.from([list.length * 2, ...list.flatMap((v) => [v >> 8, v & 0xff])]),
  });
  assert.equal(negotiateVersion(hello({ extensions: [sv([TLS13, TLS12])] }), range), TLS12);
  assert.equal(
    negotiateVersion(hello({ extensions: [sv([TLS13, TLS12])] }), { min: TLS12, max: TLS13 }),
    TLS13,
  );
  assert.equal(
    alertOf(() => negotiateVersion(hello({ extensions: [sv([TLS13])] }), range)),
    AlertDescription.protocol_version,
  );
  const fallback = hello({ version: TLS11, suites: [0x002f, 0x5600] });
  assert.equal(
    alertOf(() => negotiateVersion(fallback, range)),
    AlertDescription.inappropriate_fallback,
  );
  assert.equal(
    negotiateVersion(fallback, { min: TLS11, max: TLS11 }),
    TLS11,
    "no fallback when 1.1 is our best",
  );
});

test("ALPN: server order; ignored without server protocols; none in common is no_application_protocol", () => {
  const h = hello({ extensions: [alpnExtension(["h2", "http/1.1", "x"])] });
  assert.equal(negotiateAlpn(h, ["x", "http/1.1"]), "x");
  assert.equal(negotiateAlpn(h, []), false);
  assert.equal(negotiateAlpn(hello(), ["http/1.1"]), false);
  assert.equal(
    alertOf(() => negotiateAlpn(h, ["spdy/3"])),
    AlertDescription.no_application_protocol,
  );
});

test("suite choice: key type, shared group, point format and signature scheme all count", () => {
  const all = defaultSuites().concat(["AES128-SHA256", "AES128-SHA"].map((n) => suiteByName(n)!));
  const pick = (key: PrivateKeyHandle, h: ReturnType<typeof hello>, version = TLS12) =>
    selectSuite(h, all, DEFAULT_GROUPS, key, version).suite.name;
  const offer = [0xc02b, 0xc02f, 0x003c, 0x002f];
  assert.equal(pick(rsa, hello({ suites: offer })), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
  assert.equal(pick(ec, hello({ suites: offer })), "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
  // No group in common: ECDHE is out, RSA key exchange remains.
  const noGroup = hello({
    suites: offer,
    extensions: [u16ListExtension(ExtensionType.supported_groups, [30])],
  });
  assert.equal(pick(rsa, noGroup), "TLS_RSA_WITH_AES_128_CBC_SHA256");
  assert.equal(
    alertOf(() => pick(ec, noGroup)),
    AlertDescription.handshake_failure,
  );
  // Only compressed points: no ECDHE.
  const compressed = hello({
    suites: offer,
    extensions: [{ type: ExtensionType.ec_point_formats, data: Buffer.from([1, 1]) }],
  });
  assert.equal(pick(rsa, compressed), "TLS_RSA_WITH_AES_128_CBC_SHA256");
  // An EC key, a client that accepts only RSA signatures: nothing.
  const rsaOnly = hello({
    suites: offer,
    extensions: [u16ListExtension(ExtensionType.signature_algorithms, [0x0401])],
  });
  assert.equal(
    alertOf(() => pick(ec, rsaOnly)),
    AlertDescription.handshake_failure,
  );
  // TLS 1.1 has no GCM and no SHA-256 suites.
  assert.equal(
    pick(rsa, hello({ version: TLS11, suites: [0xc02f, 0x003c, 0x002f] }), TLS11),
    "TLS_RSA_WITH_AES_128_CBC_SHA",
  );
});

test("RSA premaster: a good one decrypts; any failure gives a fresh random premaster, never an error", async () => {
  const k = rsa.bits / 8;
  const encrypt = (m: Buffer) =>
    publicEncrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_PADDING }, m);
  const good = Buffer.concat([Buffer.from([3, 3]), randomBytes(46)]);
  assert.deepEqual(await decryptPremaster(rsa, encrypt(good), TLS12), good);

  const failures: Array<[string, Buffer, number]> = [
    [
      "bad padding (raw random block)",
      publicEncrypt(
        { key: rsa.publicKey, padding: constants.RSA_NO_PADDING },
        Buffer.concat([Buffer.from([0, 1]), randomBytes(k - 2)]),
      ),
      TLS12,
    ],
    ["wrong version bytes", encrypt(Buffer.concat([Buffer.from([3, 1]), randomBytes(46)])), TLS12],
    ["version of the negotiated, not the offered, version", encrypt(good), TLS11],
    ["47 bytes", encrypt(Buffer.concat([Buffer.from([3, 3]), randomBytes(45)])), TLS12],
    ["49 bytes", encrypt(Buffer.concat([Buffer.from([3, 3]), randomBytes(47)])), TLS12],
    ["short ciphertext", randomBytes(k - 1), TLS12],
    ["empty ciphertext", Buffer.alloc(0), TLS12],
  ];
  for (const [what, ciphertext, version] of failures) {
    const a = await decryptPremaster(rsa, ciphertext, version);
    const b = await decryptPremaster(rsa, ciphertext, version);
    assert.equal(a.length, 48, what);
    assert.notDeepEqual(a, b, `${what}: a fresh random premaster each time`);
    assert.notDeepEqual(a.subarray(2), good.subarray(2), what);
  }
});
