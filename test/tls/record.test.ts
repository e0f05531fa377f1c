import assert from "node:assert/strict";
import { createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { test } from "node:test";
import { AlertDescription, TlsError } from "../../src/tls/alert.ts";
import { suiteByName } from "../../src/tls/cipher_suites.ts";
import { ContentType, ProtocolVersion } from "../../src/tls/constants.ts";
import { ConstantWorkHmac } from "../../src/tls/mte_mac.ts";
import { AeadProtection, CbcProtection, type RecordProtection, Sequence } from "../../src/tls/protection.ts";
import { frameRecord, RecordReader } from "../../src/tls/record.ts";

const V12 = ProtocolVersion.TLS12;

function cbcPair(name: string, etm: boolean): [RecordProtection, RecordProtection] {
  const suite = suiteByName(name)!;
  const key = randomBytes(suite.keyLength);
  const mac = randomBytes(suite.macLength);
  return [new CbcProtection(suite, key, mac, etm), new CbcProtection(suite, key, mac, etm)];
}

function expectAlert(fn: () => unknown, alert: AlertDescription): void {
  assert.throws(fn, (err: unknown) => err instanceof TlsError && err.alert === alert);
}

for (const etm of [false, true]) {
  for (const name of [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
  ]) {
    test(`${name} ${etm ? "encrypt-then-MAC" : "MAC-then-encrypt"}: round trip, all lengths 0..70`, () => {
      const [w, r] = cbcPair(name, etm);
      for (let n = 0; n <= 70; n++) {
        const data = randomBytes(n);
        const sealed = w.seal(ContentType.application_data, V12, data).subarray(5);
        assert.deepEqual(r.open(ContentType.application_data, V12, sealed).plaintext, data);
      }
    });

    test(`${name} ${etm ? "EtM" : "MtE"}: any flipped bit, truncation or reorder is bad_record_mac`, () => {
      const [w, r] = cbcPair(name, etm);
      const sealed = w.seal(ContentType.application_data, V12, randomBytes(100)).subarray(5);
      for (let i = 0; i < sealed.length; i += 7) {
        const bad = Buffer.from(sealed);
        bad[i]! ^= 0x01;
        const [, fresh] = cbcPair(name, etm);
        expectAlert(
          () => fresh.open(ContentType.application_data, V12, bad),
          AlertDescription.bad_record_mac,
        );
      }
      expectAlert(
        () => r.open(ContentType.application_data, V12, sealed.subarray(0, sealed.length - 16)),
        AlertDescription.bad_record_mac,
      );
      expectAlert(
        () => r.open(ContentType.application_data, V12, Buffer.alloc(0)),
        AlertDescription.bad_record_mac,
      );
      // Right bytes but wrong sequence number (the record above consumed seq 0 in `r`).
      const [w2, r2] = cbcPair(name, etm);
      const first = w2.seal(ContentType.application_data, V12, Buffer.from("a")).subarray(5);
      const second = w2.seal(ContentType.application_data, V12, Buffer.from("b")).subarray(5);
      expectAlert(() => r2.open(ContentType.application_data, V12, second), AlertDescription.bad_record_mac);
      void first;
    });
  }
}

test("MAC-then-encrypt: a bad padding and a bad MAC fail identically", async () => {
  const { createCipheriv, createHmac } = await import("node:crypto");
  const suite = suiteByName("TLS_RSA_WITH_AES_128_CBC_SHA256")!;
  const key = randomBytes(16);
  const macKey = randomBytes(32);
  // Hand-build a record whose padding bytes are inconsistent but whose MAC is right.
  const plaintext = Buffer.from("attack at dawn");
  const header = Buffer.alloc(13);
  header[8] = ContentType.application_data;
  header.writeUInt16BE(V12, 9);
  header.writeUInt16BE(plaintext.length, 11);
  const mac = createHmac("sha256", macKey).update(header).update(plaintext).digest();
  const body = Buffer.concat([plaintext, mac]); // 46 bytes: 2 bytes of padding needed to reach 48
  const badPadding = Buffer.concat([body, Buffer.from([0x07, 0x01])]);
  const iv = randomBytes(16);
  const c = createCipheriv("aes-128-cbc", key, iv).setAutoPadding(false);
  const record = Buffer.concat([iv, c.update(badPadding), c.final()]);
  const errors: string[] = [];
  for (const rec of [record]) {
    try {
      new CbcProtection(suite, key, macKey, false).open(ContentType.application_data, V12, rec);
    } catch (e) {
      errors.push(`${(e as TlsError).alert}:${(e as TlsError).message}`);
    }
  }
  const tampered = Buffer.from(record);
  tampered[20]! ^= 1;
  try {
    new CbcProtection(suite, key, macKey, false).open(ContentType.application_data, V12, tampered);
  } catch (e) {
    errors.push(`${(e as TlsError).alert}:${(e as TlsError).message}`);
  }
  assert.equal(errors.length, 2);
  assert.equal(errors[0], errors[1]);
});

for (const alg of ["aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"] as const) {
  for (const tls13 of [false, true]) {
    test(`${alg} ${tls13 ? "TLS 1.3" : "TLS 1.2"} AEAD: round trip and tamper detection`, () => {
      const key = randomBytes(alg === "aes-128-gcm" ? 16 : 32);
      const iv = randomBytes(tls13 || alg === "chacha20-poly1305" ? 12 : 4);
      const w = new AeadProtection(alg, key, iv, tls13);
      const r = new AeadProtection(alg, key, iv, tls13);
      for (const n of [0, 1, 1000, 16384]) {
        const data = randomBytes(n);
        const sealed = w.seal(ContentType.handshake, V12, data).subarray(5);
        const opened = r.open(tls13 ? ContentType.application_data : ContentType.handshake, V12, sealed);
        assert.deepEqual(opened.plaintext, data);
        assert.equal(opened.type, ContentType.handshake);
      }
      const sealed = w.seal(ContentType.application_data, V12, Buffer.from("x")).subarray(5);
      const bad = Buffer.from(sealed);
      bad[bad.length - 1]! ^= 0x80;
      expectAlert(() => r.open(ContentType.application_data, V12, bad), AlertDescription.bad_record_mac);
    });
  }
}

test("RecordReader: reassembles records split at every byte, and coalesced records", () => {
  const recs = [
    frameRecord(ContentType.handshake, V12, Buffer.from("hello")),
    frameRecord(ContentType.alert, V12, Buffer.from([1, 0])),
  ];
  const all = Buffer.concat(recs);
  const reader = new RecordReader();
  const seen: string[] = [];
  for (let i = 0; i < all.length; i++) {
    reader.push(all.subarray(i, i + 1));
    for (let r = reader.next(); r; r = reader.next()) seen.push(`${r.type}:${r.body.toString("hex")}`);
  }
  assert.deepEqual(seen, [`22:${Buffer.from("hello").toString("hex")}`, "21:0100"]);
  assert.equal(reader.pending, 0);
});

test("RecordReader: oversized, unknown-type and non-TLS records get the right alert", () => {
  const oversized = Buffer.from([ContentType.application_data, 3, 3, 0x48, 0x01]);
  const r1 = new RecordReader();
  r1.push(oversized);
  expectAlert(() => r1.next(), AlertDescription.record_overflow);
  const r2 = new RecordReader();
  r2.push(Buffer.from([99, 3, 3, 0, 1, 0]));
  expectAlert(() => r2.next(), AlertDescription.unexpected_message);
  const r3 = new RecordReader();
  r3.push(Buffer.from("GET / HTTP/1.1\r\n"));
  expectAlert(() => r3.next(), AlertDescription.unexpected_message);
  const r4 = new RecordReader();
  r4.push(Buffer.from([ContentType.handshake, 9, 9, 0, 1, 0]));
  expectAlert(() => r4.next(), AlertDescription.protocol_version);
  const r5 = new RecordReader();
  r5.push(Buffer.from([ContentType.handshake, 3, 3, 0, 10, 1, 2]));
  assert.equal(r5.next(), undefined, "a truncated record waits for more bytes");
});

test("the constant-work MtE MAC equals HMAC for every hash, content length and filler amount", () => {
  for (const hash of ["sha1", "sha256", "sha384"] as const) {
    const key = randomBytes(hash === "sha1" ? 20 : hash === "sha256" ? 32 : 48);
    const mac = new ConstantWorkHmac(hash, key);
    const header = randomBytes(13);
    for (let length = 0; length <= 300; length += 7) {
      const content = randomBytes(length);
      const expected = createHmac(hash, key).update(header).update(content).digest();
      for (const slack of [0, 1, 63, 64, 200, 256]) {
        assert.deepEqual(mac.mac(header, content, length + slack), expected, `${hash} ${length}+${slack}`);
      }
    }
  }
});

test("the MtE MAC's hash work is the same for every padding length a record can carry", () => {
  for (const hash of ["sha1", "sha256", "sha384"] as const) {
    const mac = new ConstantWorkHmac(hash, randomBytes(20));
    for (let recordContent = 0; recordContent <= 1100; recordContent += 1) {
      const expected = mac.innerCompressions(13, recordContent);
      for (let pad = 0; pad <= Math.min(255, recordContent); pad++) {
        const content = recordContent - pad;
        const total = mac.innerCompressions(13, content) + mac.fillerBlocks(13, content, recordContent);
        assert.equal(total, expected, `${hash}: ${content} bytes of content, ${pad} of padding`);
      }
    }
  }
});

test("Sequence: counts across the 32-bit boundary and never issues 2^64 - 1", () => {
  const out = Buffer.alloc(8);
  const seq = new Sequence(0xfffffffen);
  const issued = [0, 1, 2].map(() => {
    seq.writeNext(out, 0);
    return out.toString("hex");
  });
  assert.deepEqual(issued, ["00000000fffffffe", "00000000ffffffff", "0000000100000000"]);
  const last = new Sequence(0xfffffffffffffffen);
  assert.equal(last.next().toString("hex"), "fffffffffffffffe");
  assert.throws(() => last.next(), /sequence number exhausted/);
});

test("AEAD records: each one opens by hand with its own nonce and additional data (RFC 8446 §5.2-5.3, RFC 5288 §3)", () => {
  const key = randomBytes(16);
  const iv = randomBytes(12);
  const tls13 = new AeadProtection("aes-128-gcm", key, iv, true);
  const tls12 = new AeadProtection("aes-128-gcm", key, iv.subarray(0, 4), false);
  for (let n = 0; n < 3; n++) {
    const text = randomBytes(100 + n);
    // TLS 1.3: nonce = iv XOR seq, additional data = the record header, inner type sealed last.
    const r13 = tls13.seal(ContentType.handshake, ProtocolVersion.TLS12, text);
    const nonce13 = Buffer.from(iv);
    nonce13[11]! ^= n;
    const d13 = createDecipheriv("aes-128-gcm", key, nonce13);
    d13.setAAD(r13.subarray(0, 5));
    d13.setAuthTag(r13.subarray(r13.length - 16));
    const inner = Buffer.concat([d13.update(r13.subarray(5, r13.length - 16)), d13.final()]);
    assert.deepEqual(inner, Buffer.concat([text, Buffer.of(ContentType.handshake)]));
    assert.equal(r13[0], ContentType.application_data);
    // TLS 1.2 GCM: explicit nonce = seq, additional data = seq, type, version, length.
    const r12 = tls12.seal(ContentType.application_data, ProtocolVersion.TLS12, text);
    const seq = Buffer.alloc(8);
    seq[7] = n;
    assert.deepEqual(r12.subarray(5, 13), seq);
    const d12 = createDecipheriv("aes-128-gcm", key, Buffer.concat([iv.subarray(0, 4), seq]));
    const aad = Buffer.concat([seq, Buffer.of(ContentType.application_data, 3, 3, 0, text.length)]);
    d12.setAAD(aad);
    d12.setAuthTag(r12.subarray(r12.length - 16));
    assert.deepEqual(Buffer.concat([d12.update(r12.subarray(13, r12.length - 16)), d12.final()]), text);
  }
});

test("AEAD records: a peer's protection opens what ours sealed, in order, and refuses a replayed record", () => {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  for (const [algorithm, fixed, tls13] of [
    ["aes-256-gcm", iv.subarray(0, 4), false],
    ["chacha20-poly1305", iv, false],
    ["chacha20-poly1305", iv, true],
  ] as const) {
    const sender = new AeadProtection(algorithm, key, fixed, tls13);
    const receiver = new AeadProtection(algorithm, key, fixed, tls13);
    const records = [0, 1, 2].map((n) =>
      sender.seal(ContentType.application_data, 0x0303, Buffer.alloc(50, n)),
    );
    for (const [n, r] of records.entries()) {
      const opened = receiver.open(r[0]!, r.readUInt16BE(1), r.subarray(5));
      assert.deepEqual(opened.plaintext, Buffer.alloc(50, n), `${algorithm} record ${n}`);
    }
    assert.throws(
      () => receiver.open(records[2]![0]!, 0x0303, records[2]!.subarray(5)),
      (e: unknown) => e instanceof TlsError && e.alert === AlertDescription.bad_record_mac,
    );
  }
});
