/**
 * File keys in every format OpenSSL writes: signatures that node:crypto and openssl accept
 * for every scheme, signDigest, RSA decryption, generation, and clear errors.
 */
import assert from "node:assert/strict";
import { createHash, createPublicKey } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { generateKey, openKey, publicKeyPem } from "../../src/keys/index.ts";
import { SCHEMES } from "../../src/keys/schemes.ts";
import {
  assertAllSchemesVerify,
  assertDecrypts,
  assertKeyError,
  nodeVerifies,
  opensslVerifies,
  sh,
} from "./support.ts";

let dir: string;
const path = (name: string) => join(dir, name);
let rsaPub: string;
let ecPub: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hsmkit-filekeys-"));
  await writeFile(path("pass"), "correct horse\n", { mode: 0o600 });
  await writeFile(path("wrong"), "battery staple\n");
  const pass = ["-passout", `file:${path("pass")}`];
  // One RSA and one EC key, written in each format.
  await sh("openssl", ["genrsa", "-traditional", "-out", path("rsa-pkcs1.pem"), "2048"]);
  await sh("openssl", [
    "pkcs8",
    "-topk8",
    "-nocrypt",
    "-in",
    path("rsa-pkcs1.pem"),
    "-out",
    path("rsa-pkcs8.pem"),
  ]);
  await sh("openssl", [
    "pkcs8",
    "-topk8",
    "-v2",
    "aes-256-cbc",
    "-in",
    path("rsa-pkcs1.pem"),
    "-out",
    path("rsa-enc.pem"),
    ...pass,
  ]);
  await sh("openssl", [
    "rsa",
    "-aes256",
    "-traditional",
    "-in",
    path("rsa-pkcs1.pem"),
    "-out",
    path("rsa-legacy-enc.pem"),
    ...pass,
  ]);
  await sh("openssl", [
    "rsa",
    "-traditional",
    "-outform",
    "DER",
    "-in",
    path("rsa-pkcs1.pem"),
    "-out",
    path("rsa-pkcs1.der"),
  ]);
  await sh("openssl", [
    "pkcs8",
    "-topk8",
    "-nocrypt",
    "-outform",
    "DER",
    "-in",
    path("rsa-pkcs1.pem"),
    "-out",
    path("rsa-pkcs8.der"),
  ]);
  await sh("openssl", [
    "pkcs8",
    "-topk8",
    "-v2",
    "aes-256-cbc",
    "-outform",
    "DER",
    "-in",
    path("rsa-pkcs1.pem"),
    "-out",
    path("rsa-enc.der"),
    ...pass,
  ]);
  rsaPub = await sh("openssl", ["pkey", "-in", path("rsa-pkcs1.pem"), "-pubout"]);

  await sh("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-out", path("ec-sec1.pem")]);
  await sh("openssl", [
    "pkcs8",
    "-topk8",
    "-nocrypt",
    "-in",
    path("ec-sec1.pem"),
    "-out",
    path("ec-pkcs8.pem"),
  ]);
  await sh("openssl", [
    "pkcs8",
    "-topk8",
    "-v2",
    "aes-256-cbc",
    "-in",
    path("ec-sec1.pem"),
    "-out",
    path("ec-enc.pem"),
    ...pass,
  ]);
  await sh("openssl", ["ec", "-outform", "DER", "-in", path("ec-sec1.pem"), "-out", path("ec-sec1.der")]);
  ecPub = await sh("openssl", ["pkey", "-in", path("ec-sec1.pem"), "-pubout"]);
  await sh("openssl", [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:secp384r1",
    "-out",
    path("ec384.pem"),
  ]);
  await sh("openssl", ["genpkey", "-algorithm", "ED25519", "-out", path("ed25519.pem")]);
  await sh("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    path("rsa-pkcs1.pem"),
    "-subj",
    "/CN=t",
    "-days",
    "1",
    "-out",
    path("cert.pem"),
  ]);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const withPass = (file: string) => `file:${path(file)}?passphrase-file=${path("pass")}`;

