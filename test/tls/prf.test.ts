import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { prf } from "../../src/tls/prf.ts";

/** OpenSSL's own TLS1-PRF, as an independent implementation to compare with. */
function opensslPrf(digest: string, secret: Buffer, seed: Buffer, length: number): Buffer {
  const out = execFileSync("openssl", [
    "kdf",
    "-keylen",
    String(length),
    "-kdfopt",
    `digest:${digest}`,
    "-kdfopt",
    `hexsecret:${secret.toString("hex")}`,
    "-kdfopt",
    `hexseed:${seed.toString("hex")}`,
    "TLS1-PRF",
  ]).toString();
  return Buffer.from(out.replace(/[:\s]/g, ""), "hex");
}

for (const [hash, digest] of [
  ["sha256", "SHA256"],
  ["sha384", "SHA384"],
  ["md5-sha1", "MD5-SHA1"],
] as const) {
  test(`PRF ${hash} matches openssl kdf TLS1-PRF (odd and even secrets, long outputs)`, () => {
    for (const secretLength of [47, 48, 13]) {
      const secret = randomBytes(secretLength);
      const seed = randomBytes(64);
      const ours = prf(hash, secret, "", seed, 104);
      assert.deepEqual(ours, opensslPrf(digest, secret, seed, 104));
    }
  });
}

test("PRF label is prepended to the seed", () => {
  const secret = randomBytes(48);
  const seed = randomBytes(16);
  assert.deepEqual(
    prf("sha256", secret, "master secret", seed, 48),
    opensslPrf("SHA256", secret, Buffer.concat([Buffer.from("master secret"), seed]), 48),
  );
});
