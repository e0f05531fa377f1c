/**
 * GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext and their Advance forms through
 * the SDK against a real server: the private key comes back wrapped under an AES KMS key and
 * opens with Decrypt (or AdvanceDecrypt) to the key whose public half was returned; openssl
 * reads the PEM; specs, formats, usages, states and policies are refused with the usual codes.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { writeFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { adminCreateKey, adminSetKeyState } from "../../src/kms/admin.ts";
import { KmsRequestError } from "../../src/kms/client.ts";
import { PAIR_GATE } from "../../src/kms/data_key_pair.ts";
import { encodeMessage } from "../../src/kms/proto.ts";
import { runCommand } from "../helpers/process.ts";
import { type ApClient, type KmsFixture, refused, signedHeaders, startKms } from "./kms_fixture.ts";

let kms: KmsFixture;
let aesKey: string;
let rsaKey: string;
let signKey: string;
let full: ApClient;

before(async () => {
  kms = await startKms();
  aesKey = (await adminCreateKey(kms.instance, "AES_256", "ENCRYPT/DECRYPT")).id;
  rsaKey = (await adminCreateKey(kms.instance, "RSA_2048", "ENCRYPT/DECRYPT")).id;
  signKey = (await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY")).id;
  full = await kms.client("key-*");
});
after(() => kms.close());

const aad = Buffer.from("pair context");

/** The SPKI DER of a PKCS#8 private key given as PEM or DER. */
function publicOf(privateKey: Buffer, format: "pem" | "der"): Buffer {
  const key =
    format === "pem"
      ? createPrivateKey(privateKey)
      : createPrivateKey({ key: privateKey, format, type: "pkcs8" });
  return createPublicKey(key).export({ type: "spki", format: "der" });
}

