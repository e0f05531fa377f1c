/**
 * The KMS over real HTTPS on 127.0.0.1 through the TypeScript SDK: the seed 000 flow checked
 * by openssl, every operation, and each kind of refusal with the code clients expect.
 */
import assert from "node:assert/strict";
import { createHash, createPublicKey, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  adminCreateKey,
  adminRevokeAccessPoint,
  adminRotateKey,
  adminSetKeyState,
} from "../../src/kms/admin.ts";
import { ACCESS_KEY_HEADER, contentSha256, formatHttpDate } from "../../src/kms/auth.ts";
import { KmsClient, type KmsRequestError } from "../../src/kms/client.ts";
import { encodeMessage } from "../../src/kms/proto.ts";
import { KmsServer } from "../../src/kms/server.ts";
import { runCommand } from "../helpers/process.ts";
import {
  type ApClient,
  type KmsFixture,
  rawRequest,
  refused,
  signedHeaders,
  startKms,
} from "./kms_fixture.ts";

let kms: KmsFixture;
let rsaKey: string;
let ecKey: string;
let aesKey: string;
let full: ApClient;

before(async () => {
  kms = await startKms();
  rsaKey = (await adminCreateKey(kms.instance, "RSA_2048", "SIGN/VERIFY", "seed", "alias/seed")).id;
  ecKey = (await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY")).id;
  aesKey = (await adminCreateKey(kms.instance, "AES_256", "ENCRYPT/DECRYPT")).id;
  full = await kms.client("key-*,alias/*");
});
after(() => kms.close());

async function openssl(args: string[]): Promise<string> {
  const r = await runCommand("openssl", args);
  return r.output.trim();
}

describe("seed 000 through the SDK", () => {
  it("signs a file with RSA_PSS_SHA_256; Verify and openssl agree; one changed byte fails", async () => {
    const file = join(kms.dir, "server.key.txt");
    const content = Buffer.from(
      `-----BEGIN FAKE-----\n${randomBytes(600).toString("base64")}\n-----END FAKE-----\n`,
    );
    writeFileSync(file, content);
    const signed = await full.kms.sign({
      keyId: "alias/seed",
      algorithm: "RSA_PSS_SHA_256",
      message: content,
    });
    assert.equal(signed.KeyId, rsaKey);
    assert.equal(signed.Signature.length, 256);
    const ok = await full.kms.verify({
      keyId: "alias/seed",
      algorithm: "RSA_PSS_SHA_256",
      message: content,
      signature: signed.Signature,
    });
    assert.equal(ok.Value, true);
    const tampered = Buffer.from(content);
    tampered[10] = (tampered[10] ?? 0) ^ 1;
    const bad = await full.kms.verify({
      keyId: rsaKey,
      algorithm: "RSA_PSS_SHA_256",
      message: tampered,
      signature: signed.Signature,
    });
    assert.equal(bad.Value, false);

    const pub = join(kms.dir, "pub.pem");
    writeFileSync(pub, (await full.kms.getPublicKey(rsaKey)).PublicKey);
    writeFileSync(`${file}.sig`, signed.Signature);
    const pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"];
    const verdict = await openssl([
      "dgst",
      "-sha256",
      ...pss,
      "-verify",
      pub,
      "-signature",
      `${file}.sig`,
      file,
    ]);
    assert.equal(verdict, "Verified OK");
    writeFileSync(file, tampered);
    assert.match(
      await openssl(["dgst", "-sha256", ...pss, "-verify", pub, "-signature", `${file}.sig`, file]),
      /Verification failure/,
    );
  });

  it("signs a DIGEST (RSA PSS and PKCS#1) that openssl verifies against the message", async () => {
    const message = randomBytes(5000);
    const file = join(kms.dir, "digest-msg.bin");
    writeFileSync(file, message);
    const pub = join(kms.dir, "pub-digest.pem");
    writeFileSync(pub, (await full.kms.getPublicKey(rsaKey)).PublicKey);
    for (const [alg, opts] of [
      ["RSA_PSS_SHA_256", ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]],
      ["RSA_PKCS1_SHA_256", []],
    ] as const) {
      const digest = createHash("sha256").update(message).digest();
      const s = await full.kms.sign({ keyId: rsaKey, algorithm: alg, digest });
      assert.equal(s.MessageType, "DIGEST");
      writeFileSync(`${file}.sig`, s.Signature);
      assert.equal(
        await openssl(["dgst", "-sha256", ...opts, "-verify", pub, "-signature", `${file}.sig`, file]),
        "Verified OK",
      );
      const v = await full.kms.verify({ keyId: rsaKey, algorithm: alg, digest, signature: s.Signature });
      assert.equal(v.Value, true, alg);
      const wrong = await full.kms.verify({
        keyId: rsaKey,
        algorithm: alg,
        digest: randomBytes(32),
        signature: s.Signature,
      });
      assert.equal(wrong.Value, false, alg);
    }
    await refused(
      full.kms.sign({ keyId: rsaKey, algorithm: "RSA_PSS_SHA_256", digest: randomBytes(31) }),
      "InvalidParameter",
    );
  });

  it("signs with EC P-256 (RAW and DIGEST) as DER that openssl verifies", async () => {
    const message = randomBytes(3000);
    const file = join(kms.dir, "ec-msg.bin");
    writeFileSync(file, message);
    const pub = join(kms.dir, "ec-pub.pem");
    writeFileSync(pub, (await full.kms.getPublicKey(ecKey)).PublicKey);
    const raw = await full.kms.sign({ keyId: ecKey, algorithm: "ECDSA_SHA_256", message });
    const digest = createHash("sha256").update(message).digest();
    const dig = await full.kms.sign({ keyId: ecKey, algorithm: "ECDSA_SHA_256", digest });
    for (const s of [raw, dig]) {
      assert.equal(s.Signature[0], 0x30, "DER SEQUENCE");
      writeFileSync(`${file}.sig`, s.Signature);
      assert.equal(
        await openssl(["dgst", "-sha256", "-verify", pub, "-signature", `${file}.sig`, file]),
        "Verified OK",
      );
      assert.equal(
        (await full.kms.verify({ keyId: ecKey, algorithm: "ECDSA_SHA_256", digest, signature: s.Signature }))
          .Value,
        true,
      );
    }
    const other = createHash("sha256").update("other").digest();
    assert.equal(
      (
        await full.kms.verify({
          keyId: ecKey,
          algorithm: "ECDSA_SHA_256",
          digest: other,
          signature: dig.Signature,
        })
      ).Value,
      false,
    );
    await refused(full.kms.sign({ keyId: ecKey, algorithm: "RSA_PSS_SHA_256", message }), "InvalidParameter");
  });
});

