import assert from "node:assert/strict";
import { constants, generateKeyPairSync, publicEncrypt, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import { unpadPkcs1Type2Implicit } from "../../src/keys/rsa_padding.ts";

test("file key decryptImplicit: the message when padding and length are right, else the fallback, never a throw", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const path = join(mkdtempSync(join(tmpdir(), "hsmkit-implicit-")), "k.pem");
  writeFileSync(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  const key = await openKey(path);
  try {
    const fallback = randomBytes(48);
    const message = randomBytes(48);
    const ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, message);
    assert.deepEqual(await key.decryptImplicit!(ct, 48, fallback), message);
    // A 47-byte message is well padded but the wrong length.
    const short = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, randomBytes(47));
    assert.deepEqual(await key.decryptImplicit!(short, 48, fallback), fallback);
    // Corrupted ciphertexts: wrong padding after decryption.
    for (let i = 0; i < 20; i++) {
      const bad = Buffer.from(ct);
      bad[10 + i]! ^= 0x40;
      assert.deepEqual(await key.decryptImplicit!(bad, 48, fallback), fallback);
    }
    // Wrong size, and a value not below the modulus.
    assert.deepEqual(await key.decryptImplicit!(ct.subarray(1), 48, fallback), fallback);
    assert.deepEqual(await key.decryptImplicit!(Buffer.alloc(256, 0xff), 48, fallback), fallback);
  } finally {
    await key.close();
  }
});

test("unpadPkcs1Type2Implicit: each kind of bad padding selects the fallback", () => {
  const k = 256;
  const fallback = Buffer.alloc(48, 0xaa);
  const good = () => {
    const em = Buffer.alloc(k, 0x11);
    em[0] = 0;
    em[1] = 2;
    em[k - 49] = 0;
    em.fill(0x5c, k - 48);
    return em;
  };
  assert.deepEqual(unpadPkcs1Type2Implicit(good(), 48, fallback), Buffer.alloc(48, 0x5c));
  const cases: Array<[string, (em: Buffer) => void]> = [
    ["first byte", (em) => (em[0] = 1)],
    ["block type 1", (em) => (em[1] = 1)],
    ["no separator", (em) => (em[k - 49] = 7)],
    ["zero inside the padding", (em) => (em[5] = 0)],
    ["separator early (message too long)", (em) => (em[100] = 0)],
  ];
  for (const [name, spoil] of cases) {
    const em = good();
    spoil(em);
    assert.deepEqual(unpadPkcs1Type2Implicit(em, 48, fallback), fallback, name);
  }
});
