/**
 * The TLS client against a hostile server that answers the ClientHello with malformed,
 * truncated, oversized or out-of-order bytes: every case ends with the right fatal alert
 * (when the client detected the fault) and a closed connection, never a hang or a crash.
 */
import assert from "node:assert/strict";
import { randomBytes, X509Certificate } from "node:crypto";
import { after, before, test } from "node:test";
import { AlertDescription, TlsError } from "../../src/tls/alert.ts";
import { suiteById } from "../../src/tls/cipher_suites.ts";
import { connect } from "../../src/tls/client.ts";
import { DOWNGRADE_TLS12, ExtensionType, HandshakeType } from "../../src/tls/constants.ts";
import { protection13 } from "../../src/tls/handshake13.ts";
import { hashMessages, KeySchedule } from "../../src/tls/key_schedule.ts";
import { generateKeyShare, NamedGroup } from "../../src/tls/key_share.ts";
import {
  decodeClientHello,
  encodeCertificate12,
  encodeEcdheServerKeyExchange,
  encodeServerHello,
} from "../../src/tls/messages.ts";
import { decodeClientKeyShare, serverKeyShare, serverSupportedVersion } from "../../src/tls/messages13.ts";
import type { RecordProtection } from "../../src/tls/protection.ts";
import {
  alertBytes,
  ContentType,
  type HostileConnection,
  type HostileServer,
  handshakeBytes,
  hostileServer,
  recordBytes,
  recordHeader,
  Version,
} from "../helpers/hostile.ts";
import { makePki } from "../helpers/pki.ts";

type Script = (conn: HostileConnection, hello: Buffer) => Promise<void> | void;

let script: Script = () => {};
let server: HostileServer;

let serverLeaf: Buffer;

before(async () => {
  server = await hostileServer((conn, hello) => script(conn, hello), { lingerMs: 3000 });
  serverLeaf = new X509Certificate((await makePki()).server.certPem).raw;
});
after(() => server.close());

/** A ServerHello for the client's hello, with overrides. */
function serverHello(
  clientHello: Buffer,
  overrides: Partial<Parameters<typeof encodeServerHello>[0]> = {},
): Buffer {
  const ch = decodeClientHello(clientHello.subarray(4));
  const body = encodeServerHello({
    version: 0x0303,
    random: randomBytes(32),
    sessionId: Buffer.alloc(0),
    cipherSuite: 0xc02f,
    compressionMethod: 0,
    extensions: [],
    ...overrides,
  });
  void ch;
  return recordBytes(ContentType.handshake, Version.tls12, handshakeBytes(HandshakeType.server_hello, body));
}

/**
 * A TLS 1.3 ServerHello (TLS_AES_128_GCM_SHA256, X25519) answering the client's hello, and the
 * server's handshake-traffic protection derived from it, so a script can send protected records.
 */
function serverHello13(clientHello: Buffer) {
  const ch = decodeClientHello(clientHello.subarray(4));
  const offered = ch.extensions.find((e) => e.type === ExtensionType.key_share);
  const peerShare = decodeClientKeyShare(offered?.data ?? Buffer.alloc(0)).find(
    (e) => e.group === NamedGroup.x25519,
  );
  assert.ok(peerShare, "the client offers an X25519 key share");
  const share = generateKeyShare(NamedGroup.x25519);
  const hello = handshakeBytes(
    HandshakeType.server_hello,
    encodeServerHello({
      version: 0x0303,
      random: randomBytes(32),
      sessionId: ch.sessionId,
      cipherSuite: 0x1301,
      compressionMethod: 0,
      extensions: [
        serverSupportedVersion(0x0304),
        serverKeyShare({ group: NamedGroup.x25519, keyExchange: share.publicKey }),
      ],
    }),
  );
  const suite = suiteById(0x1301);
  assert.ok(suite);
  const [clientSecret, serverSecret] = new KeySchedule("sha256", undefined).handshake(
    share.agree(peerShare.keyExchange),
    hashMessages("sha256", [clientHello, hello]),
  );
  return {
    record: recordBytes(ContentType.handshake, Version.tls12, hello),
    protection: protection13(suite, serverSecret),
    clientProtection: protection13(suite, clientSecret),
  };
}