describe("keys: rotation, states, encryption", () => {
  it("rotates: new signatures use the new version, old ones still verify", async () => {
    const key = (await adminCreateKey(kms.instance, "RSA_2048", "SIGN/VERIFY")).id;
    const message = Buffer.from("rotate me");
    const pub1 = (await full.kms.getPublicKey(key)).PublicKey;
    const s1 = await full.kms.sign({ keyId: key, algorithm: "RSA_PKCS1_SHA_256", message });
    await adminRotateKey(kms.instance, key);
    const pub2 = (await full.kms.getPublicKey(key)).PublicKey;
    assert.notEqual(pub1, pub2);
    const s2 = await full.kms.sign({ keyId: key, algorithm: "RSA_PKCS1_SHA_256", message });
    assert.equal(createPublicKey(pub1).equals(createPublicKey(pub2)), false);
    for (const s of [s1, s2]) {
      assert.equal(
        (
          await full.kms.verify({
            keyId: key,
            algorithm: "RSA_PKCS1_SHA_256",
            message,
            signature: s.Signature,
          })
        ).Value,
        true,
      );
    }
  });

  it("a disabled key refuses Sign; enabled again it signs", async () => {
    const key = (await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY")).id;
    await adminSetKeyState(kms.instance, key, "disable");
    await refused(
      full.kms.sign({ keyId: key, algorithm: "ECDSA_SHA_256", message: Buffer.from("x") }),
      "IncorrectKeyState",
    );
    await adminSetKeyState(kms.instance, key, "enable");
    assert.ok(
      (await full.kms.sign({ keyId: key, algorithm: "ECDSA_SHA_256", message: Buffer.from("x") })).Signature
        .length > 0,
    );
    await adminSetKeyState(kms.instance, key, "schedule-deletion");
    await refused(full.kms.getPublicKey(key), "IncorrectKeyState");
  });

  it("AES-GCM Encrypt/Decrypt binds the AAD; GenerateDataKey's blob decrypts to its plaintext", async () => {
    const aad = Buffer.from("context");
    const e = await full.kms.encrypt({ keyId: aesKey, plaintext: Buffer.from("secret data"), aad });
    assert.equal(e.Iv.length, 12);
    const d = await full.kms.decrypt({ ciphertextBlob: e.CiphertextBlob, iv: e.Iv, aad });
    assert.equal(d.Plaintext.toString(), "secret data");
    assert.equal(d.KeyId, aesKey);
    await refused(
      full.kms.decrypt({ ciphertextBlob: e.CiphertextBlob, iv: e.Iv, aad: Buffer.from("other") }),
      "InvalidCiphertext",
    );
    const flipped = Buffer.from(e.CiphertextBlob);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] ?? 0) ^ 1;
    await refused(
      full.kms.decrypt({ keyId: aesKey, ciphertextBlob: flipped, iv: e.Iv, aad }),
      "InvalidCiphertext",
    );

    const dk = await full.kms.generateDataKey({ keyId: aesKey, numberOfBytes: 32, aad });
    assert.equal(dk.Plaintext.length, 32);
    const back = await full.kms.decrypt({ keyId: aesKey, ciphertextBlob: dk.CiphertextBlob, iv: dk.Iv, aad });
    assert.deepEqual(back.Plaintext, dk.Plaintext);
    await refused(full.kms.generateDataKey({ keyId: aesKey, numberOfBytes: 5000 }), "InvalidParameter");
    await refused(full.kms.generateDataKey({ keyId: rsaKey }), "UnsupportedOperation");
  });

  it("RSA-OAEP: what openssl encrypts with the public key, the KMS decrypts", async () => {
    const key = (await adminCreateKey(kms.instance, "RSA_2048", "ENCRYPT/DECRYPT")).id;
    const pub = join(kms.dir, "oaep-pub.pem");
    writeFileSync(pub, (await full.kms.getPublicKey(key)).PublicKey);
    writeFileSync(join(kms.dir, "plain.txt"), "oaep plaintext");
    const ct = join(kms.dir, "ct.bin");
    await runCommand("openssl", [
      "pkeyutl",
      "-encrypt",
      "-pubin",
      "-inkey",
      pub,
      "-in",
      join(kms.dir, "plain.txt"),
      "-out",
      ct,
      "-pkeyopt",
      "rsa_padding_mode:oaep",
      "-pkeyopt",
      "rsa_oaep_md:sha256",
      "-pkeyopt",
      "rsa_mgf1_md:sha256",
    ]);
    const d = await full.kms.decrypt({
      keyId: key,
      ciphertextBlob: readFileSync(ct),
      algorithm: "RSAES_OAEP_SHA_256",
    });
    assert.equal(d.Plaintext.toString(), "oaep plaintext");
    const e = await full.kms.encrypt({
      keyId: key,
      plaintext: Buffer.from("round trip"),
      algorithm: "RSAES_OAEP_SHA_256",
    });
    const d2 = await full.kms.decrypt({
      keyId: key,
      ciphertextBlob: e.CiphertextBlob,
      algorithm: "RSAES_OAEP_SHA_256",
    });
    assert.equal(d2.Plaintext.toString(), "round trip");
    await refused(
      full.kms.sign({ keyId: key, algorithm: "RSA_PSS_SHA_256", message: Buffer.from("x") }),
      "UnsupportedOperation",
    );
  });

  it("GenerateRandom returns the asked length and refuses silly ones", async () => {
    assert.equal((await full.kms.generateRandom(48)).Random.length, 48);
    await refused(full.kms.generateRandom(0), "InvalidParameter");
    await refused(full.kms.generateRandom(1 << 20), "InvalidParameter");
  });
});

