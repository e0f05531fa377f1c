import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { expandLabel, hashMessages, hkdfExpand, type Tls13Hash } from "../../src/tls/key_schedule.ts";

/** OpenSSL's own HKDF-Expand-Label (TLS13-KDF, expand only), which builds the HkdfLabel itself. */
function opensslExpandLabel(hash: Tls13Hash, secret: Buffer, label: string, context: Buffer, length: number) {
  const out = execFileSync("openssl", [
    "kdf",
    "-keylen",
    String(length),
    "-kdfopt",
    `digest:${hash.toUpperCase()}`,
    "-kdfopt",
    "mode:EXPAND_ONLY",
    "-kdfopt",
    `hexkey:${secret.toString("hex")}`,
    "-kdfopt",
    "prefix:tls13 ",
    "-kdfopt",
    `label:${label}`,
    ...(context.length ? ["-kdfopt", `hexdata:${context.toString("hex")}`] : []),
    "TLS13-KDF",
  ]).toString();
  return Buffer.from(out.replace(/[:\s]/g, ""), "hex");
}

for (const hash of ["sha256", "sha384"] as const) {
  test(`HKDF-Expand-Label ${hash} matches openssl kdf TLS13-KDF (short, full and multi-block outputs)`, () => {
    const hashLength = hash === "sha256" ? 32 : 48;
    const secret = randomBytes(hashLength);
    const cases: Array<[string, Buffer, number]> = [
      ["key", Buffer.alloc(0), 16],
      ["iv", Buffer.alloc(0), 12],
      ["finished", Buffer.alloc(0), hashLength],
      ["derived", createHash(hash).digest(), hashLength],
      ["c hs traffic", randomBytes(hashLength), hashLength],
      ["resumption", randomBytes(8), hashLength],
      ["exp master", randomBytes(hashLength), 2 * hashLength + 7],
    ];
    for (const [label, context, length] of cases) {
      const ours = expandLabel(hash, secret, label, context, length);
      assert.equal(ours.length, length);
      assert.deepEqual(ours, opensslExpandLabel(hash, secret, label, context, length), `${label}/${length}`);
    }
  });
}

test("the empty transcript hash is the hash of nothing, and a caller changing it changes no later one", () => {
  for (const hash of ["sha256", "sha384"] as const) {
    const first = hashMessages(hash, []);
    assert.deepEqual(first, createHash(hash).digest());
    first.fill(0);
    assert.deepEqual(hashMessages(hash, []), createHash(hash).digest());
  }
});

test("HKDF-Expand refuses more than 255 blocks (RFC 5869 §2.3)", () => {
  assert.throws(() => hkdfExpand("sha256", randomBytes(32), Buffer.alloc(0), 255 * 32 + 1), /too long/);
  assert.equal(hkdfExpand("sha256", randomBytes(32), Buffer.alloc(0), 255 * 32).length, 255 * 32);
});
