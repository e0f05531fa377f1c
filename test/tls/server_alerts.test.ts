/**
 * The TLS 1.2 server answers malformed client messages with the alert RFC 8446 §6.2 and RFC
 * 5246 §7.2.2 name: decode_error when lengths do not add up (a Finished of the wrong length,
 * ClientHello extensions overrunning their block or the message).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { AlertDescription } from "../../src/tls/alert.ts";
import { alertsIn, parseRecords } from "../helpers/hostile.ts";
import {
  clientHello,
  handshakeRecord,
  type RawClientTarget,
  RawConnection,
  rawClientTarget,
  rsaHandshake,
} from "./server_raw_client.ts";

let target: RawClientTarget;

before(async () => {
  target = await rawClientTarget({ maxVersion: "1.2", ciphers: "AES128-SHA256" });
});

after(() => target.close());

test("a client Finished of 11 bytes: decode_error (not decrypt_error)", async () => {
  const attempt = await rsaHandshake(target.port, "short-finished");
  const { bytes } = await attempt.conn.finish();
  attempt.conn.destroy();
  const answer = bytes.subarray(bytes.length - attempt.answer.length);
  assert.deepEqual(alertsIn(parseRecords(answer).records), [
    { level: 2, description: AlertDescription.decode_error },
  ]);
});

/** Offset of the extensions block length in a ClientHello message (header included) with one suite. */
const EXTENSIONS_LENGTH_AT = 4 + 2 + 32 + 1 + 2 + 2 + 1 + 1;

for (const [name, corrupt] of [
  [
    "the extensions block claims more than the message holds",
    (h: Buffer) => h.writeUInt16BE(h.readUInt16BE(EXTENSIONS_LENGTH_AT) + 1, EXTENSIONS_LENGTH_AT),
  ],
  [
    "the first extension claims more than its block holds",
    (h: Buffer) => h.writeUInt16BE(0xfff0, EXTENSIONS_LENGTH_AT + 4),
  ],
] as const) {
  test(`a ClientHello where ${name}: decode_error`, async () => {
    const hello = Buffer.from(clientHello({ suites: [0x003c] }));
    corrupt(hello);
    const conn = await RawConnection.open(target.port);
    try {
      conn.send(handshakeRecord(hello));
      const { bytes } = await conn.finish();
      assert.deepEqual(alertsIn(parseRecords(bytes).records), [
        { level: 2, description: AlertDescription.decode_error },
      ]);
    } finally {
      conn.destroy();
    }
  });
}