describe("access control", () => {
  it("an access point limited to one key cannot use another, nor learn whether it exists", async () => {
    const one = await kms.client(rsaKey);
    assert.ok(
      (await one.kms.sign({ keyId: rsaKey, algorithm: "RSA_PSS_SHA_256", message: Buffer.from("a") }))
        .Signature,
    );
    assert.ok(
      (await one.kms.sign({ keyId: "alias/seed", algorithm: "RSA_PSS_SHA_256", message: Buffer.from("a") }))
        .Signature,
    );
    await refused(
      one.kms.sign({ keyId: ecKey, algorithm: "ECDSA_SHA_256", message: Buffer.from("a") }),
      "Forbidden.NoPermission",
    );
    await refused(one.kms.getPublicKey("key-000000000000000000000000"), "Forbidden.NoPermission");
    await refused(full.kms.getPublicKey("key-000000000000000000000000"), "Forbidden.KeyNotFound");
  });

  it("limits operations and source addresses", async () => {
    const verifyOnly = await kms.client("*", { operations: "Verify,GetPublicKey" });
    await refused(
      verifyOnly.kms.sign({ keyId: rsaKey, algorithm: "RSA_PSS_SHA_256", message: Buffer.from("a") }),
      "Forbidden.NoPermission",
    );
    assert.ok((await verifyOnly.kms.getPublicKey(rsaKey)).PublicKey.includes("BEGIN PUBLIC KEY"));
    const elsewhere = await kms.client("*", { sourceIps: "10.0.0.0/8,192.168.1.7" });
    await refused(elsewhere.kms.generateRandom(8), "Forbidden.SourceIpNotAllowed");
    const local = await kms.client("*", { sourceIps: "127.0.0.0/8" });
    assert.equal((await local.kms.generateRandom(8)).Random.length, 8);
  });

  it("a revoked access point is refused", async () => {
    const ap = await kms.client("*");
    assert.equal((await ap.kms.generateRandom(4)).Random.length, 4);
    await adminRevokeAccessPoint(kms.instance, ap.id);
    await refused(ap.kms.generateRandom(4), "Forbidden.AccessPointRevoked");
  });
});