/** Runs the client against the current script; returns its error and what the server saw. */
async function run(s: Script, options: { maxVersion?: "1.2" | "1.3"; handshakeTimeout?: number } = {}) {
  script = s;
  const sock = connect({
    host: server.host,
    port: server.port,
    rejectUnauthorized: false,
    maxVersion: options.maxVersion ?? "1.2",
    handshakeTimeout: options.handshakeTimeout ?? 5000,
    ciphers: "TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA256",
  });
  const error = await new Promise<Error>((resolve) => {
    sock.once("error", resolve);
    sock.once("secureConnect", () => resolve(new Error("handshake unexpectedly succeeded")));
  });
  const result = await server.nextResult(10_000);
  return { error, result };
}

function expectAlert(
  outcome: Awaited<ReturnType<typeof run>>,
  alert: AlertDescription,
  message: RegExp,
): void {
  assert.ok(outcome.error instanceof TlsError, `TlsError, got ${outcome.error}`);
  assert.match(outcome.error.message, message);
  assert.deepEqual(
    outcome.result.alerts.map((a) => [a.level, a.description]),
    [[2, alert]],
    `the client sent a fatal ${AlertDescription[alert]}`,
  );
  assert.ok(outcome.result.clientClosed !== null, "the client closed the connection");
}

/**
 * Like expectAlert, for a TLS 1.3 client that has processed the ServerHello: its alert is
 * protected under its handshake traffic key (RFC 8446 §5, §6), so nothing goes in clear and the
 * one protected record opens to the fatal alert.
 */
function expectProtectedAlert(
  outcome: Awaited<ReturnType<typeof run>>,
  clientProtection: RecordProtection | undefined,
  alert: AlertDescription,
  message: RegExp,
): void {
  assert.ok(outcome.error instanceof TlsError, `TlsError, got ${outcome.error}`);
  assert.match(outcome.error.message, message);
  assert.deepEqual(outcome.result.alerts, [], "no alert in clear after the ServerHello");
  const sealed = outcome.result.records.filter((r) => r.type === ContentType.applicationData);
  assert.equal(sealed.length, 1, "one protected record");
  assert.ok(clientProtection, "the script derived the client's handshake keys");
  const opened = clientProtection.open(ContentType.applicationData, sealed[0]!.version, sealed[0]!.payload);
  assert.equal(opened.type, ContentType.alert);
  assert.deepEqual([...opened.plaintext], [2, alert], `the client sent a fatal ${AlertDescription[alert]}`);
  assert.ok(outcome.result.clientClosed !== null, "the client closed the connection");
}

test("an oversized record: record_overflow", async () => {
  const o = await run(async (conn) => {
    await conn.write(
      Buffer.concat([recordHeader(ContentType.handshake, Version.tls12, 0x4801), Buffer.alloc(100)]),
    );
  });
  expectAlert(o, AlertDescription.record_overflow, /exceeds the limit/);
});

test("not TLS at all (an HTTP response): unexpected_message", async () => {
  const o = await run(async (conn) => {
    await conn.write(Buffer.from("HTTP/1.1 400 Bad Request\r\n\r\n"));
  });
  expectAlert(o, AlertDescription.unexpected_message, /unknown record type/);
});

test("a truncated ServerHello: decode_error", async () => {
  const o = await run(async (conn, hello) => {
    const full = serverHello(hello);
    const body = full.subarray(9, 9 + 20);
    await conn.write(
      recordBytes(ContentType.handshake, Version.tls12, handshakeBytes(HandshakeType.server_hello, body)),
    );
  });
  expectAlert(o, AlertDescription.decode_error, /truncated ServerHello/);
});

test("a suite the client did not offer: illegal_parameter", async () => {
  const o = await run(async (conn, hello) => {
    await conn.write(serverHello(hello, { cipherSuite: 0x000a }));
  });
  expectAlert(o, AlertDescription.illegal_parameter, /did not offer/);
});

test("SSL 3.0: protocol_version", async () => {
  const o = await run(async (conn, hello) => {
    await conn.write(serverHello(hello, { version: 0x0300 }));
  });
  expectAlert(o, AlertDescription.protocol_version, /outside the allowed range/);
});

test("a TLS 1.2 ServerHello carrying the TLS 1.3 downgrade sentinel: illegal_parameter", async () => {
  const o = await run(
    async (conn, hello) => {
      await conn.write(serverHello(hello, { random: Buffer.concat([randomBytes(24), DOWNGRADE_TLS12]) }));
    },
    { maxVersion: "1.3" },
  );
  expectAlert(o, AlertDescription.illegal_parameter, /downgrade/);
});