describe("data key pairs", () => {
  it("GenerateDataKeyPair RSA_2048 PEM: openssl reads it, Decrypt opens the wrapped copy", async () => {
    const pair = await full.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: "RSA_2048", aad });
    assert.equal(pair.KeyId, aesKey);
    assert.equal(pair.KeyPairSpec, "RSA_2048");
    assert.equal(pair.Algorithm, "AES_GCM");
    assert.match(pair.PrivateKeyPlaintext.toString(), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(pair.PublicKey.toString(), /^-----BEGIN PUBLIC KEY-----\n/);
    const file = join(kms.dir, "pair.key");
    writeFileSync(file, pair.PrivateKeyPlaintext, { mode: 0o600 });
    const fromOpenssl = await runCommand("openssl", ["pkey", "-in", file, "-pubout"]);
    assert.equal(fromOpenssl.exitCode, 0, fromOpenssl.output);
    assert.equal(fromOpenssl.stdout, pair.PublicKey.toString());
    const opened = await full.kms.decrypt({
      ciphertextBlob: pair.PrivateKeyCiphertextBlob,
      iv: pair.Iv,
      aad,
    });
    assert.deepEqual(opened.Plaintext, pair.PrivateKeyPlaintext);
    await refused(
      full.kms.decrypt({ ciphertextBlob: pair.PrivateKeyCiphertextBlob, iv: pair.Iv }),
      "InvalidCiphertext",
    );
  });

  it("GenerateDataKeyPairWithoutPlaintext EC_P256 DER returns only the wrapped private key", async () => {
    const pair = await full.kms.generateDataKeyPairWithoutPlaintext({
      keyId: aesKey,
      keyPairSpec: "EC_P256",
      keyFormat: "DER",
    });
    assert.equal("PrivateKeyPlaintext" in pair, false);
    const opened = await full.kms.decrypt({ ciphertextBlob: pair.PrivateKeyCiphertextBlob, iv: pair.Iv });
    assert.deepEqual(publicOf(opened.Plaintext, "der"), pair.PublicKey);
    assert.equal(
      createPublicKey({ key: pair.PublicKey, format: "der", type: "spki" }).asymmetricKeyDetails?.namedCurve,
      "prime256v1",
    );
  });

  it("the Advance forms wrap in an Advance blob that AdvanceDecrypt opens alone", async () => {
    const pair = await full.kms.advanceGenerateDataKeyPair({ keyId: aesKey, keyPairSpec: "EC_P384", aad });
    assert.match(pair.KeyVersionId, /^[0-9a-f]{32}$/);
    const opened = await full.kms.advanceDecrypt({ ciphertextBlob: pair.PrivateKeyCiphertextBlob, aad });
    assert.deepEqual(opened.Plaintext, pair.PrivateKeyPlaintext);
    assert.deepEqual(
      publicOf(opened.Plaintext, "pem"),
      createPublicKey(pair.PublicKey).export({ type: "spki", format: "der" }),
    );
    const bare = await full.kms.advanceGenerateDataKeyPairWithoutPlaintext({
      keyId: aesKey,
      keyPairSpec: "EC_P256",
    });
    const openedBare = await full.kms.advanceDecrypt({ ciphertextBlob: bare.PrivateKeyCiphertextBlob });
    assert.deepEqual(
      publicOf(openedBare.Plaintext, "pem"),
      createPublicKey(bare.PublicKey).export({ type: "spki", format: "der" }),
    );
    assert.equal(bare.KeyVersionId, pair.KeyVersionId);
  });

  it("refuses specs outside the set, unknown formats and algorithms, and the wrong keys", async () => {
    for (const spec of ["RSA_4096", "RSA_1024", "EC_P521", "AES_256", "rsa_2048"]) {
      await refused(full.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: spec }), "InvalidParameter");
    }
    await refused(full.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: "" }), "MissingParameter");
    await refused(
      full.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: "EC_P256", keyFormat: "JWK" }),
      "InvalidParameter",
    );
    await refused(
      full.kms.generateDataKeyPair({
        keyId: aesKey,
        keyPairSpec: "EC_P256",
        algorithm: "RSAES_OAEP_SHA_256",
      }),
      "InvalidParameter",
    );
    await refused(
      full.kms.generateDataKeyPair({ keyId: rsaKey, keyPairSpec: "EC_P256" }),
      "UnsupportedOperation",
    );
    await refused(
      full.kms.advanceGenerateDataKeyPair({ keyId: signKey, keyPairSpec: "EC_P256" }),
      "UnsupportedOperation",
    );
    const other = await kms.client(rsaKey);
    await refused(
      other.kms.generateDataKeyPairWithoutPlaintext({ keyId: aesKey, keyPairSpec: "EC_P256" }),
      "Forbidden.NoPermission",
    );
    const noPairs = await kms.client("key-*", { operations: "GenerateDataKeyPair" });
    await refused(
      noPairs.kms.advanceGenerateDataKeyPair({ keyId: aesKey, keyPairSpec: "EC_P256" }),
      "Forbidden.NoPermission",
    );
    await adminSetKeyState(kms.instance, aesKey, "disable");
    try {
      await refused(
        full.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: "EC_P256" }),
        "IncorrectKeyState",
      );
    } finally {
      await adminSetKeyState(kms.instance, aesKey, "enable");
    }
  });

  it("audits the spec and format, never the key material", async () => {
    const pair = await full.kms.generateDataKeyPair({
      keyId: aesKey,
      keyPairSpec: "EC_P256",
      keyFormat: "DER",
    });
    const entry = (await kms.instance.audit.entries(5)).find((e) => e.requestId === pair.RequestId);
    assert.equal(entry?.operation, "GenerateDataKeyPair");
    assert.match(entry?.detail ?? "", /^EC_P256 DER v\d+$/);
  });

  it("a burst of RSA pair requests: 2 generate at once, 32 wait (8 per access point), the rest get Rejected.Throttling; EC pairs and Sign answer meanwhile", async () => {
    // One client keeps at most 32 requests in flight (its agent's sockets); four access points
    // each send 16, more than their share of the queue.
    const clients = await Promise.all([0, 1, 2, 3].map(() => kms.client("key-*")));
    let maxRunning = 0;
    let maxWaiting = 0;
    let maxPerOwner = 0;
    const sample = setInterval(() => {
      maxRunning = Math.max(maxRunning, PAIR_GATE.running);
      maxWaiting = Math.max(maxWaiting, PAIR_GATE.waiting());
      for (const c of clients) maxPerOwner = Math.max(maxPerOwner, PAIR_GATE.waiting(c.id));
    }, 2);
    const burst = clients.flatMap((c) =>
      Array.from({ length: 16 }, () =>
        c.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: "RSA_2048", aad }).catch((e: unknown) => e),
      ),
    );
    // Launched behind the burst, answered while it runs: neither waits in the RSA queue.
    const ec = full.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: "EC_P256", aad });
    const signer = await kms.client(signKey);
    const signed = signer.kms.sign({ keyId: signKey, algorithm: "ECDSA_SHA_256", message: aad });
    const [ecPair, signature] = await Promise.all([ec, signed]);
    const stillQueued = PAIR_GATE.running + PAIR_GATE.waiting();
    const outcomes = await Promise.all(burst).finally(() => clearInterval(sample));
    assert.equal(ecPair.KeyPairSpec, "EC_P256");
    assert.ok(signature.Signature.length > 0);
    assert.ok(stillQueued > 0, "the burst was over before EC and Sign answered: nothing shown");
    const throttled = outcomes.filter(
      (o) => o instanceof KmsRequestError && o.code === "Rejected.Throttling",
    );
    const pairs = outcomes.filter((o) => !(o instanceof Error));
    assert.equal(throttled.length + pairs.length, burst.length, "every other outcome is a pair");
    assert.ok(throttled.length >= 1, "nothing was throttled");
    assert.equal(maxRunning, PAIR_GATE.limit);
    assert.ok(maxWaiting <= PAIR_GATE.queue && maxWaiting > 0, `waiting peaked at ${maxWaiting}`);
    assert.ok(maxPerOwner <= PAIR_GATE.perOwner, `one access point had ${maxPerOwner} waiting`);
    assert.deepEqual([PAIR_GATE.running, PAIR_GATE.waiting()], [0, 0]);
    const last = pairs.at(-1) as Awaited<ReturnType<typeof full.kms.generateDataKeyPair>>;
    const opened = await full.kms.decrypt({
      ciphertextBlob: last.PrivateKeyCiphertextBlob,
      iv: last.Iv,
      aad,
    });
    assert.deepEqual(publicOf(opened.Plaintext, "pem"), publicOf(last.PrivateKeyPlaintext, "pem"));
  });

  it("a queued RSA pair request whose client leaves is dropped without generating", async () => {
    const busy = await kms.client("key-*");
    const leaver = await kms.client("key-*");
    const running = [0, 1].map(() =>
      busy.kms.generateDataKeyPair({ keyId: aesKey, keyPairSpec: "RSA_3072", aad }),
    );
    await until(() => PAIR_GATE.running === PAIR_GATE.limit, "the gate to fill");
    const body = encodeMessage("GenerateDataKeyPairRequest", { KeyId: aesKey, KeyPairSpec: "RSA_3072" });
    const [host, port] = kms.server.endpoint.split(":");
    const req = https.request({
      host,
      port: Number(port),
      method: "POST",
      path: "/",
      headers: signedHeaders(leaver.config, "GenerateDataKeyPair", body),
      ca: await kms.instance.caCertPem(),
      agent: false,
    });
    req.on("error", () => {});
    req.end(body);
    await until(() => PAIR_GATE.waiting(leaver.id) === 1, "the request to queue");
    req.destroy();
    await until(() => PAIR_GATE.waiting(leaver.id) === 0, "the queue to drop it");
    assert.equal(PAIR_GATE.running, PAIR_GATE.limit, "it left before a slot freed");
    await Promise.all(running);
    const entry = await until(
      async () => (await kms.instance.audit.entries(20)).find((e) => e.actor === leaver.id),
      "its audit entry",
    );
    assert.equal(entry.operation, "GenerateDataKeyPair");
    assert.equal(entry.outcome, "Rejected.Throttling");
    assert.deepEqual([PAIR_GATE.running, PAIR_GATE.waiting()], [0, 0]);
  });
});

/** Polls `probe` every 5 ms until it gives a truthy value (at most 10 s). */
async function until<T>(probe: () => T | Promise<T>, what: string): Promise<NonNullable<T>> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}