describe("RSA key files", () => {
  const variants: [string, () => string][] = [
    ["PKCS#1 PEM (plain path)", () => path("rsa-pkcs1.pem")],
    ["PKCS#8 PEM (file: reference)", () => `file:${path("rsa-pkcs8.pem")}`],
    ["encrypted PKCS#8 PEM", () => withPass("rsa-enc.pem")],
    ["legacy encrypted PKCS#1 PEM", () => withPass("rsa-legacy-enc.pem")],
    ["PKCS#1 DER", () => path("rsa-pkcs1.der")],
    ["PKCS#8 DER", () => path("rsa-pkcs8.der")],
    ["encrypted PKCS#8 DER", () => withPass("rsa-enc.der")],
  ];
  for (const [name, ref] of variants) {
    test(`${name}: every scheme verifies with node and openssl; decrypt works`, async () => {
      const key = await openKey(ref());
      try {
        assert.equal(key.type, "rsa");
        assert.equal(key.bits, 2048);
        assert.equal(key.curve, undefined);
        assert.equal(publicKeyPem(key), rsaPub);
        assert.deepEqual(key.spki, createPublicKey(rsaPub).export({ type: "spki", format: "der" }));
        assert.ok(key.schemes.includes("rsa_pkcs1_md5_sha1") && key.schemes.includes("rsa_pss_rsae_sha512"));
        await assertAllSchemesVerify(key);
        await assertDecrypts(key);
      } finally {
        await key.close();
      }
    });
  }

  test("signDigest: PKCS#1 v1.5 equals sign() byte for byte; PSS verifies with openssl", async () => {
    const key = await openKey(path("rsa-pkcs8.pem"));
    try {
      assert.ok(key.signDigest, "RSA file keys can sign a digest");
      const message = Buffer.from("digest me");
      for (const scheme of key.schemes) {
        const info = SCHEMES[scheme];
        const digest =
          info.hash === "md5-sha1"
            ? Buffer.concat([
                createHash("md5").update(message).digest(),
                createHash("sha1").update(message).digest(),
              ])
            : createHash(info.hash).update(message).digest();
        const sig = await key.signDigest(scheme, digest);
        if (info.padding === "pkcs1") assert.deepEqual(sig, await key.sign(scheme, message), scheme);
        assert.ok(nodeVerifies(key.publicKey, scheme, message, sig), scheme);
        assert.ok(await opensslVerifies(publicKeyPem(key), scheme, message, sig), scheme);
      }
      await assertKeyError(
        key.signDigest("rsa_pkcs1_sha256", Buffer.alloc(20)),
        "unsupported",
        /32-byte digest/,
      );
    } finally {
      await key.close();
    }
  });

  test("an RSA key refuses ECDSA schemes and unknown scheme names", async () => {
    const key = await openKey(path("rsa-pkcs8.pem"));
    await assertKeyError(key.sign("ecdsa_secp256r1_sha256", Buffer.from("x")), "unsupported");
    await assertKeyError(key.sign("bogus" as "rsa_pkcs1_sha256", Buffer.from("x")), "unsupported");
    await key.close();
    await key.close(); // idempotent
    await assertKeyError(key.sign("rsa_pkcs1_sha256", Buffer.from("x")), "backend", /closed/);
  });
});

describe("EC key files", () => {
  const variants: [string, () => string][] = [
    ["SEC1 PEM with an EC PARAMETERS block", () => path("ec-sec1.pem")],
    ["PKCS#8 PEM", () => path("ec-pkcs8.pem")],
    ["encrypted PKCS#8 PEM", () => withPass("ec-enc.pem")],
    ["SEC1 DER", () => path("ec-sec1.der")],
  ];
  for (const [name, ref] of variants) {
    test(`${name}: every ECDSA scheme verifies with node and openssl`, async () => {
      const key = await openKey(ref());
      try {
        assert.equal(key.type, "ec");
        assert.equal(key.curve, "P-256");
        assert.equal(key.bits, 256);
        assert.equal(publicKeyPem(key), ecPub);
        assert.equal(key.schemes[0], "ecdsa_secp256r1_sha256");
        assert.equal(key.signDigest, undefined, "node:crypto cannot ECDSA-sign a raw digest");
        await assertAllSchemesVerify(key);
        await assertKeyError(key.decrypt(Buffer.alloc(32)), "unsupported");
        await assertKeyError(key.sign("rsa_pss_rsae_sha256", Buffer.from("x")), "unsupported");
      } finally {
        await key.close();
      }
    });
  }

  test("a P-384 key prefers its own curve's scheme", async () => {
    const key = await openKey(path("ec384.pem"));
    assert.equal(key.curve, "P-384");
    assert.equal(key.schemes[0], "ecdsa_secp384r1_sha384");
    await assertAllSchemesVerify(key);
    await key.close();
  });
});

