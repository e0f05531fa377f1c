/**
 * The CA directory at work: concurrent issuers never share a serial or lose an index
 * entry, CSRs are certified only with a good signature, generated keys are written
 * encrypted when asked, and `cert show` summarises what was made.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  assertOneLineError,
  cli,
  cliOk,
  exists,
  openssl,
  refusedUnchanged,
  serialOf,
  snapshot,
  tempDir,
} from "./helpers.ts";

test("six processes issuing at once get six distinct serials, all recorded", async (t) => {
  const dir = await tempDir(t);
  const ca = join(dir, "ca");
  await cliOk(["ca", "init", "--dir", ca, "--cn", "Busy CA", "--type", "ec-p256"]);
  // A stale lock left by a process that died is taken over.
  const dead = spawnSync("true").pid ?? 999_999;
  await writeFile(join(ca, ".lock"), `${dead} ${hostname()}\n`);
  const runs = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      cli([
        "cert",
        "issue",
        "--ca",
        ca,
        "--profile",
        "client",
        "--cn",
        `user${i}`,
        "--type",
        "ec-p256",
        "--out",
        join(dir, `u${i}`),
      ]),
    ),
  );
  for (const r of runs) assert.equal(r.exitCode, 0, r.output);
  const index = JSON.parse(await readFile(join(ca, "index.json"), "utf8")) as {
    certificates: { serial: string; subject: string }[];
  };
  const serials = await Promise.all(runs.map((_, i) => serialOf(join(dir, `u${i}.pem`))));
  assert.equal(new Set(serials).size, 6);
  assert.deepEqual(index.certificates.map((c) => c.serial).sort(), [...serials].sort());
  assert.deepEqual(
    index.certificates.map((c) => c.subject).sort(),
    Array.from({ length: 6 }, (_, i) => `CN=user${i}`),
  );
  for (const s of serials) assert.match(s, /^[0-9a-f]{30,34}$/);
  // No lock or temporary file is left behind.
  assert.deepEqual(Object.keys(await snapshot(ca)).sort(), ["ca.crt", "ca.json", "ca.key", "index.json"]);
  for (let i = 0; i < 6; i++) {
    const v = await openssl([
      "verify",
      "-x509_strict",
      "-purpose",
      "sslclient",
      "-CAfile",
      join(ca, "ca.crt"),
      join(dir, `u${i}.pem`),
    ]);
    assert.equal(v.exitCode, 0, v.output);
  }
});

test("CSRs are signed only when their signature checks out", async (t) => {
  const dir = await tempDir(t);
  const ca = join(dir, "ca");
  await cliOk(["ca", "init", "--dir", ca, "--cn", "CSR CA", "--type", "rsa2048"]);
  const csr = join(dir, "req.csr");
  const made = await openssl([
    "req",
    "-new",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    join(dir, "req.key"),
    "-subj",
    "/CN=csr.example.com",
    "-out",
    csr,
  ]);
  assert.equal(made.exitCode, 0, made.output);
  // A good CSR: the CN comes from it, the key in the certificate is the CSR's.
  await cliOk([
    "cert",
    "issue",
    "--ca",
    ca,
    "--profile",
    "server",
    "--csr",
    csr,
    "--out",
    join(dir, "fromcsr"),
  ]);
  const text = await openssl([
    "x509",
    "-in",
    join(dir, "fromcsr.pem"),
    "-noout",
    "-subject",
    "-ext",
    "subjectAltName",
  ]);
  assert.match(text.stdout, /subject=CN = csr\.example\.com/);
  assert.match(text.stdout, /DNS:csr\.example\.com/);
  const certPub = (await openssl(["x509", "-in", join(dir, "fromcsr.pem"), "-noout", "-pubkey"])).stdout;
  const csrPub = (await openssl(["req", "-in", csr, "-noout", "-pubkey"])).stdout;
  assert.equal(certPub, csrPub);
  assert.equal(await exists(join(dir, "fromcsr.key")), false);

  // The same CSR with one bit of its signature flipped.
  const der = (await openssl(["req", "-in", csr, "-outform", "DER", "-out", join(dir, "req.der")])).exitCode;
  assert.equal(der, 0);
  const bytes = await readFile(join(dir, "req.der"));
  bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 0x01;
  const bad = join(dir, "bad.der");
  await writeFile(bad, bytes);
  await refusedUnchanged(
    ca,
    ["cert", "issue", "--ca", ca, "--profile", "server", "--csr", bad, "--out", join(dir, "bad")],
    /CSR .*bad\.der has a bad signature/,
    join(dir, "bad"),
  );
  // Truncated and not-a-CSR input.
  await writeFile(join(dir, "short.der"), bytes.subarray(0, 100));
  await refusedUnchanged(
    ca,
    [
      "cert",
      "issue",
      "--ca",
      ca,
      "--profile",
      "client",
      "--csr",
      join(dir, "short.der"),
      "--out",
      join(dir, "bad"),
    ],
    /is not a PKCS#10 certificate request/,
  );
  await refusedUnchanged(
    ca,
    [
      "cert",
      "issue",
      "--ca",
      ca,
      "--profile",
      "client",
      "--csr",
      join(ca, "ca.crt"),
      "--out",
      join(dir, "bad"),
    ],
    /is not a PKCS#10 certificate request/,
  );
  // A weak key in a CSR.
  const weak = join(dir, "weak.csr");
  await openssl([
    "req",
    "-new",
    "-newkey",
    "rsa:1024",
    "-nodes",
    "-keyout",
    join(dir, "weak.key"),
    "-subj",
    "/CN=weak",
    "-out",
    weak,
  ]);
  await refusedUnchanged(
    ca,
    ["cert", "issue", "--ca", ca, "--profile", "client", "--csr", weak, "--out", join(dir, "bad")],
    /1024-bit RSA key/,
  );
});

test("a generated key is written encrypted with --password-file, and exports to PFX from there", async (t) => {
  const dir = await tempDir(t);
  const ca = join(dir, "ca");
  const pw = join(dir, "pw");
  await writeFile(pw, "leaf secret\n", { mode: 0o600 });
  await cliOk([
    "ca",
    "init",
    "--dir",
    ca,
    "--cn",
    "Enc CA",
    "--type",
    "ec-p384",
    "--password-file",
    pw,
    "--crl-url",
    "http://crl.example.test/enc.crl",
  ]);
  // The CA key itself is encrypted too, and referenced with its passphrase file.
  assert.match(await readFile(join(ca, "ca.key"), "utf8"), /BEGIN ENCRYPTED PRIVATE KEY/);
  await cliOk([
    "cert",
    "issue",
    "--ca",
    ca,
    "--profile",
    "client",
    "--cn",
    "enc",
    "--type",
    "rsa2048",
    "--password-file",
    pw,
    "--out",
    join(dir, "enc"),
  ]);
  const keyPath = join(dir, "enc.key");
  assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
  assert.match(await readFile(keyPath, "utf8"), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  const parsed = await openssl(["asn1parse", "-in", keyPath]);
  assert.match(parsed.stdout, /PBES2/);
  assert.match(parsed.stdout, /PBKDF2/);
  assert.match(parsed.stdout, /hmacWithSHA256/);
  assert.match(parsed.stdout, /aes-256-cbc/);
  const pub = await openssl(["pkey", "-in", keyPath, "-passin", `file:${pw}`, "-pubout"]);
  assert.equal(pub.exitCode, 0, pub.output);
  assert.equal(
    pub.stdout,
    (await openssl(["x509", "-in", join(dir, "enc.pem"), "-noout", "-pubkey"])).stdout,
  );
  assert.notEqual((await openssl(["pkey", "-in", keyPath, "-passin", "pass:wrong", "-noout"])).exitCode, 0);
  // The CA's CRL distribution point is in the leaf, and `cert show` summarises it all.
  const shown = await cliOk(["cert", "show", join(dir, "enc.pem")]);
  assert.match(shown.stdout, /^Subject: +CN=enc$/m);
  assert.match(shown.stdout, /^Issuer: +CN=Enc CA$/m);
  assert.match(shown.stdout, /^Key: +RSA 2048$/m);
  assert.match(shown.stdout, /^Signature: +ECDSA with SHA-384$/m);
  assert.match(shown.stdout, /^Ext\. usage: +clientAuth$/m);
  assert.match(shown.stdout, /^CRL: +http:\/\/crl\.example\.test\/enc\.crl$/m);
  assert.match(
    (await openssl(["x509", "-in", join(dir, "enc.pem"), "-noout", "-ext", "crlDistributionPoints"])).stdout,
    /URI:http:\/\/crl\.example\.test\/enc\.crl/,
  );
  assertOneLineError(await cli(["cert", "show", pw]), /pw is not a certificate or CRL \(PEM or DER\)/);
  assertOneLineError(await cli(["cert", "show", keyPath]), /enc\.key holds no certificate or CRL/);
  assertOneLineError(await cli(["cert", "show", join(dir, "nope.pem")]), /cannot read .*nope\.pem: ENOENT/);

  await cliOk([
    "cert",
    "pfx",
    "--cert",
    join(dir, "enc.pem"),
    "--key",
    `file:${keyPath}?passphrase-file=${pw}`,
    "--out",
    join(dir, "enc.pfx"),
    "--password-file",
    pw,
  ]);
  assert.equal(
    (await openssl(["pkcs12", "-in", join(dir, "enc.pfx"), "-passin", `file:${pw}`, "-noout"])).exitCode,
    0,
  );
  // PFX input errors: no passphrase for the encrypted key, a key that is not the certificate's, an empty password.
  assertOneLineError(
    await cli([
      "cert",
      "pfx",
      "--cert",
      join(dir, "enc.pem"),
      "--key",
      keyPath,
      "--out",
      join(dir, "x.pfx"),
      "--password-file",
      pw,
    ]),
    /encrypted|passphrase/,
  );
  await cliOk(["key", "generate", "--key", join(dir, "other.key"), "--type", "ec-p256"]);
  assertOneLineError(
    await cli([
      "cert",
      "pfx",
      "--cert",
      join(dir, "enc.pem"),
      "--key",
      join(dir, "other.key"),
      "--out",
      join(dir, "x.pfx"),
      "--password-file",
      pw,
    ]),
    /does not match the certificate/,
  );
  await writeFile(join(dir, "empty"), "");
  assertOneLineError(
    await cli([
      "cert",
      "pfx",
      "--cert",
      join(dir, "enc.pem"),
      "--key",
      `file:${keyPath}?passphrase-file=${pw}`,
      "--out",
      join(dir, "x.pfx"),
      "--password-file",
      join(dir, "empty"),
    ]),
    /is empty/,
  );
  assert.equal(await exists(join(dir, "x.pfx")), false);
});
