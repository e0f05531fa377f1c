/**
 * A CA whose keys live in SoftHSM2: root (generated in the token by `ca init --key pkcs11:...
 * --type`) -> intermediate (token key) -> server and client leaves. OpenSSL accepts the
 * chains under -x509_strict, the CA keys stay sensitive and non-extractable in the token,
 * and the CA directories hold references, never key bytes.
 */
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import pkcs11js from "pkcs11js";
import { loadModule, trimField } from "../../src/keys/pkcs11_module.ts";
import { createToken, softHsm, tokenKey } from "../helpers/softhsm.ts";
import { assertOneLineError, cli, cliOk, openssl, run, tempDir } from "./helpers.ts";

softHsm();

test("root and intermediate in SoftHSM2 issue server and client certificates OpenSSL accepts strictly", async (t) => {
  const dir = await tempDir(t);
  const token = await createToken();
  // CA directories keep a reference naming the PIN file (never the PIN itself).
  const rootRef = token.uriWithPinSource("root-ca");
  await tokenKey(token, "inter-ca", "rsa3072");
  const interRef = token.uriWithPinSource("inter-ca");
  const root = join(dir, "root");
  const inter = join(dir, "inter");

  await cliOk([
    "ca",
    "init",
    "--dir",
    root,
    "--cn",
    "hsmkit Token Root",
    "--key",
    rootRef,
    "--type",
    "ec-p384",
  ]);
  await cliOk([
    "ca",
    "intermediate",
    "--dir",
    inter,
    "--parent",
    root,
    "--cn",
    "hsmkit Token Intermediate",
    "--key",
    interRef,
  ]);
  await cliOk([
    "cert",
    "issue",
    "--ca",
    inter,
    "--profile",
    "server",
    "--cn",
    "localhost",
    "--san",
    "DNS:localhost,IP:127.0.0.1",
    "--type",
    "rsa2048",
    "--out",
    join(dir, "server"),
  ]);
  await cliOk([
    "cert",
    "issue",
    "--ca",
    inter,
    "--profile",
    "client",
    "--cn",
    "alice",
    "--type",
    "ec-p256",
    "--out",
    join(dir, "client"),
  ]);

  const verify = (purpose: string, leaf: string) =>
    openssl([
      "verify",
      "-x509_strict",
      "-purpose",
      purpose,
      "-CAfile",
      join(root, "ca.crt"),
      "-untrusted",
      join(inter, "ca.crt"),
      leaf,
    ]);
  const server = await verify("sslserver", join(dir, "server.pem"));
  assert.equal(server.exitCode, 0, server.output);
  assert.match(server.stdout, /server\.pem: OK/);
  const client = await verify("sslclient", join(dir, "client.pem"));
  assert.equal(client.exitCode, 0, client.output);
  assert.match(client.stdout, /client\.pem: OK/);
  // Control: the purposes are really checked.
  assert.notEqual((await verify("sslserver", join(dir, "client.pem"))).exitCode, 0);
  assert.notEqual((await verify("sslclient", join(dir, "server.pem"))).exitCode, 0);

  // The intermediate is signed with ECDSA P-384 by the token root, the leaves with RSA by the token intermediate.
  const interText = await openssl(["x509", "-in", join(inter, "ca.crt"), "-noout", "-text"]);
  assert.match(interText.stdout, /Signature Algorithm: ecdsa-with-SHA384/);
  assert.match(interText.stdout, /CA:TRUE, pathlen:0/);
  assert.match(interText.stdout, /Certificate Sign, CRL Sign/);
  const serverText = await openssl(["x509", "-in", join(dir, "server.pem"), "-noout", "-text"]);
  assert.match(serverText.stdout, /Signature Algorithm: sha256WithRSAEncryption/);
  assert.match(serverText.stdout, /DNS:localhost, IP Address:127\.0\.0\.1/);
  assert.match(serverText.stdout, /TLS Web Server Authentication/);
  assert.match(serverText.stdout, /Digital Signature, Key Encipherment/);

  // No key material in the CA directories: only references.
  for (const caDir of [root, inter]) {
    const files = await readdir(caDir);
    assert.ok(!files.includes("ca.key"), `${caDir} holds a key file`);
    for (const f of files) assert.doesNotMatch(await readFile(join(caDir, f), "utf8"), /PRIVATE KEY/);
    const config = JSON.parse(await readFile(join(caDir, "ca.json"), "utf8")) as { key: string };
    assert.match(config.key, /^pkcs11:token=/);
  }

  // The token says the CA keys are sensitive and were never extractable, and refuses to read them out.
  const hsm = softHsm();
  const tool = (args: string[]) =>
    run("pkcs11-tool", [
      "--module",
      hsm.module,
      "--token-label",
      token.label,
      "--login",
      "--pin",
      token.pin,
      ...args,
    ]);
  const listed = await tool(["--list-objects", "--type", "privkey"]);
  assert.equal(listed.exitCode, 0, listed.output);
  for (const label of ["root-ca", "inter-ca"]) {
    const block = listed.stdout
      .split(/\n(?=Private Key Object)/)
      .find((b) => b.includes(`label:      ${label}`));
    assert.ok(block, `no private key ${label} in:\n${listed.stdout}`);
    assert.match(block, /Access:.*\bsensitive\b/);
    assert.match(block, /never extractable/);
  }
  // And asked directly, the token reports the attributes and refuses the secret value.
  const { lib } = loadModule(hsm.module);
  const slot = lib.C_GetSlotList(true).find((s) => trimField(lib.C_GetTokenInfo(s).label) === token.label);
  assert.ok(slot);
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
    for (const [label, secret] of [
      ["root-ca", pkcs11js.CKA_VALUE],
      ["inter-ca", pkcs11js.CKA_PRIVATE_EXPONENT],
    ] as const) {
      lib.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_LABEL, value: label },
      ]);
      const [key] = lib.C_FindObjects(session, 2);
      lib.C_FindObjectsFinal(session);
      assert.ok(key, `no private key ${label}`);
      const [extractable, sensitive] = lib.C_GetAttributeValue(session, key, [
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_SENSITIVE },
      ]);
      assert.deepEqual([extractable?.value, sensitive?.value], [Buffer.from([0]), Buffer.from([1])], label);
      assert.throws(
        () => lib.C_GetAttributeValue(session, key, [{ type: secret }]),
        /CKR_ATTRIBUTE_SENSITIVE/,
      );
    }
  } finally {
    lib.C_CloseSession(session);
  }
});

