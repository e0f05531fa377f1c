/**
 * What hsmkit's CA issues meets the strict profile: every profile (root, intermediate,
 * server, client) with RSA and EC keys, in files and in a SoftHSM2 token, verifies with
 * `hsmkit cert verify` under its default (strict) profile and with OpenSSL's
 * `openssl verify -x509_strict`. And `cert verify --profile` chooses the profile: a leaf
 * without extendedKeyUsage is refused by default with its reason and accepted under
 * rfc5280.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { createToken, softHsm, tokenKey } from "../helpers/softhsm.ts";
import { cli, cliOk, openssl, tempDir } from "./helpers.ts";

softHsm();

/** `openssl verify -x509_strict` of `cert` against `root`, with `untrusted` intermediates. */
async function assertOpensslStrict(root: string, cert: string, untrusted: string[], purpose?: string) {
  const args = ["verify", "-x509_strict", "-CAfile", root, ...untrusted.flatMap((u) => ["-untrusted", u])];
  if (purpose) args.push("-purpose", purpose);
  const result = await openssl([...args, cert]);
  assert.equal(result.exitCode, 0, result.output);
  assert.match(result.stdout, /: OK\n$/);
}

/** `cert issue` of a `profile` leaf under `ca`, key from `keyArgs` (--type or --key), to PREFIX `out`. */
function issue(ca: string, profile: "server" | "client", keyArgs: string[], out: string) {
  const names =
    profile === "server" ? ["--cn", "localhost", "--san", "DNS:localhost,IP:127.0.0.1"] : ["--cn", "alice"];
  return cliOk(["cert", "issue", "--ca", ca, "--profile", profile, ...names, ...keyArgs, "--out", out]);
}

/** `cert verify` under the default profile must print OK. */
async function assertHsmkitStrict(rootCrt: string, leaf: string, purpose: "server" | "client") {
  const verified = await cli(["cert", "verify", leaf, "--cacert", rootCrt, "--purpose", purpose]);
  assert.equal(verified.stdout, "OK\n", `${leaf}: ${verified.output}`);
  assert.equal(verified.exitCode, 0);
}

test("every profile hsmkit's CA issues verifies strictly with hsmkit and with openssl -x509_strict", async (t) => {
  const dir = await tempDir(t);
  const token = await createToken();
  const layouts = [
    // Root key in a file, RSA intermediate in a file; then root and intermediate keys in the token.
    { name: "file", root: ["--type", "ec-p384"], inter: ["--type", "rsa2048"], keys: ["ec-p256", "rsa2048"] },
    {
      name: "token",
      root: ["--key", await tokenKey(token, "root", "rsa2048", "source")],
      inter: ["--key", await tokenKey(token, "inter", "ec-p256", "source")],
      keys: ["rsa2048", "ec-p256"],
    },
  ];
  for (const layout of layouts) {
    const root = join(dir, `${layout.name}-root`);
    const inter = join(dir, `${layout.name}-inter`);
    const rootCrt = join(root, "ca.crt");
    await cliOk(["ca", "init", "--dir", root, "--cn", `${layout.name} root`, ...layout.root]);
    const interArgs = ["--dir", inter, "--parent", root, "--cn", `${layout.name} inter`, ...layout.inter];
    await cliOk(["ca", "intermediate", ...interArgs]);
    await assertOpensslStrict(rootCrt, rootCrt, []);
    await assertOpensslStrict(rootCrt, join(inter, "ca.crt"), []);
    for (const [profile, purpose] of [
      ["server", "sslserver"],
      ["client", "sslclient"],
    ] as const) {
      for (const type of layout.keys) {
        const out = join(dir, `${layout.name}-${profile}-${type}`);
        await issue(inter, profile, ["--type", type], out);
        await assertHsmkitStrict(rootCrt, `${out}.pem`, profile);
        await assertOpensslStrict(rootCrt, `${out}.pem`, [join(inter, "ca.crt")], purpose);
      }
    }
  }
  // A client leaf whose key stays in the token, too.
  const out = join(dir, "token-client-key");
  await issue(join(dir, "token-inter"), "client", ["--key", await tokenKey(token, "bob", "ec-p256")], out);
  await assertHsmkitStrict(join(dir, "token-root", "ca.crt"), `${out}.pem`, "client");
  await assertOpensslStrict(
    join(dir, "token-root", "ca.crt"),
    `${out}.pem`,
    [join(dir, "token-inter", "ca.crt")],
    "sslclient",
  );
});

test("cert verify --profile: strict by default refuses a leaf without EKU with its reason; rfc5280 accepts it", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  await cliOk(["ca", "init", "--dir", root, "--cn", "Profile Root", "--type", "ec-p256"]);
  // A private PKI's leaf: everything right but no extendedKeyUsage, signed by the hsmkit root with openssl.
  const key = join(dir, "leaf.key");
  const ext = join(dir, "leaf.ext");
  const leaf = join(dir, "leaf.pem");
  await writeFile(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "subjectAltName=DNS:localhost",
      "subjectKeyIdentifier=hash",
      "authorityKeyIdentifier=keyid",
      "",
    ].join("\n"),
  );
  assert.equal(
    (await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]))
      .exitCode,
    0,
  );
  const pub = join(dir, "leaf.pub");
  assert.equal((await openssl(["pkey", "-in", key, "-pubout", "-out", pub])).exitCode, 0);
  const made = await openssl([
    ...["x509", "-new", "-subj", "/CN=localhost", "-force_pubkey", pub, "-days", "30"],
    ...["-CA", join(root, "ca.crt"), "-CAkey", join(root, "ca.key"), "-extfile", ext, "-out", leaf],
  ]);
  assert.equal(made.exitCode, 0, made.output);
  const verify = (...args: string[]) =>
    cli(["cert", "verify", leaf, "--cacert", join(root, "ca.crt"), "--host", "localhost", ...args]);

  for (const refused of [await verify(), await verify("--profile", "strict")]) {
    assert.equal(refused.exitCode, 1, refused.output);
    assert.equal(
      refused.stdout,
      `certificate 'CN=localhost' has no extendedKeyUsage; the strict profile needs serverAuth or clientAuth (profile "rfc5280" accepts a leaf without it) (bad-purpose)\n`,
    );
  }
  const relaxed = await verify("--profile", "rfc5280");
  assert.equal(relaxed.stdout, "OK\n", relaxed.output);
  assert.equal(relaxed.exitCode, 0);
  const bogus = await verify("--profile", "lenient");
  assert.notEqual(bogus.exitCode, 0);
  assert.match(
    bogus.stderr.trim(),
    /^error: option '--profile <profile>' argument 'lenient' is invalid\. Allowed choices are strict, rfc5280\.$/,
  );
});
