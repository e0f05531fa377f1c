import assert from "node:assert/strict";
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
