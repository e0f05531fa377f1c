import assert from "node:assert/strict";
import { constants, generateKeyPairSync, publicEncrypt, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import pkcs11js from "pkcs11js";
import { openKey } from "../../src/keys/index.ts";
import { loadModule } from "../../src/keys/pkcs11_module.ts";
import { unpadPkcs1Type2Implicit } from "../../src/keys/rsa_padding.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { createToken, type TestToken, tokenKey } from "../helpers/softhsm.ts";

/** decryptImplicit gives the message when padding and length are right, else the fallback, never a throw. */
async function checkImplicitRejection(key: PrivateKeyHandle): Promise<void> {
  const publicKey = key.publicKey;
  const bytes = Math.ceil((publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  const fallback = randomBytes(48);
  const message = randomBytes(48);
  const ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, message);
  assert.deepEqual(await key.decryptImplicit!(ct, 48, fallback), message);
  // A 47-byte message is well padded but the wrong length.
  const short = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, randomBytes(47));
  assert.deepEqual(await key.decryptImplicit!(short, 48, fallback), fallback);
  // c = 0 decrypts to m = 0, which a token may return as fewer bytes: the fallback, no throw.
  const lowCt = publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, Buffer.alloc(bytes, 0));
  assert.deepEqual(await key.decryptImplicit!(lowCt, 48, fallback), fallback);
  // Corrupted ciphertexts: wrong padding after decryption.
  for (let i = 0; i < 20; i++) {
    const bad = Buffer.from(ct);
    bad[10 + i]! ^= 0x40;
    assert.deepEqual(await key.decryptImplicit!(bad, 48, fallback), fallback);
  }
  // Wrong size, and a value not below the modulus.
  assert.deepEqual(await key.decryptImplicit!(ct.subarray(1), 48, fallback), fallback);
  assert.deepEqual(await key.decryptImplicit!(Buffer.alloc(bytes, 0xff), 48, fallback), fallback);
  // Still a working key after all of that.
  assert.deepEqual(await key.decryptImplicit!(ct, 48, fallback), message);
}

test("file key decryptImplicit: implicit rejection", async () => {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const path = join(mkdtempSync(join(tmpdir(), "hsmkit-implicit-")), "k.pem");
  writeFileSync(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  const key = await openKey(path);
  try {
    await checkImplicitRejection(key);
  } finally {
    await key.close();
  }
});

test("SoftHSM2 key decryptImplicit: raw RSA in the token, padding judged with masks", async () => {
  const token = await createToken();
  const key = await openKey(await tokenKey(token, "tls-rsa", "rsa2048"));
  try {
    await checkImplicitRejection(key);
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

/** An RSA-2048 key pair in the token whose private key may use only `mechanisms` (CKA_ALLOWED_MECHANISMS). */
function restrictedTokenKey(token: TestToken, label: string, mechanisms: readonly number[]): string {
  const { lib } = loadModule(token.module);
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.label);
  assert.ok(slot);
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    // CKA_ALLOWED_MECHANISMS is an array of CK_ULONG.
    const allowed = Buffer.alloc(8 * mechanisms.length);
    for (const [i, m] of mechanisms.entries()) allowed.writeBigUInt64LE(BigInt(m), 8 * i);
    lib.C_GenerateKeyPair(
      session,
      { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 },
        { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
        { type: pkcs11js.CKA_ENCRYPT, value: true },
      ],
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_DECRYPT, value: true },
        { type: pkcs11js.CKA_ALLOWED_MECHANISMS, value: allowed },
      ],
    );
  } finally {
    lib.C_CloseSession(session);
  }
  return token.uri(label);
}

test("a token key allowed only raw RSA: implicit rejection works through CKM_RSA_X_509 alone", async () => {
  const token = await createToken();
  const key = await openKey(restrictedTokenKey(token, "raw-only", [pkcs11js.CKM_RSA_X_509]));
  try {
    await checkImplicitRejection(key);
    // CKM_RSA_PKCS is refused by the token: a plain decrypt is a token error, not a bad ciphertext.
    const ct = publicEncrypt({ key: key.publicKey, padding: constants.RSA_PKCS1_PADDING }, randomBytes(48));
    await assert.rejects(key.decrypt(ct), (err: Error) =>
      /CKR_MECHANISM_INVALID|CKR_KEY_FUNCTION/.test(err.message),
    );
  } finally {
    await key.close();
  }
});

test("a token key that refuses raw RSA falls back to CKM_RSA_PKCS, still without throwing", async () => {
  const token = await createToken();
  const key = await openKey(restrictedTokenKey(token, "pkcs-only", [pkcs11js.CKM_RSA_PKCS]));
  try {
    await checkImplicitRejection(key);
  } finally {
    await key.close();
  }
});