test("an extension the client never sent: unsupported_extension", async () => {
  const o = await run(async (conn, hello) => {
    await conn.write(serverHello(hello, { extensions: [{ type: 0x1234, data: Buffer.alloc(0) }] }));
  });
  expectAlert(o, AlertDescription.unsupported_extension, /did not offer/);
});

test("a handshake message claiming 16 MiB: refused before buffering it", async () => {
  const o = await run(async (conn) => {
    await conn.write(
      recordBytes(
        ContentType.handshake,
        Version.tls12,
        Buffer.from([HandshakeType.certificate, 0xff, 0xff, 0xff]),
      ),
    );
  });
  expectAlert(o, AlertDescription.illegal_parameter, /too large/);
});

test("application data before the handshake: unexpected_message", async () => {
  const o = await run(async (conn) => {
    await conn.write(recordBytes(ContentType.applicationData, Version.tls12, Buffer.from("early")));
  });
  expectAlert(o, AlertDescription.unexpected_message, /before the handshake/);
});

test("an empty handshake record: unexpected_message", async () => {
  const o = await run(async (conn) => {
    await conn.write(recordBytes(ContentType.handshake, Version.tls12, Buffer.alloc(0)));
  });
  expectAlert(o, AlertDescription.unexpected_message, /empty handshake record/);
});

test("a ChangeCipherSpec out of turn: unexpected_message", async () => {
  const o = await run(async (conn) => {
    await conn.write(recordBytes(ContentType.changeCipherSpec, Version.tls12, Buffer.from([1])));
  });
  expectAlert(o, AlertDescription.unexpected_message, /unexpected ChangeCipherSpec/);
});

test("a malformed alert: decode_error", async () => {
  const o = await run(async (conn) => {
    await conn.write(recordBytes(ContentType.alert, Version.tls12, Buffer.from([2, 40, 0])));
  });
  expectAlert(o, AlertDescription.decode_error, /malformed alert/);
});

test("ServerHello fragmented into one-byte records, then Certificate where ServerHelloDone would do: handled in order", async () => {
  const o = await run(async (conn, hello) => {
    const sh = serverHello(hello, { cipherSuite: 0x003c }).subarray(5);
    const pieces = [...sh].map((b) => recordBytes(ContentType.handshake, Version.tls12, Buffer.from([b])));
    await conn.writeSlowly(Buffer.concat(pieces), 7, 1);
    await conn.write(
      recordBytes(
        ContentType.handshake,
        Version.tls12,
        handshakeBytes(HandshakeType.server_hello_done, Buffer.alloc(0)),
      ),
    );
  });
  expectAlert(o, AlertDescription.unexpected_message, /expected certificate, got server_hello_done/);
});

test("a fatal alert from the server is reported, and no alert is sent back", async () => {
  script = async (conn) => {
    await conn.write(
      recordBytes(ContentType.alert, Version.tls12, alertBytes(2, AlertDescription.handshake_failure)),
    );
  };
  const o = await run(script);
  assert.match(o.error.message, /server sent alert handshake_failure/);
  assert.deepEqual(o.result.alerts, []);
});

test("the server closes mid-record: a clear error, no hang", async () => {
  const o = await run(async (conn) => {
    await conn.write(recordHeader(ContentType.handshake, Version.tls12, 100));
    conn.end();
  });
  assert.match(o.error.message, /closed by peer during the TLS handshake/);
});

test("the server says nothing: the handshake times out and the client closes", async () => {
  const o = await run(() => new Promise((r) => setTimeout(r, 1500)), { handshakeTimeout: 500 });
  assert.match(o.error.message, /timed out/);
  assert.ok(o.result.clientClosed !== null);
});

test("a flood of warning alerts during a TLS 1.2 handshake: unexpected_message", async () => {
  const o = await run(async (conn) => {
    const warning = recordBytes(
      ContentType.alert,
      Version.tls12,
      alertBytes(1, AlertDescription.no_renegotiation),
    );
    await conn.write(Buffer.concat(Array.from({ length: 40 }, () => warning)));
  });
  expectAlert(o, AlertDescription.unexpected_message, /too many warning alerts/);
});

test("a warning alert inside a TLS 1.3 handshake is fatal (RFC 8446 §6)", async () => {
  const o = await run(
    async (conn, hello) => {
      const { record, protection } = serverHello13(hello);
      const alert = protection.seal(
        ContentType.alert,
        Version.tls12,
        alertBytes(1, AlertDescription.no_renegotiation),
      );
      await conn.write(Buffer.concat([record, alert]));
    },
    { maxVersion: "1.3" },
  );
  assert.match(o.error.message, /server sent alert no_renegotiation/);
  assert.deepEqual(o.result.alerts, [], "no alert answers the peer's own");
});

