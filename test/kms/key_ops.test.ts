/**
 * Signatures over digests (MessageType DIGEST) with unwrapped key material: RSA through the
 * raw RSA operation plus our PSS/PKCS#1 layout, EC through `openssl pkeyutl`. node:crypto and
 * openssl, which hash the message themselves, are the judges.
 */
import assert from "node:assert/strict";
import {
  constants,
  createHash,
  generateKeyPairSync,
  publicDecrypt,
  randomBytes,
  sign,
  verify,
} from "node:crypto";
import { describe, it } from "node:test";
import { generateMaterial, loadMaterial, signDigest, verifyDigest } from "../../src/kms/key_ops.ts";
import { pssVerify } from "../../src/kms/pss.ts";
import { signAlgorithm } from "../../src/kms/specs.ts";

const alg = (name: string) => {
  const a = signAlgorithm(name);
  assert.ok(a, name);
  return a;
};

describe("digest signatures", () => {
  it("RSA PSS and PKCS#1 over digests verify as message signatures, and back", async () => {
    const material = await generateMaterial("RSA_3072");
    const key = loadMaterial("RSA_3072", material.secret);
    assert.equal(key.kind, "rsa");
    if (key.kind !== "rsa") return;
    const message = randomBytes(10_000);
    for (const [name, hash, options] of [
      ["RSA_PSS_SHA_256", "sha256", { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
      ["RSA_PSS_SHA_512", "sha512", { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 64 }],
      ["RSA_PKCS1_SHA_384", "sha384", { padding: constants.RSA_PKCS1_PADDING }],
    ] as const) {
      const digest = createHash(hash).update(message).digest();
      const sig = await signDigest(key, alg(name), digest);
      assert.ok(verify(hash, message, { key: key.publicKey, ...options }, sig), name);
      const made: Buffer = sign(hash, message, { key: key.privateKey, ...options });
      assert.equal(await verifyDigest(key, alg(name), digest, made), true, name);
      assert.equal(
        await verifyDigest(key, alg(name), createHash(hash).update("x").digest(), made),
        false,
        name,
      );
      assert.equal(
        await verifyDigest(key, alg(name), digest, made.subarray(1)),
        false,
        `${name} short signature`,
      );
    }
  });

  it("PSS verification insists on salt length = hash length", () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const message = Buffer.from("salted");
    const digest = createHash("sha256").update(message).digest();
    // The raw RSA public operation on a signature gives back its encoded block.
    const raw = (saltLength: number) =>
      publicDecrypt(
        { key: publicKey, padding: constants.RSA_NO_PADDING },
        sign("sha256", message, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }),
      );
    assert.equal(pssVerify("sha256", digest, raw(32), 2048), true);
    assert.equal(pssVerify("sha256", digest, raw(20), 2048), false);
    assert.equal(pssVerify("sha256", digest, raw(constants.RSA_PSS_SALTLEN_MAX_SIGN), 2048), false);
    const block = raw(32);
    block[block.length - 1] = 0xbb; // trailer byte
    assert.equal(pssVerify("sha256", digest, block, 2048), false);
    assert.equal(pssVerify("sha256", digest, raw(32).subarray(1), 2048), false);
  });

  it("ECDSA over digests (P-256, P-384) through openssl pkeyutl: DER that node:crypto verifies", async () => {
    for (const [spec, name, hash] of [
      ["EC_P256", "ECDSA_SHA_256", "sha256"],
      ["EC_P384", "ECDSA_SHA_384", "sha384"],
    ] as const) {
      const key = loadMaterial(spec, (await generateMaterial(spec)).secret);
      if (key.kind !== "ec") assert.fail("EC key expected");
      const message = randomBytes(5000);
      const digest = createHash(hash).update(message).digest();
      const sig = await signDigest(key, alg(name), digest);
      assert.equal(sig[0], 0x30);
      assert.ok(verify(hash, message, key.publicKey, sig), name);
      assert.equal(await verifyDigest(key, alg(name), digest, sign(hash, message, key.privateKey)), true);
      assert.equal(await verifyDigest(key, alg(name), digest, Buffer.from("3006020101020101", "hex")), false);
      await assert.rejects(signDigest(key, alg(name), digest.subarray(1)), /digest is/);
    }
  });
});
