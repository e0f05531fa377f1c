/**
 * An EC public key that is the point at infinity (the single octet 00) is imported by OpenSSL
 * as a key that ends the whole process with a native assertion when Node reads its details
 * (found by fuzzing). Every place a peer or a file can bring such a key refuses it with an
 * error: the SPKI check, certificate parsing, a TLS client given it by a server (the right
 * alert, the process alive), and `hsmkit verify --pubkey`.
 */
import assert from "node:assert/strict";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AlertDescription, TlsError } from "../../../src/tls/alert.ts";
import { connect } from "../../../src/tls/client.ts";
import { HandshakeType } from "../../../src/tls/constants.ts";
import { encodeCertificate12, encodeServerHello } from "../../../src/tls/messages.ts";
import { Certificate } from "../../../src/tls/x509/certificate.ts";
import { children, readSingle, Tag } from "../../../src/tls/x509/der.ts";
import { X509ParseError } from "../../../src/tls/x509/errors.ts";
import { spkiProblem } from "../../../src/tls/x509/spki.ts";
import {
  ContentType,
  type HostileServer,
  handshakeBytes,
  hostileServer,
  parseRecords,
  recordBytes,
  Version,
} from "../../helpers/hostile.ts";
import { HSMKIT_BIN } from "../../helpers/hsmkit.ts";
import { makePki, type Pki } from "../../helpers/pki.ts";
import { runCommand } from "../../helpers/process.ts";
import {
  clientHello,
  handshakeMessages,
  handshakeRecord,
  RawConnection,
  rawClientTarget,
} from "../server_raw_client.ts";

/** A DER element with a minimal length. */
function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), body]);
}

/** A P-256 SPKI whose key is `point` (the BIT STRING's content after the unused-bits octet). */
function p256Spki(point: Buffer, unusedBits = 0): Buffer {
  const algorithm = Buffer.from("301306072a8648ce3d020106082a8648ce3d030107", "hex");
  return tlv(
    Tag.SEQUENCE,
    Buffer.concat([algorithm, tlv(Tag.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), point]))]),
  );
}

const INFINITY = p256Spki(Buffer.from([0]));

/** `cert` with its subject public key replaced (the signature no longer matches: parsing comes first). */
function withSpki(cert: Buffer, spki: Buffer): Buffer {
  const [tbs, signatureAlgorithm, signature] = children(readSingle(cert, Tag.SEQUENCE, "cert"), "cert");
  assert.ok(tbs && signatureAlgorithm && signature);
  const fields = children(tbs, "tbs");
  // version [0], serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
  const at = fields[0]?.tag === 0xa0 ? 6 : 5;
  const replaced = fields.map((f, i) => (i === at ? spki : f.bytes));
  return tlv(
    Tag.SEQUENCE,
    Buffer.concat([tlv(Tag.SEQUENCE, Buffer.concat(replaced)), signatureAlgorithm.bytes, signature.bytes]),
  );
}

let pki: Pki;
let hostile: HostileServer;
let badLeaf: Buffer;
const dir = mkdtempSync(join(tmpdir(), "hsmkit-infinity-"));

