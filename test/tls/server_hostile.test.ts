/**
 * The TLS 1.1/1.2 server against a hostile raw client built from hsmkit's codecs: RSA key
 * exchange with bad padding fails byte for byte like a wrong premaster (RFC 5246
 * §7.4.7.1), fallback SCSV and downgrade sentinels, malformed, out-of-order and
 * fragmented handshake messages each end in the right alert, and the server keeps
 * serving proper clients throughout.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { AlertDescription } from "../../src/tls/alert.ts";
import { ContentType, DOWNGRADE_TLS11, ExtensionType, HandshakeType } from "../../src/tls/constants.ts";
import { decodeServerHello, frameHandshake } from "../../src/tls/messages.ts";
import { createServer, type TlsServer } from "../../src/tls/server.ts";
import { alertsIn, parseRecords, recordBytes, recordHeader } from "../helpers/hostile.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import {
  clientHello,
  defaultExtensions,
  handshakeMessages,
  handshakeRecord,
  RawConnection,
  rsaHandshake,
} from "./server_raw_client.ts";

let pki: Pki;
let key: PrivateKeyHandle;
let server: TlsServer;
let port: number;
const clientErrors: string[] = [];

before(async () => {
  pki = await makePki();
  key = await openKey(pki.server.keyPath);
  server = createServer({
    cert: pki.server.chainPem,
    key,
    minVersion: "1.1",
    maxVersion: "1.2",
    ciphers:
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA256,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_RSA_WITH_AES_128_CBC_SHA",
    handshakeTimeout: 5000,
  });
  server.on("secureConnection", (s) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) => s.end(`echo:${d}`));
  });
  server.on("tlsClientError", (err: Error) => clientErrors.push(err.message));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await key.close();
});

/** A proper client still gets served (Node's own TLS client, verifying our chain). */
async function stillServes(): Promise<void> {
  const reply = await new Promise<string>((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: pki.root.certPem }, () => {
      s.write("ping");
    });
    let text = "";
    s.on("data", (d: Buffer) => {
      text += d.toString();
    });
    s.on("end", () => resolve(text));
    s.on("error", reject);
  });
  assert.equal(reply, "echo:ping");
}

const FATAL_BAD_RECORD_MAC = (version: number) =>
  recordBytes(ContentType.alert, version, Buffer.from([2, AlertDescription.bad_record_mac]));

for (const [label, version] of [
  ["TLS 1.2 AES128-SHA256", 0x0303],
  ["TLS 1.1 AES128-SHA", 0x0302],
] as const) {
  describe(`RSA key exchange, ${label}`, () => {
    test("a correct ClientKeyExchange completes: the server answers with ChangeCipherSpec and Finished", async () => {
      const attempt = await rsaHandshake(port, "good", version);
      try {
        const records = parseRecords(attempt.answer).records;
        assert.deepEqual(
          records.map((r) => r.type),
          [ContentType.change_cipher_spec, ContentType.handshake],
        );
        // The server's Finished opens with the keys from our premaster.
        const opened = attempt.read.open(ContentType.handshake, version, Buffer.from(records[1]!.payload));
        assert.equal(opened.plaintext[0], HandshakeType.finished);
      } finally {
        attempt.conn.destroy();
      }
    });

    test("bad padding, wrong version bytes and wrong length fail exactly like a wrong premaster", async () => {
      const answers = new Map<string, Buffer>();
      const before = clientErrors.length;
      for (const mode of ["wrong-premaster", "bad-padding", "wrong-version", "wrong-length"] as const) {
        const attempt = await rsaHandshake(port, mode, version);
        const { bytes, closed } = await attempt.conn.finish();
        attempt.conn.destroy();
        const answer = bytes.subarray(bytes.length - attempt.answer.length);
        answers.set(mode, Buffer.from(answer));
        assert.equal(closed, "fin", `${mode}: the server closes cleanly`);
      }
      for (const [mode, answer] of answers) {
        assert.deepEqual(
          answer,
          FATAL_BAD_RECORD_MAC(version),
          `${mode}: one fatal bad_record_mac, nothing else`,
        );
      }
      // The server's own reasons are identical too: nothing tells a padding failure apart.
      const reasons = clientErrors.slice(before);
      assert.equal(reasons.length, 4);
      assert.equal(new Set(reasons).size, 1, reasons.join(" | "));
      await stillServes();
    });
  });
}