test("a leaf key in the token is certified but never exported into a PFX", async (t) => {
  const dir = await tempDir(t);
  const token = await createToken();
  await tokenKey(token, "ca", "ec-p256");
  const caKey = token.uriWithPinSource("ca");
  const leafKey = await tokenKey(token, "leaf", "rsa2048");
  const ca = join(dir, "ca");
  await cliOk(["ca", "init", "--dir", ca, "--cn", "hsmkit Token CA", "--key", caKey]);
  await cliOk([
    "cert",
    "issue",
    "--ca",
    ca,
    "--profile",
    "client",
    "--cn",
    "token-user",
    "--key",
    leafKey,
    "--out",
    join(dir, "leaf"),
  ]);
  const verified = await openssl([
    "verify",
    "-x509_strict",
    "-purpose",
    "sslclient",
    "-CAfile",
    join(ca, "ca.crt"),
    join(dir, "leaf.pem"),
  ]);
  assert.equal(verified.exitCode, 0, verified.output);
  // The certified key is the token's: its public key equals what the token reports.
  const certKey = await openssl(["x509", "-in", join(dir, "leaf.pem"), "-noout", "-pubkey"]);
  const tokenPub = await cliOk(["key", "public", "--key", leafKey]);
  assert.equal(certKey.stdout.trim(), tokenPub.stdout.trim());

  await writeFile(join(dir, "pw"), "secret\n", { mode: 0o600 });
  const pfx = await cli([
    "cert",
    "pfx",
    "--cert",
    join(dir, "leaf.pem"),
    "--key",
    leafKey,
    "--out",
    join(dir, "leaf.pfx"),
    "--password-file",
    join(dir, "pw"),
  ]);
  assertOneLineError(pfx, /in a token or KMS and cannot be exported/);
  assert.equal((await readdir(dir)).includes("leaf.pfx"), false);
});
