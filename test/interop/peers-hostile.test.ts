/**
 * Self-tests of test/helpers/hostile.ts against real TLS clients (openssl s_client and Node's
 * tls): the server hands the script the ClientHello, delivers hostile bytes, and records the
 * client's alert and close.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import tls from "node:tls";
import {
  alertBytes,
  ContentType,
  handshakeBytes,
  hostileServer,
  parseRecords,
  recordBytes,
  recordHeader,
  Version,
} from "../helpers/hostile.ts";
import { opensslClient } from "../helpers/peers.ts";

const CLIENT_HELLO = 1;
const SERVER_HELLO = 2;
const ALERT = { unexpectedMessage: 10, recordOverflow: 22, decodeError: 50, handshakeFailure: 40 } as const;

/** Runs s_client once against the hostile server; its outcome matters less than what the server saw. */
function sClient(port: number) {
  return opensslClient({ port, args: ["-tls1_2"], input: "", timeoutMs: 10_000 });
}

test("hands the script the ClientHello and records the client's alert for a malformed ServerHello", async (t) => {
  const server = await hostileServer(async (conn, hello) => {
    assert.equal(hello[0], CLIENT_HELLO);
    assert.equal(hello.length, 4 + hello.readUIntBE(1, 3));
    assert.equal(conn.firstRecords[0], ContentType.handshake);
    await conn.write(
      recordBytes(ContentType.handshake, Version.tls12, handshakeBytes(SERVER_HELLO, Buffer.from([3]))),
    );
    await conn.waitForClose(5000);
  });
  t.after(() => server.close());
  const client = await sClient(server.port);
  assert.notEqual(client.exitCode, 0);
  const result = await server.nextResult();
  assert.equal(result.error, undefined);
  assert.equal(result.clientHello?.[0], CLIENT_HELLO);
  assert.deepEqual(result.alerts, [{ level: 2, description: ALERT.decodeError }]);
  assert.ok(result.clientClosed, "client closed");
});

test("oversized record length and unknown content type draw the right alerts, even byte by byte", async (t) => {
  const cases = [
    {
      bytes: Buffer.concat([recordHeader(ContentType.handshake, Version.tls12, 0x4801), Buffer.alloc(64)]),
      alert: ALERT.recordOverflow,
    },
    { bytes: recordBytes(99, Version.tls12, Buffer.from("garbage")), alert: ALERT.unexpectedMessage },
  ];
  for (const c of cases) {
    const server = await hostileServer(async (conn) => {
      await conn.writeSlowly(c.bytes, 3, 1);
      await conn.waitForClose(5000);
    });
    t.after(() => server.close());
    await sClient(server.port);
    const result = await server.nextResult();
    assert.deepEqual(result.alerts, [{ level: 2, description: c.alert }], JSON.stringify(result.records));
  }
});

test("a truncated record then FIN: the client gives up and the close is recorded", async (t) => {
  const server = await hostileServer(async (conn) => {
    const full = recordBytes(
      ContentType.handshake,
      Version.tls12,
      handshakeBytes(SERVER_HELLO, Buffer.alloc(70)),
    );
    await conn.write(full.subarray(0, 20));
    conn.end();
    await conn.waitForClose(5000);
  });
  t.after(() => server.close());
  const client = await sClient(server.port);
  assert.notEqual(client.exitCode, 0);
  const result = await server.nextResult();
  assert.ok(result.clientClosed);
  assert.equal(result.error, undefined);
});

test("nextRecord reads what Node's tls client sends back; a silent client times out cleanly", async (t) => {
  let seen: { type: number; payload: Buffer } | undefined;
  const server = await hostileServer(async (conn) => {
    await conn.write(
      recordBytes(ContentType.handshake, Version.tls12, handshakeBytes(SERVER_HELLO, Buffer.alloc(2))),
    );
    seen = await conn.nextRecord(5000);
  });
  t.after(() => server.close());
  const socket = tls.connect({ host: "127.0.0.1", port: server.port, rejectUnauthorized: false });
  t.after(() => socket.destroy());
  await new Promise<Error>((resolve) => socket.once("error", resolve));
  const result = await server.nextResult();
  assert.equal(result.error, undefined);
  assert.equal(seen?.type, ContentType.alert);
  assert.deepEqual([...(seen?.payload ?? [])], [2, ALERT.decodeError]);
  assert.ok(result.clientClosed);
  assert.deepEqual(parseRecords(result.received).records, result.records);

  const quiet = await hostileServer(() => {}, { helloTimeoutMs: 200 });
  t.after(() => quiet.close());
  const { connect } = await import("node:net");
  const raw = connect(quiet.port, "127.0.0.1");
  t.after(() => raw.destroy());
  const silent = await quiet.nextResult(5000);
  assert.equal(silent.clientHello, null);
  assert.match(silent.error ?? "", /no first message from the client within 200 ms/);
});

test("framing helpers write exact bytes and parse only complete records", () => {
  const hs = handshakeBytes(SERVER_HELLO, Buffer.from([0xaa, 0xbb]));
  assert.deepEqual([...hs], [2, 0, 0, 2, 0xaa, 0xbb]);
  const rec = recordBytes(ContentType.alert, Version.tls12, alertBytes(2, 40));
  assert.deepEqual([...rec], [21, 3, 3, 0, 2, 2, 40]);
  assert.deepEqual([...recordHeader(23, Version.tls11, 0xffff)], [23, 3, 2, 0xff, 0xff]);
  const two = Buffer.concat([rec, rec.subarray(0, 6)]);
  const { records, rest } = parseRecords(two);
  assert.equal(records.length, 1);
  assert.deepEqual([...rest], [...rec.subarray(0, 6)]);
  assert.throws(() => recordBytes(22, Version.tls12, Buffer.alloc(0x10000)), RangeError);
});