test("ChangeCipherSpec arriving while a slow key handle decrypts the premaster waits for its keys", async () => {
  // A key that answers after 300 ms, as a network HSM or a busy token may.
  const slow: PrivateKeyHandle = {
    type: key.type,
    bits: key.bits,
    curve: key.curve,
    publicKey: key.publicKey,
    spki: key.spki,
    schemes: key.schemes,
    description: `slow ${key.description}`,
    sign: (scheme, message) => key.sign(scheme, message),
    decrypt: async (ciphertext) => {
      await new Promise((r) => setTimeout(r, 300));
      return key.decrypt(ciphertext);
    },
    close: async () => {},
  };
  const slowServer = createServer({
    cert: pki.server.chainPem,
    key: slow,
    maxVersion: "1.2",
    ciphers: "AES128-SHA256",
  });
  slowServer.on("secureConnection", (s) => s.on("error", () => {}));
  await new Promise<void>((r) => slowServer.listen(0, "127.0.0.1", r));
  try {
    const slowPort = (slowServer.address() as { port: number }).port;
    const attempt = await rsaHandshake(slowPort, "good", 0x0303, 100);
    attempt.conn.destroy();
    assert.deepEqual(
      parseRecords(attempt.answer).records.map((r) => r.type),
      [ContentType.change_cipher_spec, ContentType.handshake],
    );
  } finally {
    for (const s of slowServer.sockets) s.destroy();
    await new Promise<void>((r) => slowServer.close(() => r()));
  }
});

describe("version negotiation", () => {
  test("TLS_FALLBACK_SCSV with TLS 1.1 to a TLS 1.2 server: inappropriate_fallback", async () => {
    const conn = await RawConnection.open(port);
    conn.send(handshakeRecord(clientHello({ version: 0x0302, suites: [0x002f, 0x5600] }), 0x0301));
    const { bytes } = await conn.finish();
    conn.destroy();
    assert.deepEqual(alertsIn(parseRecords(bytes).records), [
      { level: 2, description: AlertDescription.inappropriate_fallback },
    ]);
    await stillServes();
  });

  test("a TLS 1.1 ServerHello from a 1.2-capable server carries the downgrade sentinel; TLS 1.2 does not", async () => {
    for (const [v, sentinel] of [
      [0x0302, true],
      [0x0303, false],
    ] as const) {
      const conn = await RawConnection.open(port);
      conn.send(handshakeRecord(clientHello({ version: v, suites: [0x002f, 0x003c] }), 0x0301));
      await conn.until(() => handshakeMessages(conn.records()).length > 0);
      conn.destroy();
      const sh = decodeServerHello(handshakeMessages(conn.records())[0]!.body);
      assert.equal(sh.version, v);
      assert.equal(sh.random.subarray(24).equals(DOWNGRADE_TLS11), sentinel);
    }
  });

  test("a client that speaks only SSL 3.0: protocol_version", async () => {
    const conn = await RawConnection.open(port);
    conn.send(handshakeRecord(clientHello({ version: 0x0300, suites: [0x002f] }), 0x0300));
    const { bytes } = await conn.finish();
    conn.destroy();
    assert.deepEqual(alertsIn(parseRecords(bytes).records), [
      { level: 2, description: AlertDescription.protocol_version },
    ]);
  });
});

/** A valid ClientHello's body, to corrupt. */
function helloBody(extensions = defaultExtensions()): Buffer {
  return clientHello({ suites: [0xc02f, 0x003c], extensions }).subarray(4);
}

const hs = (type: number, body: Buffer) => handshakeRecord(frameHandshake(type, body));

const MALFORMED: Array<{ name: string; bytes: () => Buffer; alert: AlertDescription }> = [
  {
    name: "truncated ClientHello",
    bytes: () => hs(HandshakeType.client_hello, helloBody().subarray(0, 40)),
    alert: AlertDescription.decode_error,
  },
  {
    name: "ClientHello with trailing bytes",
    bytes: () => hs(HandshakeType.client_hello, Buffer.concat([helloBody(), Buffer.from([1, 2, 3])])),
    alert: AlertDescription.decode_error,
  },
  {
    name: "extension list longer than the message",
    bytes: () => {
      const body = helloBody();
      body.writeUInt16BE(0xfff0, 2 + 32 + 1 + 2 + 4 + 2);
      return hs(HandshakeType.client_hello, body);
    },
    alert: AlertDescription.decode_error,
  },
  {
    name: "duplicate extension",
    bytes: () => hs(HandshakeType.client_hello, helloBody([...defaultExtensions(), ...defaultExtensions()])),
    alert: AlertDescription.illegal_parameter,
  },
  {
    name: "non-empty renegotiation_info on an initial handshake",
    bytes: () =>
      hs(
        HandshakeType.client_hello,
        helloBody([
          ...defaultExtensions(),
          { type: ExtensionType.renegotiation_info, data: Buffer.from([12, ...randomBytes(12)]) },
        ]),
      ),
    alert: AlertDescription.handshake_failure,
  },
  {
    name: "no null compression",
    bytes: () => handshakeRecord(clientHello({ suites: [0xc02f], compression: [1] })),
    alert: AlertDescription.illegal_parameter,
  },
  {
    name: "no cipher suite in common",
    bytes: () => handshakeRecord(clientHello({ suites: [0x009c, 0x1301] })),
    alert: AlertDescription.handshake_failure,
  },
  {
    name: "ALPN list with an empty protocol name",
    bytes: () =>
      hs(
        HandshakeType.client_hello,
        helloBody([...defaultExtensions(), { type: ExtensionType.alpn, data: Buffer.from([0, 1, 0]) }]),
      ),
    alert: AlertDescription.decode_error,
  },
  {
    name: "Certificate instead of ClientHello",
    bytes: () => hs(HandshakeType.certificate, Buffer.from([0, 0, 0])),
    alert: AlertDescription.unexpected_message,
  },
  {
    name: "ChangeCipherSpec before anything",
    bytes: () => recordBytes(ContentType.change_cipher_spec, 0x0303, Buffer.from([1])),
    alert: AlertDescription.unexpected_message,
  },
  {
    name: "application data before the handshake",
    bytes: () => recordBytes(ContentType.application_data, 0x0303, Buffer.from("GET / HTTP/1.1\r\n\r\n")),
    alert: AlertDescription.unexpected_message,
  },
  {
    name: "empty handshake record",
    bytes: () => recordBytes(ContentType.handshake, 0x0303, Buffer.alloc(0)),
    alert: AlertDescription.unexpected_message,
  },
  {
    name: "handshake message claiming 16 MiB",
    bytes: () =>
      recordBytes(ContentType.handshake, 0x0303, Buffer.from([HandshakeType.client_hello, 0xff, 0xff, 0xff])),
    alert: AlertDescription.illegal_parameter,
  },
  {
    name: "record longer than 2^14 + 2048",
    bytes: () => recordHeader(ContentType.handshake, 0x0303, 0x4801),
    alert: AlertDescription.record_overflow,
  },
  {
    name: "unknown record type",
    bytes: () => recordBytes(99, 0x0303, Buffer.from([1, 2, 3])),
    alert: AlertDescription.unexpected_message,
  },
];

