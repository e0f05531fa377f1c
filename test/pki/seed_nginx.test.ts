/**
 * Seed 000's mutual-TLS set-up, with the CA keys in SoftHSM2: ca.crt, server.pem/server.key,
 * client.pem/client.key and client.pfx, used unchanged by nginx (ssl_verify_client on),
 * curl (PEM and P12), OpenSSL's pkcs12 and NSS's pk12util. Then revoking the client and
 * publishing CRLs makes openssl verify -crl_check and nginx's ssl_crl refuse it.
 */
import assert from "node:assert/strict";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { curl, NGINX_INDEX_HTML, type NginxOptions, nginxServer } from "../helpers/peers.ts";
import { createToken, softHsm, tokenKey } from "../helpers/softhsm.ts";
import { cliOk, openssl, run, serialOf, tempDir } from "./helpers.ts";

softHsm();

const PASSWORD = "Pfx-pass 1";

interface SeedFiles {
  dir: string;
  root: string;
  inter: string;
  caCrt: string;
  pw: string;
}

/** Root and intermediate in a token, server and client leaves with file keys, as the seed lays them out. */
async function seed(t: TestContext): Promise<SeedFiles> {
  const dir = await tempDir(t);
  const token = await createToken();
  const root = join(dir, "root");
  const inter = join(dir, "inter");
  await cliOk([
    "ca",
    "init",
    "--dir",
    root,
    "--cn",
    "Seed Root CA",
    "--key",
    await tokenKey(token, "root", "rsa2048", "source"),
  ]);
  await cliOk([
    "ca",
    "intermediate",
    "--dir",
    inter,
    "--parent",
    root,
    "--cn",
    "Seed Intermediate CA",
    "--key",
    await tokenKey(token, "inter", "ec-p256", "source"),
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
    "IP:127.0.0.1",
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
    "seed-client",
    "--type",
    "rsa2048",
    "--out",
    join(dir, "client"),
  ]);
  const pw = join(dir, "pfx-password.txt");
  await writeFile(pw, `${PASSWORD}\n`, { mode: 0o600 });
  return { dir, root, inter, caCrt: join(root, "ca.crt"), pw };
}

async function startNginx(t: TestContext, files: SeedFiles, extra: Partial<NginxOptions> = {}) {
  const server = await nginxServer({
    cert: join(files.dir, "server.pem"),
    key: join(files.dir, "server.key"),
    clientCa: files.caCrt,
    verifyClient: true,
    ...extra,
  });
  t.after(() => server.stop());
  return server;
}

function url(port: number): string {
  return `https://localhost:${port}/`;
}

function resolveArgs(port: number): string[] {
  return ["--resolve", `localhost:${port}:127.0.0.1`, "-w", "\n%{http_code}"];
}

test("nginx with ssl_verify_client on accepts the issued client certificate as PEM and as PFX", async (t) => {
  const files = await seed(t);
  const { dir } = files;
  // The files the seed names, with the modes it expects of keys.
  assert.equal((await stat(join(dir, "client.key"))).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, "server.key"))).mode & 0o777, 0o600);
  assert.equal((await readFile(join(dir, "server.pem"), "utf8")).match(/BEGIN CERTIFICATE/g)?.length, 2);

  await cliOk([
    "cert",
    "pfx",
    "--cert",
    join(dir, "client.pem"),
    "--key",
    join(dir, "client.key"),
    "--out",
    join(dir, "client.pfx"),
    "--password-file",
    files.pw,
  ]);
  await cliOk([
    "cert",
    "pfx",
    "--cert",
    join(dir, "client.pem"),
    "--key",
    join(dir, "client.key"),
    "--out",
    join(dir, "client-legacy.pfx"),
    "--password-file",
    files.pw,
    "--legacy",
  ]);
  assert.equal((await stat(join(dir, "client.pfx"))).mode & 0o777, 0o600);

  const server = await startNginx(t, files);
  const pem = await curl(url(server.port), {
    cacert: files.caCrt,
    cert: join(dir, "client.pem"),
    key: join(dir, "client.key"),
    args: resolveArgs(server.port),
  });
  assert.equal(pem.exitCode, 0, pem.output);
  assert.equal(pem.stdout, `${NGINX_INDEX_HTML}\n200`);

  for (const pfx of ["client.pfx", "client-legacy.pfx"]) {
    const p12 = await curl(url(server.port), {
      cacert: files.caCrt,
      args: [...resolveArgs(server.port), "--cert-type", "P12", "--cert", `${join(dir, pfx)}:${PASSWORD}`],
    });
    assert.equal(p12.exitCode, 0, `${pfx}: ${p12.output}`);
    assert.equal(p12.stdout, `${NGINX_INDEX_HTML}\n200`, pfx);
  }
  // Control: without a client certificate nginx says no.
  const none = await curl(url(server.port), { cacert: files.caCrt, args: resolveArgs(server.port) });
  assert.match(none.stdout, /400$/);
  const seen = (await server.waitForRequests(4)).filter((r) => r.status === 200);
  assert.equal(seen.length, 3);
  for (const r of seen) assert.equal(r.verify, "SUCCESS");
  assert.match(seen[0]?.subject ?? "", /CN=seed-client/);
});