describe("instance certificates", () => {
  it("the server certificate chains to the instance CA and names localhost, 127.0.0.1 and --hostname", async () => {
    const creds = await kms.instance.serverCredentials(["kms.example.test", "10.1.2.3"]);
    creds.keyDer.fill(0);
    const chain = join(kms.dir, "server-chain.pem");
    writeFileSync(chain, creds.certChainPem);
    const ca = kms.instance.caPath;
    const v = await runCommand("openssl", ["verify", "-CAfile", ca, "-purpose", "sslserver", chain]);
    assert.equal(v.output.trim(), `${chain}: OK`);
    const san = await runCommand("openssl", ["x509", "-in", chain, "-noout", "-ext", "subjectAltName"]);
    for (const name of [
      "DNS:localhost",
      "IP Address:127.0.0.1",
      "DNS:kms.example.test",
      "IP Address:10.1.2.3",
    ]) {
      assert.ok(san.stdout.includes(name), `${name} in ${san.stdout}`);
    }
    const caText = await runCommand("openssl", [
      "x509",
      "-in",
      ca,
      "-noout",
      "-ext",
      "basicConstraints,keyUsage",
    ]);
    assert.match(caText.stdout, /CA:TRUE, pathlen:0/);
    assert.match(caText.stdout, /Certificate Sign, CRL Sign/);
  });
});

describe("throttling", () => {
  it("answers Rejected.Throttling over the in-flight cap; the SDK retries until it gets through", async (t) => {
    const tight = await KmsServer.start({ instance: kms.instance, maxInflight: 1 });
    t.after(() => tight.close());
    const message = randomBytes(1024 * 1024); // big enough that requests overlap
    const burst = (maxAttempts: number) => {
      const client = new KmsClient({ ...full.config, endpoint: tight.endpoint, maxAttempts, backoffMs: 20 });
      t.after(() => client.close());
      return Promise.allSettled(
        Array.from({ length: 12 }, () =>
          client.sign({ keyId: rsaKey, algorithm: "RSA_PSS_SHA_256", message }),
        ),
      );
    };
    const once = await burst(1);
    const throttled = once.filter((r) => r.status === "rejected");
    assert.ok(throttled.length > 0, "some requests were over the cap");
    for (const r of throttled) {
      const err = (r as PromiseRejectedResult).reason as KmsRequestError;
      assert.equal(err.code, "Rejected.Throttling");
      assert.equal(err.statusCode, 429);
      assert.equal(err.retryable, true);
    }
    const retried = await burst(40);
    assert.deepEqual(
      retried.map((r) => r.status),
      Array(12).fill("fulfilled"),
    );
  });
});