describe("generateKey into files", () => {
  for (const type of ["rsa2048", "ec-p256", "ec-p384"] as const) {
    test(`${type}: plain PKCS#8, mode 0600, readable by openssl, signs`, async () => {
      const file = path(`gen-${type}.pem`);
      const key = await generateKey(file, type);
      try {
        const info = await stat(file);
        assert.equal(info.mode & 0o777, 0o600);
        const pem = await readFile(file, "utf8");
        assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
        assert.equal(await sh("openssl", ["pkey", "-in", file, "-pubout"]), publicKeyPem(key));
        const reopened = await openKey(file);
        assert.deepEqual(reopened.spki, key.spki);
        await reopened.close();
        const sig = await key.sign(key.schemes[0]!, Buffer.from("m"));
        assert.ok(await opensslVerifies(publicKeyPem(key), key.schemes[0]!, Buffer.from("m"), sig));
      } finally {
        await key.close();
      }
    });
  }

  test("with passphrase-file: encrypted PKCS#8 (PBES2, AES-256-CBC) that openssl opens", async () => {
    const file = path("gen-enc.pem");
    const key = await generateKey(`file:${file}?passphrase-file=${path("pass")}`, "ec-p256");
    const pem = await readFile(file, "utf8");
    assert.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    await writeFile(path("gen-enc.der"), der);
    const parsed = await sh("openssl", ["asn1parse", "-inform", "DER", "-in", path("gen-enc.der")]);
    assert.match(parsed, /PBES2/);
    assert.match(parsed, /aes-256-cbc/);
    const pub = await sh("openssl", ["pkey", "-in", file, "-passin", `file:${path("pass")}`, "-pubout"]);
    assert.equal(pub, publicKeyPem(key));
    await assertKeyError(openKey(file), "bad-passphrase", /encrypted: add \?passphrase-file/);
    await assertKeyError(
      openKey(`${file}?passphrase-file=${path("wrong")}`),
      "bad-passphrase",
      /wrong passphrase/,
    );
    const reopened = await openKey(`${file}?passphrase-file=${path("pass")}`);
    assert.deepEqual(reopened.spki, key.spki);
    await reopened.close();
    await key.close();
  });

  test("refuses to overwrite an existing file, and leaves it untouched", async () => {
    const file = path("existing.pem");
    await writeFile(file, "precious");
    await assertKeyError(generateKey(file, "ec-p256"), "exists", /already exists/);
    assert.equal(await readFile(file, "utf8"), "precious");
    await assertKeyError(generateKey(path("no/such/dir/k.pem"), "ec-p256"), "not-found", /no such file/);
    await assertKeyError(
      generateKey(path("x.pem"), "dsa1024" as "ec-p256"),
      "unsupported",
      /unknown key type/,
    );
  });
});

describe("file key errors", () => {
  test("missing file -> not-found", async () => {
    await assertKeyError(openKey(path("missing.pem")), "not-found", /missing\.pem.*no such file/);
    await assertKeyError(openKey(dir), "not-found", /is a directory/);
  });

  test("wrong or missing passphrase -> bad-passphrase; missing passphrase file -> not-found", async () => {
    for (const file of ["rsa-enc.pem", "rsa-legacy-enc.pem", "rsa-enc.der", "ec-enc.pem"]) {
      await assertKeyError(
        openKey(`file:${path(file)}?passphrase-file=${path("wrong")}`),
        "bad-passphrase",
        /wrong passphrase/,
      );
    }
    await assertKeyError(openKey(path("rsa-enc.pem")), "bad-passphrase", /encrypted/);
    await assertKeyError(openKey(path("rsa-enc.der")), "bad-passphrase", /encrypted/);
    await assertKeyError(
      openKey(`${path("rsa-enc.pem")}?passphrase-file=${path("nope")}`),
      "not-found",
      /passphrase file/,
    );
    await writeFile(path("empty-pass"), "\n");
    await assertKeyError(
      openKey(`${path("rsa-enc.pem")}?passphrase-file=${path("empty-pass")}`),
      "bad-passphrase",
      /empty/,
    );
  });

  test("not a key, truncated or corrupted -> bad-reference", async () => {
    const good = await readFile(path("rsa-pkcs8.pem"), "utf8");
    const der = await readFile(path("rsa-pkcs8.der"));
    const cases: [string, string | Buffer][] = [
      ["empty", ""],
      ["text", "hello world\n"],
      ["random", Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 37 + 11) & 0xff))],
      ["cert", await readFile(path("cert.pem"), "utf8")],
      ["truncated-pem", good.slice(0, good.length / 2)],
      ["no-end-line", good.replace(/-----END PRIVATE KEY-----\n/, "")],
      ["corrupted-pem", good.replace(/\n[A-Za-z0-9+/]{20}/, "\n!!!!!!!!!!!!!!!!!!!!")],
      ["truncated-der", der.subarray(0, 300)],
      [
        "oversized-der-length",
        Buffer.concat([Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]), der.subarray(4)]),
      ],
    ];
    for (const [name, contents] of cases) {
      await writeFile(path(`bad-${name}`), contents);
      await assertKeyError(openKey(path(`bad-${name}`)), "bad-reference", /not a private key|no private key/);
    }
    const big = path("bad-huge");
    await writeFile(big, Buffer.alloc(2 << 20, 0x41));
    await assertKeyError(openKey(big), "bad-reference", /too large/);
  });

  test("unsupported key types and references", async () => {
    await assertKeyError(openKey(path("ed25519.pem")), "unsupported", /ed25519/);
    await assertKeyError(openKey(""), "bad-reference");
    await assertKeyError(openKey("file:"), "bad-reference", /names no file/);
    await assertKeyError(
      openKey(`file:${path("rsa-pkcs8.pem")}?password=x`),
      "bad-reference",
      /passphrase-file/,
    );
  });
});