before(async () => {
  pki = await makePki();
  badLeaf = withSpki(new X509Certificate(pki.server.certPem).raw, INFINITY);
  hostile = await hostileServer(async (conn) => {
    const hello = encodeServerHello({
      version: 0x0303,
      random: randomBytes(32),
      sessionId: Buffer.alloc(0),
      cipherSuite: 0xc02b,
      compressionMethod: 0,
      extensions: [],
    });
    const flight = Buffer.concat([
      handshakeBytes(HandshakeType.server_hello, hello),
      handshakeBytes(HandshakeType.certificate, encodeCertificate12([badLeaf])),
    ]);
    await conn.write(recordBytes(ContentType.handshake, Version.tls12, flight));
  });
});
after(async () => {
  await hostile?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("the SPKI check refuses the point at infinity, hybrid points and unused bits; accepts both usual forms", () => {
  assert.match(spkiProblem(INFINITY) ?? "", /point at infinity/);
  assert.match(spkiProblem(p256Spki(Buffer.concat([Buffer.from([6]), randomBytes(64)]))) ?? "", /point form/);
  assert.match(
    spkiProblem(p256Spki(Buffer.concat([Buffer.from([4]), randomBytes(64)]), 1)) ?? "",
    /unused bits/,
  );
  assert.match(spkiProblem(p256Spki(Buffer.alloc(0))) ?? "", /point form/);
  assert.equal(spkiProblem(p256Spki(Buffer.concat([Buffer.from([4]), randomBytes(64)]))), undefined);
  assert.equal(spkiProblem(p256Spki(Buffer.concat([Buffer.from([2]), randomBytes(32)]))), undefined);
});

test("a certificate whose key is the point at infinity is a parse error, not a dead process", () => {
  assert.throws(
    () => Certificate.fromDer(badLeaf),
    (err: unknown) => err instanceof X509ParseError && /point at infinity/.test(err.message),
  );
});

test("a TLS client given such a certificate by the server sends bad_certificate and lives on", async () => {
  const sock = connect({
    host: hostile.host,
    port: hostile.port,
    rejectUnauthorized: false,
    maxVersion: "1.2",
    handshakeTimeout: 5000,
    ciphers: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  });
  const error = await new Promise<Error>((resolve) => {
    sock.once("error", resolve);
    sock.once("secureConnect", () => resolve(new Error("handshake unexpectedly succeeded")));
  });
  const result = await hostile.nextResult(10_000);
  assert.ok(error instanceof TlsError, String(error));
  assert.match(error.message, /point at infinity/);
  assert.deepEqual(
    result.alerts.map((a) => [a.level, a.description]),
    [[2, AlertDescription.bad_certificate]],
  );
});

test("a TLS server given such a client certificate sends bad_certificate and serves the next client", async () => {
  const target = await rawClientTarget({ clientCa: pki.root.certPem, requestCert: true, maxVersion: "1.2" });
  /** A connection that has the server's first flight (through ServerHelloDone). */
  const opened = async () => {
    const conn = await RawConnection.open(target.port);
    conn.send(handshakeRecord(clientHello({ suites: [0xc02f, 0x003c] }), 0x0301));
    const done = () =>
      handshakeMessages(conn.records()).some((m) => m.type === HandshakeType.server_hello_done);
    assert.ok(await conn.until(done), "the server sent its first flight");
    return conn;
  };
  try {
    const conn = await opened();
    const seen = conn.received().length;
    conn.send(handshakeRecord(handshakeBytes(HandshakeType.certificate, encodeCertificate12([badLeaf]))));
    const { bytes } = await conn.finish();
    const alerts = parseRecords(bytes.subarray(seen)).records.filter((r) => r.type === ContentType.alert);
    assert.deepEqual(
      alerts.map((r) => [...r.payload]),
      [[2, AlertDescription.bad_certificate]],
    );
    (await opened()).destroy(); // the server lives on and answers the next client
  } finally {
    await target.close();
  }
});

test("hsmkit verify --pubkey with such a key: one clear line, exit 2", async () => {
  const pem = `-----BEGIN PUBLIC KEY-----\n${INFINITY.toString("base64")}\n-----END PUBLIC KEY-----\n`;
  writeFileSync(join(dir, "infinity.pem"), pem);
  writeFileSync(join(dir, "data"), "data");
  writeFileSync(join(dir, "data.sig"), randomBytes(64));
  const r = await runCommand(HSMKIT_BIN, [
    "verify",
    "--pubkey",
    join(dir, "infinity.pem"),
    "--alg",
    "ecdsa-sha256",
    "--sig",
    join(dir, "data.sig"),
    "--in",
    join(dir, "data"),
  ]);
  assert.equal(r.signal, null, r.output);
  assert.equal(r.exitCode, 2, r.output);
  assert.match(r.stderr, /malformed/);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
});