test("the PFX files open in openssl pkcs12 (modern without -legacy, legacy with it) and import into NSS", async (t) => {
  const files = await seed(t);
  const { dir } = files;
  const modern = join(dir, "client.pfx");
  const legacy = join(dir, "client-legacy.pfx");
  const pfxArgs = [
    "--cert",
    join(dir, "client.pem"),
    "--key",
    join(dir, "client.key"),
    "--password-file",
    files.pw,
  ];
  await cliOk(["cert", "pfx", ...pfxArgs, "--out", modern, "--name", "Seed client"]);
  await cliOk(["cert", "pfx", ...pfxArgs, "--out", legacy, "--legacy", "--name", "Seed client"]);

  const info = (file: string, extra: string[]) =>
    openssl(["pkcs12", "-info", "-in", file, "-passin", `file:${files.pw}`, "-nodes", ...extra]);
  const m = await info(modern, []);
  assert.equal(m.exitCode, 0, m.output);
  assert.match(m.stderr, /MAC: sha256/);
  assert.match(m.stderr, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC.*hmacWithSHA256/);
  const l = await info(legacy, ["-legacy"]);
  assert.equal(l.exitCode, 0, l.output);
  assert.match(l.stderr, /MAC: sha1/);
  assert.match(l.stderr, /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC/);
  for (const out of [m.stdout, l.stdout]) {
    // Key and leaf carry the same friendly name and local key id; the chain has two certificates.
    assert.equal(out.match(/friendlyName: Seed client/g)?.length, 2);
    const ids = [...out.matchAll(/localKeyID: ([0-9A-F ]+)/g)].map((x) => x[1]?.trim());
    assert.equal(ids.length, 2);
    assert.equal(ids[0], ids[1]);
    assert.equal(out.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.match(out, /BEGIN PRIVATE KEY/);
  }
  // The private key in the PFX is the one in client.key.
  const keyFromPfx = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(m.stdout)?.[0] ?? "";
  const pub = async (input: string) => (await openssl(["pkey", "-pubout"], input)).stdout;
  assert.equal(await pub(keyFromPfx), await pub(await readFile(join(dir, "client.key"), "utf8")));
  // A wrong password is refused (the MAC is checked).
  const wrong = await openssl(["pkcs12", "-info", "-in", modern, "-passin", "pass:wrong", "-noout"]);
  assert.notEqual(wrong.exitCode, 0);

  for (const [name, file] of [
    ["modern", modern],
    ["legacy", legacy],
  ] as const) {
    const db = join(dir, `nss-${name}`);
    await run("mkdir", [db]);
    const created = await run("certutil", ["-N", "-d", `sql:${db}`, "--empty-password"]);
    assert.equal(created.exitCode, 0, created.output);
    const imported = await run("pk12util", ["-i", file, "-d", `sql:${db}`, "-W", PASSWORD]);
    assert.equal(imported.exitCode, 0, `${name}: ${imported.output}`);
    assert.match(imported.output, /PKCS12 IMPORT SUCCESSFUL/);
    const certs = await run("certutil", ["-L", "-d", `sql:${db}`]);
    assert.match(certs.stdout, /Seed client\s+u,u,u/);
    const keys = await run("certutil", ["-K", "-d", `sql:${db}`]);
    assert.match(keys.stdout, /rsa\s+[0-9a-f]+\s+Seed client/);
  }
});

test("a revoked client certificate is refused by openssl verify -crl_check and by nginx ssl_crl", async (t) => {
  const files = await seed(t);
  const { dir, inter, root } = files;
  await cliOk([
    "cert",
    "issue",
    "--ca",
    inter,
    "--profile",
    "client",
    "--cn",
    "still-good",
    "--type",
    "ec-p256",
    "--out",
    join(dir, "good"),
  ]);
  const serial = await serialOf(join(dir, "client.pem"));
  await cliOk([
    "cert",
    "revoke",
    "--ca",
    inter,
    "--serial",
    serial.toUpperCase(),
    "--reason",
    "keyCompromise",
  ]);
  await cliOk(["ca", "crl", "--dir", inter, "--out", join(dir, "inter.crl")]);
  await cliOk(["ca", "crl", "--dir", root, "--out", join(dir, "root.crl")]);
  const crls = join(dir, "crls.pem");
  await writeFile(
    crls,
    (await readFile(join(dir, "inter.crl"), "utf8")) + (await readFile(join(dir, "root.crl"), "utf8")),
  );

  const crlText = await openssl(["crl", "-in", join(dir, "inter.crl"), "-noout", "-text"]);
  assert.equal(crlText.exitCode, 0, crlText.output);
  assert.match(crlText.stdout, new RegExp(`Serial Number: ${serial.toUpperCase()}`));
  assert.match(crlText.stdout, /Key Compromise/);
  assert.match(crlText.stdout, /X509v3 CRL Number: \n\s+1/);

  const verify = (leaf: string) =>
    openssl([
      "verify",
      "-crl_check",
      "-CRLfile",
      crls,
      "-CAfile",
      files.caCrt,
      "-untrusted",
      join(inter, "ca.crt"),
      "-purpose",
      "sslclient",
      leaf,
    ]);
  const revoked = await verify(join(dir, "client.pem"));
  assert.notEqual(revoked.exitCode, 0);
  assert.match(revoked.output, /certificate revoked/);
  const good = await verify(join(dir, "good.pem"));
  assert.equal(good.exitCode, 0, good.output);
  const all = await openssl([
    "verify",
    "-crl_check_all",
    "-CRLfile",
    crls,
    "-CAfile",
    files.caCrt,
    "-untrusted",
    join(inter, "ca.crt"),
    join(dir, "good.pem"),
  ]);
  assert.equal(all.exitCode, 0, all.output);

  // hsmkit's own verifier agrees, with the reason.
  const ours = await run(HSMKIT_BIN, [
    "cert",
    "verify",
    join(dir, "client.pem"),
    "--cacert",
    files.caCrt,
    "--purpose",
    "client",
    "--crl",
    crls,
  ]);
  assert.equal(ours.exitCode, 1, ours.output);
  assert.match(ours.stdout, /revoked.*keyCompromise/);

  const server = await startNginx(t, files, { crl: crls });
  const refused = await curl(url(server.port), {
    cacert: files.caCrt,
    cert: join(dir, "client.pem"),
    key: join(dir, "client.key"),
    args: resolveArgs(server.port),
  });
  assert.match(refused.stdout, /400$/);
  assert.match(refused.stdout, /SSL certificate error/);
  const accepted = await curl(url(server.port), {
    cacert: files.caCrt,
    cert: join(dir, "good.pem"),
    key: join(dir, "good.key"),
    args: resolveArgs(server.port),
  });
  assert.equal(accepted.stdout, `${NGINX_INDEX_HTML}\n200`);
  const log = await server.waitForRequests(2);
  assert.match(log[0]?.verify ?? "", /^FAILED:.*revoked/);
  assert.equal(log[1]?.verify, "SUCCESS");
});
