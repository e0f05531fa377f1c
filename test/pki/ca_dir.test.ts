/**
 * The CA directory under bad input and under load: every refusal is one clear line and
 * leaves the directory byte-for-byte unchanged (and writes no output files); concurrent
 * issuers never share a serial or lose an index entry; CSRs are checked; generated keys
 * are written encrypted when asked.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createToken, softHsm, tokenKey } from "../helpers/softhsm.ts";
import { assertOneLineError, cli, cliOk, exists, openssl, serialOf, snapshot, tempDir } from "./helpers.ts";

softHsm();

/** Runs a command that must fail, and checks the CA directory and the outputs did not change. */
async function refusedUnchanged(
  caDir: string,
  args: string[],
  pattern: RegExp,
  outPrefix?: string,
): Promise<void> {
  const before = await snapshot(caDir);
  assertOneLineError(await cli(args), pattern);
  assert.deepEqual(await snapshot(caDir), before, `${args.join(" ")} changed ${caDir}`);
  if (outPrefix) {
    assert.equal(await exists(`${outPrefix}.pem`), false, `${outPrefix}.pem was written`);
    assert.equal(await exists(`${outPrefix}.key`), false, `${outPrefix}.key was written`);
  }
}

test("bad input to cert issue is refused in one line and leaves the CA directory unchanged", async (t) => {
  const dir = await tempDir(t);
  const ca = join(dir, "ca");
  const out = join(dir, "leaf");
  await cliOk(["ca", "init", "--dir", ca, "--cn", "Strict CA", "--type", "ec-p256", "--days", "30"]);
  const issue = (...extra: string[]) => ["cert", "issue", "--ca", ca, "--out", out, ...extra];
  const client = (...extra: string[]) =>
    issue("--profile", "client", "--cn", "c", "--type", "ec-p256", ...extra);

  // SANs that are not DNS or IP, or not valid ones.
  for (const [san, why] of [
    ["URI:https://example.com/", /'URI:https:\/\/example\.com\/' is not DNS:name or IP:address/],
    ["email:a@example.com", /is not DNS:name or IP:address/],
    ["DNS:bad_name!", /'DNS:bad_name!' is not a valid DNS name/],
    ["IP:999.1.1.1", /'IP:999\.1\.1\.1' is not a valid IP address/],
  ] as const) {
    await refusedUnchanged(
      ca,
      issue("--profile", "server", "--cn", "s", "--san", san, "--type", "ec-p256"),
      why,
      out,
    );
  }
  // A server certificate with no host name at all.
  await refusedUnchanged(
    ca,
    issue("--profile", "server", "--cn", "Not A Host", "--type", "ec-p256"),
    /needs a host name/,
    out,
  );
  // Validity beyond the CA's (30 days), or nonsense.
  await refusedUnchanged(ca, client("--days", "60"), /--days 60 would end after the CA certificate/, out);
  await refusedUnchanged(ca, client("--days", "0"), /--days must be a whole number from 1/, out);
  await refusedUnchanged(ca, client("--days", "ten"), /--days must be a whole number, not 'ten'/, out);
  // Key sources: none, or two.
  await refusedUnchanged(ca, issue("--profile", "client", "--cn", "c"), /exactly one of --key/, out);
  await refusedUnchanged(
    ca,
    issue("--profile", "client", "--cn", "c", "--key", join(dir, "nope.key")),
    /the certificate's key.*nope\.key/,
    out,
  );
  // The CA key file is gone.
  await rename(join(ca, "ca.key"), join(dir, "ca.key.moved"));
  await refusedUnchanged(ca, client(), /cannot open the CA key of .*ca\.key/, out);
  await rename(join(dir, "ca.key.moved"), join(ca, "ca.key"));
  // A key that is not the CA's.
  await refusedUnchanged(ca, client("--ca-key", join(dir, "other.key")), /cannot open the CA key/, out);
  await cliOk(["key", "generate", "--key", join(dir, "other.key"), "--type", "ec-p256"]);
  await refusedUnchanged(ca, client("--ca-key", join(dir, "other.key")), /does not match .*ca\.crt/, out);

  // Control: the same command with good input works, and changes only index.json.
  const before = await snapshot(ca);
  await cliOk(client());
  const after = await snapshot(ca);
  assert.deepEqual(Object.keys(after), Object.keys(before));
  assert.notEqual(after["index.json"], before["index.json"]);
  assert.equal(after["ca.crt"], before["ca.crt"]);
  // An existing key file is never overwritten.
  await refusedUnchanged(ca, client(), /leaf\.key already exists/);
});

