/**
 * AdvanceEncrypt, AdvanceDecrypt and AdvanceGenerateDataKey through the SDK against a real
 * server: blobs that carry their key and version (no KeyId to decrypt, still open after
 * rotation), bound to key and version (a re-labelled blob does not open), hostile blobs
 * refused with InvalidCiphertext, and the refusals the other operations give.
 */
import assert from "node:assert/strict";
import { type KeyObject, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { adminCreateKey, adminRotateKey, adminSetKeyState } from "../../src/kms/admin.ts";
import { aesGcmOpen } from "../../src/kms/key_ops.ts";
import { type ApClient, type KmsFixture, refused, startKms } from "./kms_fixture.ts";

let kms: KmsFixture;
let aesKey: string;
let otherAes: string;
let rsaKey: string;
let signKey: string;
let full: ApClient;

before(async () => {
  kms = await startKms();
  aesKey = (await adminCreateKey(kms.instance, "AES_256", "ENCRYPT/DECRYPT", "", "alias/advance")).id;
  otherAes = (await adminCreateKey(kms.instance, "AES_256", "ENCRYPT/DECRYPT")).id;
  rsaKey = (await adminCreateKey(kms.instance, "RSA_2048", "ENCRYPT/DECRYPT")).id;
  signKey = (await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY")).id;
  full = await kms.client("key-*,alias/*");
});
after(() => kms.close());

const aad = Buffer.from("tenant=42");

describe("Advance operations", () => {
  it("AdvanceEncrypt / AdvanceDecrypt round-trip without a KeyId, and after rotation", async () => {
    const plaintext = Buffer.from("database password: hunter2");
    const sealed = await full.kms.advanceEncrypt({ keyId: "alias/advance", plaintext, aad });
    assert.equal(sealed.KeyId, aesKey);
    assert.equal(sealed.Algorithm, "AES_GCM");
    assert.equal(sealed.Iv.length, 12);
    assert.match(sealed.KeyVersionId, /^[0-9a-f]{32}$/);
    assert.ok(!sealed.CiphertextBlob.includes(plaintext));
    const opened = await full.kms.advanceDecrypt({ ciphertextBlob: sealed.CiphertextBlob, aad });
    assert.deepEqual(opened.Plaintext, plaintext);
    assert.equal(opened.KeyId, aesKey);
    assert.equal(opened.KeyVersionId, sealed.KeyVersionId);

    const rotated = await adminRotateKey(kms.instance, aesKey);
    const again = await full.kms.advanceDecrypt({ ciphertextBlob: sealed.CiphertextBlob, aad });
    assert.deepEqual(again.Plaintext, plaintext);
    const fresh = await full.kms.advanceEncrypt({ keyId: aesKey, plaintext });
    assert.equal(fresh.KeyVersionId, rotated.id);
    assert.notEqual(fresh.KeyVersionId, sealed.KeyVersionId);
    assert.deepEqual(
      (await full.kms.advanceDecrypt({ ciphertextBlob: fresh.CiphertextBlob })).Plaintext,
      plaintext,
    );
  });

  it("seals with RSA-OAEP under an RSA key; the blob names the key, opens after rotation, binds the Aad", async () => {
    const plaintext = randomBytes(100);
    const sealed = await full.kms.advanceEncrypt({ keyId: rsaKey, plaintext, aad });
    assert.equal(sealed.Algorithm, "RSAES_OAEP_SHA_256");
    await adminRotateKey(kms.instance, rsaKey);
    const opened = await full.kms.advanceDecrypt({ ciphertextBlob: sealed.CiphertextBlob, aad });
    assert.deepEqual(opened.Plaintext, plaintext);
    assert.equal(opened.KeyId, rsaKey);
    await refused(full.kms.advanceDecrypt({ ciphertextBlob: sealed.CiphertextBlob }), "InvalidCiphertext");
    const sha1 = await full.kms.advanceEncrypt({ keyId: rsaKey, plaintext, algorithm: "RSAES_OAEP_SHA_1" });
    assert.deepEqual(
      (await full.kms.advanceDecrypt({ ciphertextBlob: sha1.CiphertextBlob })).Plaintext,
      plaintext,
    );
  });

  it("AdvanceGenerateDataKey returns a data key AdvanceDecrypt opens", async () => {
    const dk = await full.kms.advanceGenerateDataKey({ keyId: aesKey, numberOfBytes: 24, aad });
    assert.equal(dk.Plaintext.length, 24);
    assert.equal(dk.Algorithm, "AES_GCM");
    assert.match(dk.KeyVersionId, /^[0-9a-f]{32}$/);
    const opened = await full.kms.advanceDecrypt({ ciphertextBlob: dk.CiphertextBlob, aad });
    assert.deepEqual(opened.Plaintext, dk.Plaintext);
    assert.equal((await full.kms.advanceGenerateDataKey({ keyId: aesKey })).Plaintext.length, 32);
    await refused(
      full.kms.advanceGenerateDataKey({ keyId: aesKey, numberOfBytes: 1025 }),
      "InvalidParameter",
    );
    await refused(full.kms.advanceGenerateDataKey({ keyId: rsaKey }), "UnsupportedOperation");
  });

  it("a blob re-labelled to another key or version, or with its algorithm byte changed, does not open", async () => {
    const sealed = await full.kms.advanceEncrypt({ keyId: aesKey, plaintext: Buffer.from("x") });
    const blob = sealed.CiphertextBlob;
    const idLength = blob[2] as number;
    assert.equal(blob.subarray(3, 3 + idLength).toString(), aesKey);
    const other = await kms.instance.keys.primaryVersion(otherAes);
    const relabelled = Buffer.concat([
      blob.subarray(0, 3),
      Buffer.from(otherAes),
      Buffer.from(other.id, "hex"),
      blob.subarray(3 + idLength + 16),
    ]);
    await refused(full.kms.advanceDecrypt({ ciphertextBlob: relabelled }), "InvalidCiphertext");
    const versions = await kms.instance.keys.versions(aesKey);
    const older = versions.find((v) => v.id !== sealed.KeyVersionId);
    assert.ok(older, "the key was rotated above");
    const otherVersion = Buffer.from(blob);
    Buffer.from(older.id, "hex").copy(otherVersion, 3 + idLength);
    await refused(full.kms.advanceDecrypt({ ciphertextBlob: otherVersion }), "InvalidCiphertext");
    const algorithm = Buffer.from(blob);
    algorithm[1] = 2;
    await refused(full.kms.advanceDecrypt({ ciphertextBlob: algorithm }), "InvalidCiphertext");
    await refused(full.kms.advanceDecrypt({ ciphertextBlob: blob, keyId: otherAes }), "InvalidCiphertext");
    // The header is the GCM additional data: the right key opens the body only with it.
    const key = await kms.instance.keys.resolve(aesKey);
    const version = await kms.instance.store.version(sealed.KeyVersionId);
    assert.ok(key && version);
    const loaded = await kms.instance.keys.load(key, version);
    assert.equal(loaded.kind, "aes");
    const headerEnd = 3 + idLength + 16;
    const iv = blob.subarray(headerEnd, headerEnd + 12);
    const body = blob.subarray(headerEnd + 12);
    const open = (extra: Buffer) =>
      aesGcmOpen((loaded as { secretKey: KeyObject }).secretKey, iv, extra, body);
    assert.deepEqual(open(blob.subarray(0, headerEnd)), Buffer.from("x"));
    assert.equal(open(Buffer.alloc(0)), undefined);
    assert.equal(
      (await full.kms.advanceDecrypt({ ciphertextBlob: blob, keyId: "alias/advance" })).KeyId,
      aesKey,
    );
  });

  it("refuses truncated, oversized, corrupted and garbage blobs with InvalidCiphertext", async () => {
    const blob = (await full.kms.advanceEncrypt({ keyId: aesKey, plaintext: Buffer.from("secret value") }))
      .CiphertextBlob;
    const hostile: Buffer[] = [];
    for (let n = 1; n < blob.length; n++) hostile.push(blob.subarray(0, n));
    const tag = Buffer.from(blob);
    tag[tag.length - 1] = (tag[tag.length - 1] ?? 0) ^ 1;
    const longId = Buffer.from(blob);
    longId[2] = 255;
    const zeroId = Buffer.from(blob);
    zeroId[2] = 0;
    const badFormat = Buffer.from(blob);
    badFormat[0] = 7;
    hostile.push(tag, longId, zeroId, badFormat, randomBytes(300), Buffer.concat([blob, randomBytes(4096)]));
    hostile.push(
      Buffer.concat([Buffer.from([2, 2, 4]), Buffer.from("key-"), Buffer.alloc(16), randomBytes(600)]),
    );
    for (const bad of hostile) {
      await refused(full.kms.advanceDecrypt({ ciphertextBlob: bad }), "InvalidCiphertext");
    }
    await refused(full.kms.advanceDecrypt({ ciphertextBlob: Buffer.alloc(0) }), "MissingParameter");
  });

  it("gives the other operations' codes for usage, state, policy and a caller IV", async () => {
    await refused(
      full.kms.advanceEncrypt({ keyId: signKey, plaintext: Buffer.from("x") }),
      "UnsupportedOperation",
    );
    await refused(
      full.kms.advanceEncrypt({ keyId: aesKey, plaintext: Buffer.from("x"), iv: randomBytes(12) }),
      "InvalidParameter",
    );
    await refused(full.kms.advanceEncrypt({ keyId: aesKey, plaintext: Buffer.alloc(0) }), "MissingParameter");
    await refused(
      full.kms.advanceEncrypt({ keyId: "key-000000000000000000000000", plaintext: Buffer.from("x") }),
      "Forbidden.KeyNotFound",
    );
    const sealed = await full.kms.advanceEncrypt({ keyId: otherAes, plaintext: Buffer.from("x") });
    const onlyAesKey = await kms.client(aesKey);
    await refused(
      onlyAesKey.kms.advanceDecrypt({ ciphertextBlob: sealed.CiphertextBlob }),
      "Forbidden.NoPermission",
    );
    const encryptOnly = await kms.client("key-*", { operations: "Encrypt,Decrypt" });
    await refused(
      encryptOnly.kms.advanceEncrypt({ keyId: aesKey, plaintext: Buffer.from("x") }),
      "Forbidden.NoPermission",
    );
    await adminSetKeyState(kms.instance, otherAes, "disable");
    try {
      await refused(full.kms.advanceDecrypt({ ciphertextBlob: sealed.CiphertextBlob }), "IncorrectKeyState");
      await refused(full.kms.advanceGenerateDataKey({ keyId: otherAes }), "IncorrectKeyState");
    } finally {
      await adminSetKeyState(kms.instance, otherAes, "enable");
    }
    await refused(
      full.kms.advanceEncrypt({ keyId: aesKey, plaintext: Buffer.from("x"), aad: Buffer.alloc(8193) }),
      "InvalidParameter",
    );
  });

  it("audits each call with the key, algorithm and version", async () => {
    const dk = await full.kms.advanceGenerateDataKey({ keyId: aesKey });
    const entries = (await kms.instance.audit.entries(5)).filter((e) => e.requestId === dk.RequestId);
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.operation, "AdvanceGenerateDataKey");
    assert.equal(entries[0]?.keyId, aesKey);
    assert.equal(entries[0]?.outcome, "ok");
    assert.match(entries[0]?.detail ?? "", /^AES_GCM 32B v\d+$/);
  });
});
