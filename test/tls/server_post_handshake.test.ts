/**
 * A TLS 1.2 server after (and around) the handshake, against a raw client holding the session
 * keys: a renegotiation attempt gets a warning no_renegotiation and the connection carries on
 * (RFC 5246 §7.2.2), and records of another type between the fragments of a handshake message
 * end in unexpected_message (RFC 8446 §5.1, RFC 5246 §7.4).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { AlertDescription } from "../../src/tls/alert.ts";
import { ContentType } from "../../src/tls/constants.ts";
import { alertBytes, alertsIn, parseRecords, recordBytes } from "../helpers/hostile.ts";
import {
  clientHello,
  handshakeMessages,
  handshakeRecord,
  type RawClientTarget,
  RawConnection,
  rawClientTarget,
  rsaHandshake,
} from "./server_raw_client.ts";

const TLS12 = 0x0303;
let target: RawClientTarget;
let port: number;

before(async () => {
  target = await rawClientTarget({ maxVersion: "1.2", ciphers: "AES128-SHA256" });
  port = target.port;
});

after(() => target.close());

/**
 * Completes a handshake, sends `records(seal)` under the session keys, and returns what the
 * server sent afterwards, opened: [content type, plaintext] per record, until it closed.
 */
async function afterHandshake(
  records: (seal: (type: ContentType, data: Buffer) => Buffer) => Buffer[],
): Promise<Array<[ContentType, string]>> {
  const attempt = await rsaHandshake(port, "good", TLS12);
  try {
    // The server's ChangeCipherSpec and Finished came first: open from its Finished on, in order.
    const start = attempt.conn.received().length - attempt.answer.length;
    const seal = (type: ContentType, data: Buffer) => attempt.write.seal(type, TLS12, data);
    for (const r of records(seal)) attempt.conn.send(r);
    const { bytes } = await attempt.conn.finish(10_000);
    const [ccs, ...rest] = parseRecords(bytes.subarray(start)).records;
    assert.equal(ccs?.type, ContentType.change_cipher_spec);
    const opened = rest.map((r) => attempt.read.open(r.type, r.version, Buffer.from(r.payload)));
    return opened.slice(1).map((o) => [o.type, o.plaintext.toString("hex")]);
  } finally {
    attempt.conn.destroy();
  }
}

const hex = (b: Buffer) => b.toString("hex");

test("a ClientHello after the handshake gets a warning no_renegotiation and the connection carries on", async () => {
  const answer = await afterHandshake((seal) => [
    seal(ContentType.handshake, clientHello({ suites: [0x003c] })),
    seal(ContentType.application_data, Buffer.from("ping")),
  ]);
  assert.deepEqual(answer.slice(0, 2), [
    [ContentType.alert, hex(alertBytes(1, AlertDescription.no_renegotiation))],
    [ContentType.application_data, hex(Buffer.from("echo:ping"))],
  ]);
});

test("application data between the fragments of a handshake message: unexpected_message", async () => {
  const hello = clientHello({ suites: [0x003c] });
  const answer = await afterHandshake((seal) => [
    seal(ContentType.handshake, hello.subarray(0, 2)),
    seal(ContentType.application_data, Buffer.from("ping")),
  ]);
  assert.deepEqual(answer, [[ContentType.alert, hex(alertBytes(2, AlertDescription.unexpected_message))]]);
});

test("a warning alert between the fragments of the ClientHello: unexpected_message", async () => {
  const hello = clientHello({ suites: [0x003c] });
  const conn = await RawConnection.open(port);
  try {
    conn.send(handshakeRecord(hello.subarray(0, 10)));
    conn.send(recordBytes(ContentType.alert, TLS12, alertBytes(1, AlertDescription.no_renegotiation)));
    conn.send(handshakeRecord(hello.subarray(10)));
    const { bytes } = await conn.finish(10_000);
    const records = parseRecords(bytes).records;
    assert.deepEqual(handshakeMessages(records), [], "no ServerHello");
    assert.deepEqual(alertsIn(records), [{ level: 2, description: AlertDescription.unexpected_message }]);
  } finally {
    conn.destroy();
  }
});

test("renegotiation asked again and again with no data between: cut off with unexpected_message", async () => {
  const hello = clientHello({ suites: [0x003c] });
  const answer = await afterHandshake((seal) =>
    Array.from({ length: 40 }, () => seal(ContentType.handshake, hello)),
  );
  const warning = [ContentType.alert, hex(alertBytes(1, AlertDescription.no_renegotiation))];
  const fatal = [ContentType.alert, hex(alertBytes(2, AlertDescription.unexpected_message))];
  assert.deepEqual(answer, [...Array.from({ length: 32 }, () => warning), fatal]);
});