test("a flood of compatibility ChangeCipherSpecs in a TLS 1.3 handshake: unexpected_message", async () => {
  let keys: RecordProtection | undefined;
  const o = await run(
    async (conn, hello) => {
      const ccs = recordBytes(ContentType.changeCipherSpec, Version.tls12, Buffer.from([1]));
      const sh = serverHello13(hello);
      keys = sh.clientProtection;
      await conn.write(Buffer.concat([sh.record, ...Array.from({ length: 40 }, () => ccs)]));
    },
    { maxVersion: "1.3" },
  );
  expectProtectedAlert(o, keys, AlertDescription.unexpected_message, /too many ChangeCipherSpec records/);
});

/** ServerHello (ECDHE-RSA-AES128-GCM), a real RSA certificate, and a ServerKeyExchange signed with `signature`. */
function ecdheFlight(hello: Buffer, signature: Buffer): Buffer {
  const ske = encodeEcdheServerKeyExchange({
    group: NamedGroup.x25519,
    publicKey: generateKeyShare(NamedGroup.x25519).publicKey,
    scheme: 0x0804,
    signature,
  });
  const messages = Buffer.concat([
    handshakeBytes(HandshakeType.certificate, encodeCertificate12([serverLeaf])),
    handshakeBytes(HandshakeType.server_key_exchange, ske),
  ]);
  return Buffer.concat([serverHello(hello), recordBytes(ContentType.handshake, Version.tls12, messages)]);
}

// The alert for each fault, as RFC 8446 §6.2 and RFC 5246 §7.2.2 name it.
for (const c of [
  {
    name: "a ServerKeyExchange with an empty signature: decrypt_error",
    bytes: (hello: Buffer) => ecdheFlight(hello, Buffer.alloc(0)),
    alert: AlertDescription.decrypt_error,
    message: /signature is invalid/,
  },
  {
    name: "a ServerKeyExchange with a wrong signature: decrypt_error",
    bytes: (hello: Buffer) => ecdheFlight(hello, randomBytes(256)),
    alert: AlertDescription.decrypt_error,
    message: /signature is invalid/,
  },
  {
    name: "a TLS 1.2 ChangeCipherSpec of two bytes: decode_error (RFC 5246 §7.1 fixes its length)",
    bytes: () => recordBytes(ContentType.changeCipherSpec, Version.tls12, Buffer.from([1, 1])),
    alert: AlertDescription.decode_error,
    message: /malformed ChangeCipherSpec/,
  },
]) {
  test(c.name, async () => {
    const o = await run(async (conn, hello) => {
      await conn.write(c.bytes(hello));
    });
    expectAlert(o, c.alert, c.message);
  });
}

test("a TLS 1.3 compatibility ChangeCipherSpec of two bytes: unexpected_message (RFC 8446 §5)", async () => {
  let keys: RecordProtection | undefined;
  const o = await run(
    async (conn, hello) => {
      const ccs = recordBytes(ContentType.changeCipherSpec, Version.tls12, Buffer.from([1, 1]));
      const sh = serverHello13(hello);
      keys = sh.clientProtection;
      await conn.write(Buffer.concat([sh.record, ccs]));
    },
    { maxVersion: "1.3" },
  );
  expectProtectedAlert(o, keys, AlertDescription.unexpected_message, /malformed ChangeCipherSpec/);
});

test("TLS 1.3: an alert between the fragments of an encrypted handshake message is unexpected_message (RFC 8446 §5.1)", async () => {
  let keys: RecordProtection | undefined;
  const o = await run(
    async (conn, hello) => {
      const { record, protection, clientProtection } = serverHello13(hello);
      keys = clientProtection;
      const ee = handshakeBytes(HandshakeType.encrypted_extensions, Buffer.from([0, 0]));
      const seal = (type: number, data: Buffer) => protection.seal(type, Version.tls12, data);
      await conn.write(
        Buffer.concat([
          record,
          seal(ContentType.handshake, ee.subarray(0, 3)),
          seal(ContentType.alert, alertBytes(1, AlertDescription.no_renegotiation)),
          seal(ContentType.handshake, ee.subarray(3)),
        ]),
      );
    },
    { maxVersion: "1.3" },
  );
  expectProtectedAlert(
    o,
    keys,
    AlertDescription.unexpected_message,
    /between the fragments of a handshake message/,
  );
});
