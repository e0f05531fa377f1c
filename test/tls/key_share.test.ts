import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { AlertDescription, TlsError } from "../../src/tls/alert.ts";
import { generateKeyShare, NamedGroup } from "../../src/tls/key_share.ts";

const illegal = (e: unknown) => e instanceof TlsError && e.alert === AlertDescription.illegal_parameter;

for (const group of [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]) {
  test(`${NamedGroup[group]}: both sides agree on the same secret`, () => {
    const a = generateKeyShare(group);
    const b = generateKeyShare(group);
    assert.deepEqual(a.agree(b.publicKey), b.agree(a.publicKey));
  });

  test(`${NamedGroup[group]}: truncated, oversized and garbage public values are illegal_parameter`, () => {
    const a = generateKeyShare(group);
    const b = generateKeyShare(group).publicKey;
    assert.throws(() => a.agree(b.subarray(0, b.length - 1)), illegal);
    assert.throws(() => a.agree(Buffer.concat([b, Buffer.from([0])])), illegal);
    const bent = Buffer.from(b);
    bent[bent.length - 1]! ^= 0xff;
    if (group !== NamedGroup.x25519) assert.throws(() => a.agree(bent), illegal, "a point off the curve");
  });
}

test("X25519: small-order points (all-zero shared secret) are refused (RFC 7748 §6.1)", () => {
  const a = generateKeyShare(NamedGroup.x25519);
  assert.throws(() => a.agree(Buffer.alloc(32)), illegal);
  const one = Buffer.alloc(32);
  one[0] = 1;
  assert.throws(() => a.agree(one), illegal);
});

test("NIST curves: compressed points are refused (we offer uncompressed only)", () => {
  const a = generateKeyShare(NamedGroup.secp256r1);
  const b = generateKeyShare(NamedGroup.secp256r1).publicKey;
  const compressed = Buffer.concat([Buffer.from([2 + (b[64]! & 1)]), b.subarray(1, 33)]);
  assert.throws(() => a.agree(compressed), illegal);
});

test("X25519 shares made back to back under garbage-collection pressure never hang the process", () => {
  // Node 20 deadlocks when a just-generated key is exported as JWK and a collection runs meanwhile
  // (see key_share.ts); a small young generation and garbage between shares make that come within
  // a second. A child process, so a hang is a timeout here, not a stuck test runner.
  const script = `
    import { generateKeyShare, NamedGroup } from ${JSON.stringify(new URL("../../src/tls/key_share.ts", import.meta.url).href)};
    let junk = [];
    for (let i = 0; i < 20000; i++) {
      const a = generateKeyShare(NamedGroup.x25519);
      const b = generateKeyShare(NamedGroup.x25519);
      if (!a.agree(b.publicKey).equals(b.agree(a.publicKey))) throw new Error("secrets differ");
      junk.push("x".repeat(100) + i);
      if (junk.length > 1000) junk = [];
    }
    console.log("done");`;
  const out = spawnSync(
    process.execPath,
    ["--max-semi-space-size=1", "--import", "tsx", "--input-type=module", "-e", script],
    { timeout: 45_000, encoding: "utf8" },
  );
  assert.equal(out.signal, null, `the child hung (killed by ${out.signal})`);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /done/);
});