describe("malformed input ends in the right alert and the server keeps serving", () => {
  for (const c of MALFORMED) {
    test(c.name, async () => {
      const conn = await RawConnection.open(port);
      conn.send(c.bytes());
      const { bytes, closed } = await conn.finish(8000);
      conn.destroy();
      assert.ok(closed, "the server closed the connection");
      assert.deepEqual(alertsIn(parseRecords(bytes).records), [{ level: 2, description: c.alert }]);
    });
  }

  test("the server still serves after all of the above", async () => {
    await stillServes();
  });
});

describe("fragmentation", () => {
  test("a ClientHello in one-byte records is reassembled and answered", async () => {
    const conn = await RawConnection.open(port);
    const hello = clientHello({ suites: [0xc02f] });
    for (const b of hello) conn.send(recordBytes(ContentType.handshake, 0x0303, Buffer.from([b])));
    await conn.until(() => handshakeMessages(conn.records()).length >= 4);
    conn.destroy();
    assert.deepEqual(
      handshakeMessages(conn.records()).map((m) => m.type),
      [
        HandshakeType.server_hello,
        HandshakeType.certificate,
        HandshakeType.server_key_exchange,
        HandshakeType.server_hello_done,
      ],
    );
  });

  test("a ClientHello split across TCP writes byte by byte is answered", async () => {
    const conn = await RawConnection.open(port);
    const record = handshakeRecord(clientHello({ suites: [0xc02f] }));
    for (const b of record) {
      conn.send(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    await conn.until(() => handshakeMessages(conn.records()).length >= 1);
    conn.destroy();
    assert.equal(handshakeMessages(conn.records())[0]?.type, HandshakeType.server_hello);
  });

  test("a ClientHello and a second message coalesced in one record: the extra one is unexpected", async () => {
    const conn = await RawConnection.open(port);
    const hello = clientHello({ suites: [0xc02f] });
    conn.send(
      handshakeRecord(Buffer.concat([hello, frameHandshake(HandshakeType.client_hello, hello.subarray(4))])),
    );
    const { bytes } = await conn.finish();
    conn.destroy();
    const alerts = alertsIn(parseRecords(bytes).records);
    assert.deepEqual(alerts, [{ level: 2, description: AlertDescription.unexpected_message }]);
  });

  test("a handshake message spanning ChangeCipherSpec: unexpected_message", async () => {
    const conn = await RawConnection.open(port);
    conn.send(handshakeRecord(clientHello({ suites: [0x003c] })));
    await conn.until(() => handshakeMessages(conn.records()).length >= 3);
    // Half a ClientKeyExchange, then ChangeCipherSpec.
    const cke = frameHandshake(
      HandshakeType.client_key_exchange,
      Buffer.concat([Buffer.from([1, 0]), randomBytes(256)]),
    );
    conn.send(handshakeRecord(cke.subarray(0, 100)));
    conn.send(recordBytes(ContentType.change_cipher_spec, 0x0303, Buffer.from([1])));
    const { bytes } = await conn.finish();
    conn.destroy();
    const alerts = alertsIn(parseRecords(bytes).records);
    assert.deepEqual(alerts, [{ level: 2, description: AlertDescription.unexpected_message }]);
    await stillServes();
  });
});
