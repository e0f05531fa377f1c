/**
 * Session resumption and extended master secret on the TLS 1.2 server (RFC 7627 §5.3): a
 * session made with EMS (by `openssl s_client`) is resumed only by a ClientHello with the
 * extension and aborts with handshake_failure without it; a session made without EMS (by a raw
 * client) is never resumed, with or without the extension: the server runs a full handshake.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { AlertDescription } from "../../src/tls/alert.ts";
import { ContentType, ExtensionType, HandshakeType } from "../../src/tls/constants.ts";
import { decodeServerHello } from "../../src/tls/messages.ts";
import { alertsIn, parseRecords } from "../helpers/hostile.ts";
import { opensslClient } from "../helpers/peers.ts";
import {
  clientHello,
  defaultExtensions,
  handshakeRecord,
  type RawClientTarget,
  RawConnection,
  rawClientTarget,
  rsaHandshake,
} from "./server_raw_client.ts";

const EMS = { type: ExtensionType.extended_master_secret, data: Buffer.alloc(0) };
let target: RawClientTarget;
let dir: string;

before(async () => {
  target = await rawClientTarget({ maxVersion: "1.2", ciphers: "AES128-SHA256" });
  dir = await mkdtemp(path.join(tmpdir(), "hsmkit-ems-"));
});

after(async () => {
  await target.close();
  await rm(dir, { recursive: true, force: true });
});

/** What the server answers a ClientHello offering `sessionId`: resumed or full, or the alerts it sent. */
async function offer(sessionId: Buffer, withEms: boolean): Promise<string> {
  const conn = await RawConnection.open(target.port);
  try {
    const extensions = withEms ? [...defaultExtensions(), EMS] : defaultExtensions();
    conn.send(handshakeRecord(clientHello({ suites: [0x003c], sessionId, extensions })));
    const types = () => parseRecords(conn.received()).records.map((r) => r.type);
    // A resumption answers ServerHello then ChangeCipherSpec; a full handshake ServerHello, Certificate...
    await conn.until(() => types().length >= 2 || types().includes(ContentType.alert));
    const records = parseRecords(conn.received()).records;
    const alerts = alertsIn(records);
    if (alerts.length > 0) return `alerts ${JSON.stringify(alerts.map((a) => [a.level, a.description]))}`;
    const hello = records[0]!.payload;
    assert.equal(hello[0], HandshakeType.server_hello);
    const sh = decodeServerHello(hello.subarray(4, 4 + hello.readUIntBE(1, 3)));
    const resumed = sh.sessionId.equals(sessionId) && records[1]?.type === ContentType.change_cipher_spec;
    return resumed ? "resumed" : "full";
  } finally {
    conn.destroy();
  }
}

test("a session made with EMS: resumed with the extension, handshake_failure without it", async () => {
  const r = await opensslClient({
    port: target.port,
    args: ["-tls1_2", "-cipher", "AES128-SHA256", "-no_ticket", "-sess_out", path.join(dir, "s.pem")],
    input: "",
  });
  assert.match(r.output, /Extended master secret: yes/);
  const id = /Session-ID: ([0-9A-F]+)/.exec(r.output)?.[1];
  assert.ok(id, r.output);
  const sessionId = Buffer.from(id, "hex");
  assert.equal(await offer(sessionId, true), "resumed");
  assert.equal(await offer(sessionId, false), `alerts [[2,${AlertDescription.handshake_failure}]]`);
});

test("a session made without EMS is not resumed, with or without the extension", async () => {
  const attempt = await rsaHandshake(target.port, "good");
  attempt.conn.destroy();
  const sessionId = attempt.serverHello.sessionId;
  assert.equal(sessionId.length, 32, "the server gave the session an ID");
  assert.equal(await offer(sessionId, true), "full");
  assert.equal(await offer(sessionId, false), "full");
});