describe("request authentication", () => {
  const body = encodeMessage("GenerateRandomRequest", { Length: 16 });
  function signed(
    overrides: Record<string, string> = {},
    withSignature = true,
    payload = body,
  ): Record<string, string> {
    const h = signedHeaders(full.config, "GenerateRandom", payload, overrides);
    if (!withSignature) delete h.authorization;
    return h;
  }
  const send = async (h: Record<string, string>, b = body) =>
    rawRequest(kms.server.endpoint, await kms.instance.caCertPem(), h, b);

  it("accepts a correct request, with Bearer or TOKEN", async () => {
    assert.equal((await send(signed())).status, 200);
    const h = signed();
    h.authorization = h.authorization?.replace(/^Bearer /, "TOKEN ") ?? "";
    assert.equal((await send(h)).status, 200);
  });

  it("refuses a wrong signature, date, body hash or access key id with the right code", async () => {
    const h = signed();
    const sig = Buffer.from((h.authorization ?? "").slice(7), "base64");
    sig[5] = (sig[5] ?? 0) ^ 1;
    const cases: [string, Record<string, string>, Buffer, string, number][] = [
      [
        "signature",
        { ...h, authorization: `Bearer ${sig.toString("base64")}` },
        body,
        "SignatureDoesNotMatch",
        401,
      ],
      [
        "date 16 min old",
        signed({ date: formatHttpDate(new Date(Date.now() - 16 * 60_000)) }),
        body,
        "RequestTimeTooSkewed",
        400,
      ],
      [
        "date 16 min ahead",
        signed({ date: formatHttpDate(new Date(Date.now() + 16 * 60_000)) }),
        body,
        "RequestTimeTooSkewed",
        400,
      ],
      ["date not RFC 1123", signed({ date: new Date().toISOString() }), body, "InvalidParam", 400],
      [
        "body hash",
        signed({ "content-sha256": contentSha256(Buffer.from("other")) }),
        body,
        "InvalidParam",
        400,
      ],
      [
        "lower-case body hash",
        signed({ "content-sha256": contentSha256(body).toLowerCase() }),
        body,
        "InvalidParam",
        400,
      ],
      [
        "body changed after signing",
        h,
        encodeMessage("GenerateRandomRequest", { Length: 17 }),
        "InvalidParam",
        400,
      ],
      [
        "unknown access key id",
        signed({ [ACCESS_KEY_HEADER]: "KAAP.00000000-0000-4000-8000-000000000000" }),
        body,
        "InvalidAccessKeyId",
        401,
      ],
      [
        "no access key id",
        (({ [ACCESS_KEY_HEADER]: _, ...rest }) => rest)(signed()),
        body,
        "MissingParameter",
        400,
      ],
      [
        "signed for another access point",
        { ...h, [ACCESS_KEY_HEADER]: "KAAP.x" },
        body,
        "InvalidAccessKeyId",
        401,
      ],
      ["no authorization", signed({}, false), body, "MissingParameter", 400],
      ["api version", signed({ "x-kms-apiversion": "dkms-gcs-0.1" }), body, "InvalidApiVersion", 400],
      ["api name", signed({ "x-kms-apiname": "DeleteEverything" }), body, "InvalidApiName", 400],
      ["signature method", signed({ "x-kms-signaturemethod": "HMAC_SHA_1" }), body, "InvalidParam", 400],
    ];
    for (const [name, headers, payload, code, status] of cases) {
      const reply = await send(headers, payload);
      assert.equal(reply.code, code, name);
      assert.equal(reply.status, status, name);
    }
  });

  it("refuses a malformed body and a body over 3 MiB", async () => {
    const junk = Buffer.from([0x0a, 0xff, 0xff, 0x01]);
    assert.equal(
      (await send(signed({ "content-sha256": contentSha256(junk) }, true, junk), junk)).code,
      "InvalidParam",
    );
    const big = Buffer.alloc(3 * 1024 * 1024 + 1);
    const reply = await send(signed({ "content-sha256": contentSha256(big) }, true, big), big);
    assert.equal(reply.status, 413);
    assert.equal(reply.code, "RequestEntityTooLarge");
  });
});
