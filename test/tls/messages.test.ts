import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { TlsError } from "../../src/tls/alert.ts";
import { ProtocolVersion } from "../../src/tls/constants.ts";
import { HandshakeAssembler } from "../../src/tls/handshake_io.ts";
import {
  decodeCertificate12,
  decodeCertificateRequest12,
  decodeClientHello,
  decodeDigitallySigned,
  decodeEcdheServerKeyExchange,
  decodeServerHello,
  encodeCertificate12,
  encodeCertificateRequest12,
  encodeClientHello,
  encodeDigitallySigned,
  encodeEcdheServerKeyExchange,
  encodeServerHello,
  frameHandshake,
} from "../../src/tls/messages.ts";

const hello = {
  version: ProtocolVersion.TLS12,
  random: randomBytes(32),
  sessionId: randomBytes(32),
  cipherSuites: [0x003c, 0x002f, 0x00ff],
  compressionMethods: [0],
  extensions: [
    { type: 0, data: Buffer.from("0009000006686f73742e61", "hex") },
    { type: 23, data: Buffer.alloc(0) },
  ],
};
const serverHello = {
  version: hello.version,
  random: hello.random,
  sessionId: hello.sessionId,
  cipherSuite: 0x003c,
  compressionMethod: 0,
  extensions: hello.extensions,
};
const certReq = {
  certificateTypes: [1, 64],
  signatureSchemes: [0x0804, 0x0401],
  authorities: [randomBytes(40)],
};
const ske = { group: 29, publicKey: randomBytes(32), scheme: 0x0804, signature: randomBytes(256) };

/** Each codec: [name, encoded, decode, a truncation length that is legitimately complete]. */
const cases: Array<[string, Buffer, (b: Buffer) => unknown, number?]> = [
  // Hellos without extensions are complete messages (RFC 5246 §7.4.1.2), hence the exception.
  [
    "ClientHello",
    encodeClientHello(hello),
    decodeClientHello,
    encodeClientHello({ ...hello, extensions: [] }).length - 2,
  ],
  [
    "ServerHello",
    encodeServerHello(serverHello),
    decodeServerHello,
    encodeServerHello({ ...serverHello, extensions: [] }).length - 2,
  ],
  ["Certificate", encodeCertificate12([randomBytes(300), randomBytes(20)]), decodeCertificate12],
  [
    "CertificateRequest",
    encodeCertificateRequest12(certReq, ProtocolVersion.TLS12),
    (b) => decodeCertificateRequest12(b, ProtocolVersion.TLS12),
  ],
  [
    "ServerKeyExchange",
    encodeEcdheServerKeyExchange(ske),
    (b) => decodeEcdheServerKeyExchange(b, ProtocolVersion.TLS12),
  ],
  [
    "CertificateVerify",
    encodeDigitallySigned({ scheme: 0x0401, signature: randomBytes(64) }),
    (b) => decodeDigitallySigned(b, true),
  ],
];

test("codecs round-trip", () => {
  const ch = decodeClientHello(encodeClientHello(hello));
  assert.deepEqual(ch, hello);
  assert.deepEqual(decodeServerHello(encodeServerHello(serverHello)), serverHello);
  assert.deepEqual(
    decodeCertificateRequest12(
      encodeCertificateRequest12(certReq, ProtocolVersion.TLS12),
      ProtocolVersion.TLS12,
    ),
    certReq,
  );
  const s = decodeEcdheServerKeyExchange(encodeEcdheServerKeyExchange(ske), ProtocolVersion.TLS12);
  assert.deepEqual({ group: s.group, publicKey: s.publicKey, scheme: s.scheme, signature: s.signature }, ske);
});

for (const [name, encoded, decode, complete] of cases) {
  test(`${name}: every truncation, a trailing byte and random corruption raise TlsError, never anything else`, () => {
    for (let n = 0; n < encoded.length; n++) {
      if (n === complete) continue;
      assert.throws(() => decode(encoded.subarray(0, n)), TlsError, `truncated to ${n}`);
    }
    assert.throws(() => decode(Buffer.concat([encoded, Buffer.from([0])])), TlsError, "trailing byte");
    for (let i = 0; i < 300; i++) {
      const bad = Buffer.from(encoded);
      bad[Math.floor(Math.random() * bad.length)] = Math.floor(Math.random() * 256);
      try {
        decode(bad);
      } catch (err) {
        assert.ok(
          err instanceof TlsError,
          `corruption raised ${(err as Error).name}: ${(err as Error).message}`,
        );
      }
    }
  });
}

test("duplicate extensions are illegal_parameter", () => {
  const dup = encodeClientHello({ ...hello, extensions: [hello.extensions[1]!, hello.extensions[1]!] });
  assert.throws(
    () => decodeClientHello(dup),
    (e: unknown) => e instanceof TlsError && e.alert === 47,
  );
});

test("HandshakeAssembler splits coalesced messages and joins fragments; refuses giant lengths", () => {
  const a = frameHandshake(2, Buffer.from("first"));
  const b = frameHandshake(14, Buffer.alloc(0));
  const asm = new HandshakeAssembler();
  const all = Buffer.concat([a, b]);
  asm.push(all.subarray(0, 3));
  assert.equal(asm.next(), undefined);
  asm.push(all.subarray(3));
  assert.equal(asm.next()?.body.toString(), "first");
  assert.equal(asm.next()?.type, 14);
  assert.equal(asm.partial, false);
  const huge = new HandshakeAssembler();
  huge.push(Buffer.from([11, 0xff, 0xff, 0xff]));
  assert.throws(() => huge.next(), TlsError);
});