test("a token CA with a missing key or a wrong PIN refuses to issue and changes nothing", async (t) => {
  const dir = await tempDir(t);
  const token = await createToken();
  const ca = join(dir, "ca");
  const ref = await tokenKey(token, "ca-key", "ec-p256");
  await cliOk(["ca", "init", "--dir", ca, "--cn", "Token CA", "--key", ref]);
  const out = join(dir, "leaf");
  const issue = (...extra: string[]) => [
    "cert",
    "issue",
    "--ca",
    ca,
    "--out",
    out,
    "--profile",
    "client",
    "--cn",
    "c",
    "--type",
    "ec-p256",
    ...extra,
  ];
  await refusedUnchanged(
    ca,
    issue("--ca-key", token.uri("no-such-key")),
    /cannot open the CA key.*no-such-key|not found/i,
    out,
  );

  // The PIN stored in ca.json is wrong.
  const configPath = join(ca, "ca.json");
  const good = await readFile(configPath, "utf8");
  assert.equal((await stat(configPath)).mode & 0o777, 0o600, "ca.json holds a PIN: owner-only");
  await writeFile(configPath, good.replace(`pin-value=${token.pin}`, "pin-value=000000"));
  await refusedUnchanged(ca, issue(), /PIN/i, out);
  // Giving the right one on the command line works without touching ca.json.
  await cliOk(issue("--ca-key", ref));
  const verified = await openssl([
    "verify",
    "-x509_strict",
    "-purpose",
    "sslclient",
    "-CAfile",
    join(ca, "ca.crt"),
    `${out}.pem`,
  ]);
  assert.equal(verified.exitCode, 0, verified.output);
});

test("a corrupted CA directory is refused before any key is used, and left as it is", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  const inter = join(dir, "inter");
  await cliOk(["ca", "init", "--dir", root, "--cn", "Corrupt Root", "--type", "ec-p256"]);
  await cliOk([
    "ca",
    "intermediate",
    "--dir",
    inter,
    "--parent",
    root,
    "--cn",
    "Corrupt Inter",
    "--type",
    "ec-p256",
  ]);
  await cliOk([
    "cert",
    "issue",
    "--ca",
    inter,
    "--profile",
    "client",
    "--cn",
    "x",
    "--type",
    "ec-p256",
    "--out",
    join(dir, "x"),
  ]);
  const out = join(dir, "leaf");
  const issue = [
    "cert",
    "issue",
    "--ca",
    inter,
    "--out",
    out,
    "--profile",
    "client",
    "--cn",
    "c",
    "--type",
    "ec-p256",
  ];
  const leafPem = await readFile(join(dir, "x.pem"), "utf8");
  const index = await readFile(join(inter, "index.json"), "utf8");
  const entry = /\{"serial"[^\n]+\}/.exec(index)?.[0] ?? "";
  const cases: [string, string, RegExp][] = [
    ["ca.json", "{ not json", /ca\.json is not valid JSON/],
    [
      "ca.json",
      '{"version":1,"kind":"intermediate","signature":"ecdsa_secp256r1_sha256"}',
      /ca\.json has no key reference/,
    ],
    [
      "ca.json",
      '{"version":1,"kind":"root","key":"ca.key","signature":"rsa_pkcs1_md5"}',
      /ca\.json has no valid 'signature'/,
    ],
    ["index.json", "", /index\.json is not valid JSON/],
    ["index.json", '{"version":1,"crlNumber":-1,"certificates":[]}', /invalid 'crlNumber'/],
    ["index.json", index.replace(entry, `${entry},\n    ${entry}`), /lists serial [0-9a-f]+ twice/],
    [
      "ca.crt",
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
      /ca\.crt holds a certificate that cannot be parsed/,
    ],
    [
      "ca.crt",
      leafPem.slice(0, leafPem.indexOf("-----END CERTIFICATE-----") + 26),
      /ca\.crt is not a CA certificate/,
    ],
    ["chain.pem", "", /chain\.pem does not start with ca\.crt/],
  ];
  for (const [file, content, why] of cases) {
    const path = join(inter, file);
    const original = await readFile(path);
    await writeFile(path, content);
    await refusedUnchanged(inter, issue, why, out);
    await refusedUnchanged(inter, ["ca", "crl", "--dir", inter, "--out", join(dir, "x.crl")], why);
    assert.equal(await exists(join(dir, "x.crl")), false);
    await writeFile(path, original);
  }
  const notCa = [
    "cert",
    "issue",
    "--ca",
    dir,
    "--out",
    out,
    "--profile",
    "client",
    "--cn",
    "c",
    "--type",
    "ec-p256",
  ];
  await refusedUnchanged(dir, notCa, /is not a CA directory \(no ca\.crt\)/);
  // Revocation input errors.
  await refusedUnchanged(
    inter,
    ["cert", "revoke", "--ca", inter, "--serial", "abcdef"],
    /serial abcdef was not issued/,
  );
  await refusedUnchanged(
    inter,
    ["cert", "revoke", "--ca", inter, "--serial", "xyz"],
    /'xyz' is not a hex serial number/,
  );
  const serial = await serialOf(join(dir, "x.pem"));
  await cliOk(["cert", "revoke", "--ca", inter, "--serial", serial]);
  await refusedUnchanged(inter, ["cert", "revoke", "--ca", inter, "--serial", serial], /already revoked/);
});

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
  await writeFile(pw, "leaf secret\n");
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
