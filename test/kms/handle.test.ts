/**
 * `kms://` key handles against a real KMS on 127.0.0.1: the handle signs every scheme the KMS
 * offers (checked by node:crypto and openssl), opens through keys/ openKey once registered,
 * reports bad references and credentials with precise KeyError kinds, and `hsmkit sign`
 * accepts `--key kms://...`.
 */
import assert from "node:assert/strict";
import { constants, createHash, verify as cryptoVerify, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import { KeyError } from "../../src/keys/types.ts";
import { adminCreateKey } from "../../src/kms/admin.ts";
import { KmsKeyHandle } from "../../src/kms/handle.ts";
import { parseKmsRef } from "../../src/kms/kms_ref.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { runCommand } from "../helpers/process.ts";
import { type ApClient, type KmsFixture, startKms } from "./kms_fixture.ts";

let kms: KmsFixture;
let ap: ApClient;
let rsaKey: string;
let ecKey: string;

before(async () => {
  kms = await startKms();
  rsaKey = (await adminCreateKey(kms.instance, "RSA_2048", "SIGN/VERIFY")).id;
  ecKey = (await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY", "", "alias/ec-signer")).id;
  ap = await kms.client("*");
});
after(() => kms.close());

function ref(keyId: string, overrides: { clientKey?: string; passwordFile?: string } = {}): string {
  const q = new URLSearchParams({
    "client-key": overrides.clientKey ?? ap.clientKeyFile,
    "password-file": overrides.passwordFile ?? ap.passwordFile,
    ca: kms.instance.caPath,
  });
  return `kms://${kms.server.endpoint}/${keyId}?${q.toString()}`;
}

async function* chunks(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

describe("kms:// references", () => {
  it("parse strictly", () => {
    const r = parseKmsRef(
      "kms://127.0.0.1:8443/alias/a%2Fb?client-key=/k.json&password-file=/p.txt&ca=/ca.pem",
    );
    assert.deepEqual(r, {
      endpoint: "127.0.0.1:8443",
      keyId: "alias/a/b",
      clientKey: "/k.json",
      passwordFile: "/p.txt",
      ca: "/ca.pem",
    });
    for (const bad of [
      "kms://host/key-1?client-key=a&password-file=b",
      "kms://host:99999/key-1?client-key=a&password-file=b",
      "kms://host:1/?client-key=a&password-file=b",
      "kms://host:1/notakey?client-key=a&password-file=b",
      "kms://host:1/key-1?password-file=b",
      "kms://host:1/key-1?client-key=a",
      "kms://host:1/key-1?client-key=a&password-file=b&pin=1",
      "kms://host:1/key-1?client-key=a&client-key=b&password-file=b",
      "kms://host:1/key-1?client-key=%zz&password-file=b",
      "kms:host:1/key-1",
    ]) {
      assert.throws(
        () => parseKmsRef(bad),
        (e: unknown) => e instanceof KeyError && e.kind === "bad-reference",
        bad,
      );
    }
  });
});

describe("kms:// key handles", () => {
  it("an RSA handle signs PSS and PKCS#1 over bytes, streams and digests", async () => {
    const handle = await openKey(ref(rsaKey));
    assert.ok(handle instanceof KmsKeyHandle, "keys/ routes kms:// to the registered backend");
    try {
      assert.equal(handle.type, "rsa");
      assert.equal(handle.bits, 2048);
      assert.ok(handle.schemes.includes("rsa_pss_rsae_sha256"));
      assert.ok(!handle.schemes.includes("rsa_pkcs1_md5_sha1"), "the KMS has no MD5+SHA-1 signatures");
      const message = randomBytes(200_000);
      const pss = { key: handle.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
      assert.ok(cryptoVerify("sha256", message, pss, await handle.sign("rsa_pss_rsae_sha256", message)));
      assert.ok(
        cryptoVerify("sha256", message, pss, await handle.sign("rsa_pss_rsae_sha256", chunks(message, 7000))),
      );
      const digest384 = createHash("sha384").update(message).digest();
      const sig = await handle.signDigest?.("rsa_pkcs1_sha384", digest384);
      assert.ok(sig && cryptoVerify("sha384", message, handle.publicKey, sig));
      await assert.rejects(
        handle.sign("ecdsa_secp256r1_sha256", message),
        (e: KeyError) => e.kind === "unsupported",
      );
      await assert.rejects(handle.decrypt(randomBytes(256)), (e: KeyError) => e.kind === "unsupported");
    } finally {
      await handle.close();
    }
  });

  it("an EC handle (by alias) signs DER ECDSA for small and large messages", async () => {
    const handle = await openKey(ref("alias/ec-signer"));
    try {
      assert.equal(handle.type, "ec");
      assert.equal(handle.curve, "P-256");
      assert.equal(handle.schemes[0], "ecdsa_secp256r1_sha256");
      for (const size of [100, 300_000]) {
        const message = randomBytes(size);
        const sig = await handle.sign("ecdsa_secp256r1_sha256", message);
        assert.equal(sig[0], 0x30);
        assert.ok(cryptoVerify("sha256", message, handle.publicKey, sig), `${size} bytes`);
      }
    } finally {
      await handle.close();
    }
  });

  it("reports a wrong password, a missing client key and an unknown key precisely", async () => {
    const wrong = join(kms.dir, "wrong-password.txt");
    writeFileSync(wrong, "not the password");
    await assert.rejects(
      openKey(ref(rsaKey, { passwordFile: wrong })),
      (e: KeyError) => e.kind === "bad-passphrase",
    );
    await assert.rejects(
      openKey(ref(rsaKey, { clientKey: join(kms.dir, "missing.json") })),
      (e: KeyError) => e.kind === "not-found",
    );
    await assert.rejects(
      openKey(ref("key-000000000000000000000000")),
      (e: KeyError) => e.kind === "not-found",
    );
  });

  it("hsmkit sign --key kms://... writes a signature openssl verifies", async () => {
    const file = join(kms.dir, "to-sign.bin");
    writeFileSync(file, randomBytes(3 * 1024 * 1024));
    for (const [key, alg, opts] of [
      [ecKey, "ECDSA_SHA_256", []],
      [rsaKey, "RSA_PSS_SHA_256", ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]],
    ] as const) {
      const sig = join(kms.dir, `${alg}.sig`);
      const r = await runCommand(HSMKIT_BIN, [
        "sign",
        "--key",
        ref(key),
        "--alg",
        alg,
        "--in",
        file,
        "--out",
        sig,
      ]);
      assert.equal(r.exitCode, 0, r.output);
      const pub = join(kms.dir, `${alg}.pub`);
      writeFileSync(pub, (await ap.kms.getPublicKey(key)).PublicKey);
      const v = await runCommand("openssl", [
        "dgst",
        "-sha256",
        ...opts,
        "-verify",
        pub,
        "-signature",
        sig,
        file,
      ]);
      assert.equal(v.output.trim(), "Verified OK", alg);
      const mine = await runCommand(HSMKIT_BIN, [
        "verify",
        "--key",
        ref(key),
        "--alg",
        alg,
        "--in",
        file,
        "--sig",
        sig,
      ]);
      assert.equal(mine.stdout.trim(), "Verified OK");
    }
  });
});
