/**
 * Handshake reassembly costs linear work whatever the fragmentation (issue 9, finding 2), and a
 * peer that spreads one message over more records than any sane sender would is cut off with a
 * fatal unexpected_message: on the server (a raw client sending a 64 KiB ClientHello one byte per
 * record) and on the client (a hostile server doing the same with its Certificate).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { AlertDescription, TlsError } from "../../src/tls/alert.ts";
import { connect } from "../../src/tls/client.ts";
import { HandshakeType } from "../../src/tls/constants.ts";
import { HandshakeAssembler } from "../../src/tls/handshake_io.ts";
import {
  alertsIn,
  ContentType,
  handshakeBytes,
  hostileServer,
  parseRecords,
  recordBytes,
  Version,
} from "../helpers/hostile.ts";
import {
  clientHello,
  defaultExtensions,
  type RawClientTarget,
  RawConnection,
  rawClientTarget,
} from "./server_raw_client.ts";

/** Every record of `message` carrying one byte of it. */
function oneBytePerRecord(message: Buffer): Buffer {
  const out: Buffer[] = [];
  for (const b of message) out.push(recordBytes(ContentType.handshake, Version.tls12, Buffer.from([b])));
  return Buffer.concat(out);
}

/** Runs `fn` counting the bytes Buffer.concat and Buffer#copy write, i.e. the copying reassembly does. */
function countCopied(fn: () => void): number {
  const concat = Buffer.concat;
  const copy = Buffer.prototype.copy;
  let copied = 0;
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const out = concat.call(Buffer, list, total);
    copied += out.length;
    return out;
  }) as typeof Buffer.concat;
  Buffer.prototype.copy = function (this: Buffer, ...args: Parameters<Buffer["copy"]>) {
    const n = copy.apply(this, args);
    copied += n;
    return n;
  };
  try {
    fn();
  } finally {
    Buffer.concat = concat;
    Buffer.prototype.copy = copy;
  }
  return copied;
}

test("assembler: a message fed one byte at a time is copied once (linear, not quadratic)", () => {
  for (const size of [2048, 8192]) {
    const message = handshakeBytes(HandshakeType.certificate, Buffer.alloc(size, 7));
    const assembler = new HandshakeAssembler(Number.POSITIVE_INFINITY);
    const got: Buffer[] = [];
    const copied = countCopied(() => {
      for (let i = 0; i < message.length; i++) {
        assembler.push(message.subarray(i, i + 1));
        for (let m = assembler.next(); m; m = assembler.next()) got.push(m.raw);
      }
    });
    assert.equal(got.length, 1);
    assert.deepEqual(got[0], message);
    assert.ok(copied <= 2 * message.length, `${copied} bytes copied for a ${message.length}-byte message`);
  }
});

test("assembler: the record bound counts per message and resets when one completes", () => {
  const message = handshakeBytes(HandshakeType.certificate, Buffer.alloc(12, 1));
  const assembler = new HandshakeAssembler(16);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < message.length; i++) assembler.push(message.subarray(i, i + 1));
    assert.deepEqual(assembler.next()?.raw, message, "16 records for a 16-byte message are fine");
  }
  const big = handshakeBytes(HandshakeType.certificate, Buffer.alloc(13, 1));
  assert.throws(
    () => {
      for (let i = 0; i < big.length; i++) assembler.push(big.subarray(i, i + 1));
    },
    (err: unknown) => err instanceof TlsError && err.alert === AlertDescription.unexpected_message,
  );
});

test("assembler: one handshake brings at most its byte budget; after handshakeDone only per-message bounds apply", () => {
  const message = handshakeBytes(HandshakeType.certificate, Buffer.alloc(96, 1));
  const refused = (err: unknown) =>
    err instanceof TlsError && err.alert === AlertDescription.unexpected_message;
  const during = new HandshakeAssembler(16, 250);
  during.push(message);
  during.push(message);
  assert.equal(during.next()?.raw.length, 100);
  assert.equal(during.next()?.raw.length, 100);
  assert.throws(() => during.push(message), refused, "the third message passes 250 bytes");
  const afterwards = new HandshakeAssembler(16, 250);
  afterwards.handshakeDone();
  for (let i = 0; i < 5; i++) {
    afterwards.push(message);
    assert.equal(afterwards.next()?.raw.length, 100);
  }
});

let target: RawClientTarget;
let port: number;

before(async () => {
  target = await rawClientTarget({ handshakeTimeout: 60_000 });
  port = target.port;
});

after(() => target.close());

test("server: a 64 KiB ClientHello in 1-byte records gets a fatal unexpected_message at the record bound", async () => {
  // A valid ClientHello padded to 64 KiB with an unknown extension the server ignores.
  const padding = { type: 0xfe00, data: Buffer.alloc(65_000) };
  const hello = clientHello({ suites: [0xc02f, 0x003c], extensions: [...defaultExtensions(), padding] });
  const conn = await RawConnection.open(port);
  try {
    conn.send(oneBytePerRecord(hello));
    const { bytes, closed } = await conn.finish(20_000);
    const records = parseRecords(bytes).records;
    assert.deepEqual(
      alertsIn(records).map((a) => [a.level, a.description]),
      [[2, AlertDescription.unexpected_message]],
      "one fatal unexpected_message and nothing else",
    );
    assert.equal(records.length, 1, "no ServerHello before the alert");
    assert.equal(closed, "fin", "the server closed the connection");
  } finally {
    conn.destroy();
  }
});

test("client: a server Certificate in 1-byte records gets a fatal unexpected_message at the record bound", async () => {
  const hostile = await hostileServer(
    async (conn) => {
      await conn.write(oneBytePerRecord(handshakeBytes(HandshakeType.certificate, Buffer.alloc(60_000))));
      await conn.waitForClose(20_000);
    },
    { lingerMs: 20_000 },
  );
  try {
    const sock = connect({ host: hostile.host, port: hostile.port, rejectUnauthorized: false });
    const error = await new Promise<Error>((resolve) => {
      sock.once("error", resolve);
      sock.once("secureConnect", () => resolve(new Error("handshake unexpectedly succeeded")));
    });
    assert.ok(error instanceof TlsError, `TlsError, got ${error}`);
    assert.match(error.message, /more than 1024 records/);
    const result = await hostile.nextResult(30_000);
    assert.deepEqual(
      result.alerts.map((a) => [a.level, a.description]),
      [[2, AlertDescription.unexpected_message]],
    );
    assert.ok(result.clientClosed !== null, "the client closed the connection");
  } finally {
    await hostile.close();
  }
});
