/**
 * The handshake transcript: its running hashes against a direct hash of the concatenated
 * messages, for every transcript hash (SHA-256, SHA-384, the MD5||SHA-1 pair of TLS 1.0/1.1),
 * with the hash chosen after messages arrived; HelloRetryRequest's message_hash (RFC 8446
 * §4.4.1); the TLS 1.2 extended master secret's session hash (RFC 7627 §3) and the message
 * bytes a TLS 1.2 CertificateVerify signs; PSK binder hashes over a truncated ClientHello.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { TlsError } from "../../src/tls/alert.ts";
import { masterSecret, prf } from "../../src/tls/prf.ts";
import { Transcript, type TranscriptHash } from "../../src/tls/transcript.ts";

/** A framed handshake message of `type` with a random body of `length` bytes. */
function message(type: number, length: number): Buffer {
  return Buffer.concat([
    Buffer.from([type, length >> 16, (length >> 8) & 0xff, length & 0xff]),
    randomBytes(length),
  ]);
}

/** The hash of the concatenation, computed here without the Transcript. */
function direct(hash: TranscriptHash, parts: readonly Buffer[]): Buffer {
  const one = (a: string) => createHash(a).update(Buffer.concat(parts)).digest();
  return hash === "md5-sha1" ? Buffer.concat([one("md5"), one("sha1")]) : one(hash);
}

for (const hash of ["sha256", "sha384", "md5-sha1"] as const) {
  test(`${hash}: the running hash equals a hash of the concatenation, before and after the hash is chosen`, () => {
    const t = new Transcript();
    const messages = [message(1, 300), message(2, 90)];
    for (const m of messages) t.add(m);
    t.useHash(hash);
    assert.deepEqual(t.hash(), direct(hash, messages));
    for (let i = 0; i < 5; i++) {
      messages.push(message(11 + i, 50 * i));
      t.add(messages.at(-1)!);
      assert.deepEqual(t.hash(), direct(hash, messages), `after message ${messages.length}`);
    }
    assert.deepEqual(t.hash(), direct(hash, messages), "taking a digest leaves the running hash as it was");
    assert.deepEqual(t.bytes(), Buffer.concat(messages));
  });
}

test("HelloRetryRequest: ClientHello1 becomes message_hash = 254 || 00 00 Hash.length || Hash(ClientHello1)", () => {
  for (const hash of ["sha256", "sha384"] as const) {
    const [ch1, hrr, ch2, sh] = [message(1, 512), message(2, 88), message(1, 530), message(2, 90)];
    const t = new Transcript();
    t.add(ch1);
    t.add(hrr); // a client reads the HRR before it knows the hash
    t.useHash(hash);
    t.replaceWithMessageHash();
    const digest = createHash(hash).update(ch1).digest();
    const synthetic = Buffer.concat([Buffer.from([254, 0, 0, digest.length]), digest]);
    assert.deepEqual(t.hash(), direct(hash, [synthetic, hrr]));
    t.add(ch2);
    t.add(sh);
    assert.deepEqual(t.hash(), direct(hash, [synthetic, hrr, ch2, sh]));
    assert.notDeepEqual(t.hash(), direct(hash, [ch1, hrr, ch2, sh]));
  }
});

test("HelloRetryRequest on the server: message_hash first, the HRR written after it", () => {
  const [ch1, hrr] = [message(1, 200), message(2, 88)];
  const t = new Transcript();
  t.add(ch1);
  t.useHash("sha256");
  t.replaceWithMessageHash();
  t.add(hrr);
  const digest = createHash("sha256").update(ch1).digest();
  assert.deepEqual(t.hash(), direct("sha256", [Buffer.from([254, 0, 0, 32]), digest, hrr]));
});

test("TLS 1.2 extended master secret: the session hash covers the messages through ClientKeyExchange", () => {
  for (const hash of ["sha256", "md5-sha1"] as const) {
    const upToCke = [
      message(1, 200),
      message(2, 80),
      message(11, 900),
      message(12, 150),
      message(14, 0),
      message(16, 66),
    ];
    const t = new Transcript();
    t.add(upToCke[0]!);
    t.add(upToCke[1]!);
    t.useHash(hash);
    for (const m of upToCke.slice(2)) t.add(m);
    const sessionHash = t.hash();
    assert.deepEqual(sessionHash, direct(hash, upToCke));
    const premaster = randomBytes(48);
    assert.deepEqual(
      masterSecret(hash, premaster, randomBytes(32), randomBytes(32), sessionHash),
      prf(hash, premaster, "extended master secret", direct(hash, upToCke), 48),
    );
    // A 1.2 CertificateVerify signs the messages themselves; then they are let go.
    assert.deepEqual(t.bytes(), Buffer.concat(upToCke));
    const cv = message(15, 260);
    t.add(cv);
    t.releaseMessages();
    assert.throws(() => t.bytes(), TlsError);
    const finished = message(20, 12);
    t.add(finished);
    assert.deepEqual(
      t.hash(),
      direct(hash, [...upToCke, cv, finished]),
      "the hash runs on without the bytes",
    );
  }
});

test("PSK binder: hashWith covers the transcript and a truncated ClientHello without adding it", () => {
  const truncated = message(1, 300).subarray(0, 250);
  const empty = new Transcript();
  assert.deepEqual(
    empty.hashWith(truncated, "sha384"),
    direct("sha384", [truncated]),
    "before a hash is chosen",
  );
  const t = new Transcript();
  const [mh, hrr] = [message(254, 32), message(2, 88)];
  t.useHash("sha256");
  t.add(mh);
  t.add(hrr);
  assert.deepEqual(t.hashWith(truncated, "sha256"), direct("sha256", [mh, hrr, truncated]));
  assert.deepEqual(t.hash(), direct("sha256", [mh, hrr]), "the transcript is unchanged");
  assert.throws(() => t.hashWith(truncated, "sha384"), TlsError);
});

test("a snapshot keeps its state while the original goes on", () => {
  const t = new Transcript();
  const a = message(1, 100);
  t.add(a);
  t.useHash("sha256");
  const before = t.snapshot();
  const b = message(2, 100);
  t.add(b);
  assert.deepEqual(before.hash(), direct("sha256", [a]));
  assert.deepEqual(t.hash(), direct("sha256", [a, b]));
});

test("misuse is an internal_error, never a wrong hash", () => {
  const t = new Transcript();
  assert.throws(() => t.hash(), TlsError);
  assert.throws(() => t.releaseMessages(), TlsError);
  t.useHash("sha256");
  assert.throws(() => t.useHash("sha384"), TlsError);
  assert.throws(() => t.replaceWithMessageHash(), TlsError, "no ClientHello1 to replace");
});
