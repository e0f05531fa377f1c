/**
 * The main job: an end-to-end walk through hsmkit on its embedded defaults, printing each
 * step as a user would type it. Seed 004 (a client whose key lives in a USB key doing mutual
 * TLS) on a SoftHSM2 token, with a private CA whose keys stay in that token, against nginx
 * configured as in seed 000 (`ssl_verify_client on`). Later parts of the system (serve, KMS,
 * file signing) join the walk as they exist.
 *
 * Run: node --import tsx scripts/demo.ts   (the set-up script runs it)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NGINX_INDEX_HTML, nginxServer } from "../test/helpers/peers.ts";

const HSMKIT = join(import.meta.dirname, "..", "bin", "hsmkit");
const work = mkdtempSync(join(tmpdir(), "hsmkit-demo-"));
const env = { ...process.env, SOFTHSM2_CONF: join(work, "softhsm2.conf") };
let stepNo = 0;

function step(title: string): void {
  stepNo++;
  process.stdout.write(`\n== ${stepNo}. ${title}\n`);
}

/** Runs a command, echoing it; fails the demo with its output when it fails. */
function run(cmd: string, args: string[], options: { quiet?: boolean } = {}): string {
  const shown = [cmd === HSMKIT ? "hsmkit" : cmd, ...args]
    .map((a) => (a.includes(" ") ? `'${a}'` : a))
    .join(" ");
  process.stdout.write(`$ ${shown.replaceAll(work, "$DEMO")}\n`);
  const res = spawnSync(cmd, args, { env, encoding: "utf8", timeout: 120_000 });
  if (res.status !== 0) {
    throw new Error(`'${shown}' failed (exit ${res.status}):\n${res.stdout}${res.stderr}`);
  }
  if (!options.quiet) {
    const out = `${res.stdout}${res.stderr}`.trimEnd();
    if (out) process.stdout.write(`${out.replaceAll(work, "$DEMO")}\n`);
  }
  return res.stdout;
}

async function main(): Promise<void> {
  step("A SoftHSM2 token stands in for the USB key");
  mkdirSync(join(work, "tokens"));
  writeFileSync(
    env.SOFTHSM2_CONF,
    `directories.tokendir = ${join(work, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  const pinFile = join(work, "pin.txt");
  writeFileSync(pinFile, "246810\n", { mode: 0o600 });
  run("softhsm2-util", [
    "--init-token",
    "--free",
    "--label",
    "demo-ukey",
    "--pin",
    "246810",
    "--so-pin",
    "13579111",
  ]);
  const tokenRef = (object: string) =>
    `pkcs11:token=demo-ukey;object=${object};type=private?pin-source=${pinFile}`;

  step("Key pairs generated inside the token (never extractable): the CA's and the client's");
  run(HSMKIT, ["key", "generate", "--key", tokenRef("root-ca"), "--type", "ec-p384"], { quiet: true });
  run(HSMKIT, ["key", "generate", "--key", tokenRef("issuing-ca"), "--type", "ec-p256"], { quiet: true });
  run(HSMKIT, ["key", "generate", "--key", tokenRef("client"), "--type", "rsa2048"]);

  step("A private CA whose keys stay in the token: root, then an intermediate");
  const root = join(work, "root-ca");
  const inter = join(work, "issuing-ca");
  run(HSMKIT, [
    "ca",
    "init",
    "--dir",
    root,
    "--cn",
    "hsmkit demo root",
    "--key",
    tokenRef("root-ca"),
    "--days",
    "30",
  ]);
  run(HSMKIT, [
    "ca",
    "intermediate",
    "--dir",
    inter,
    "--parent",
    root,
    "--cn",
    "hsmkit demo issuing CA",
    "--key",
    tokenRef("issuing-ca"),
    "--days",
    "20",
  ]);

  step("A server certificate (key in a file, for nginx) and a client certificate for the token key");
  const server = join(work, "server");
  const client = join(work, "client");
  run(HSMKIT, [
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
    server,
    "--days",
    "10",
  ]);
  run(HSMKIT, [
    "cert",
    "issue",
    "--ca",
    inter,
    "--profile",
    "client",
    "--cn",
    "demo-ukey-user",
    "--key",
    tokenRef("client"),
    "--out",
    client,
    "--days",
    "10",
  ]);
  run("openssl", [
    "verify",
    "-x509_strict",
    "-purpose",
    "sslclient",
    "-CAfile",
    join(root, "ca.crt"),
    "-untrusted",
    join(inter, "ca.crt"),
    `${client}.pem`,
  ]);

  step(
    "nginx as in seed 000: server.pem with its chain, ssl_client_certificate ca.crt, ssl_verify_client on",
  );
  const nginx = await nginxServer({
    cert: `${server}.pem`,
    key: `${server}.key`,
    clientCa: join(root, "ca.crt"),
    protocols: ["1.1", "1.2", "1.3"],
  });
  process.stdout.write(`nginx listening on 127.0.0.1:${nginx.port}\n`);
  try {
    step("hsmkit curl signs the TLS handshake with the token key (TLS 1.2, the seed's RSA suite)");
    const url = `https://localhost:${nginx.port}/`;
    const common = ["--cacert", join(root, "ca.crt"), "--cert", `${client}.pem`, "--key", tokenRef("client")];
    const page = run(HSMKIT, [
      "curl",
      url,
      ...common,
      "--tls-max",
      "1.2",
      "--ciphers",
      "TLS_RSA_WITH_AES_128_CBC_SHA256",
      "-v",
    ]);
    if (page !== NGINX_INDEX_HTML) throw new Error("nginx did not serve its page");

    step("The same over TLS 1.3, and over TLS 1.1 as the oldest seed peers speak");
    run(HSMKIT, ["curl", url, ...common], { quiet: true });
    run(
      HSMKIT,
      [
        "curl",
        url,
        ...common,
        "--tls-min",
        "1.1",
        "--tls-max",
        "1.1",
        "--ciphers",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
      ],
      { quiet: true },
    );

    step("What nginx saw");
    const seen = await nginx.waitForRequests(3);
    for (const r of seen)
      process.stdout.write(`${r.protocol} ${r.cipher} verify=${r.verify} subject=${r.subject}\n`);
    if (!seen.every((r) => r.verify === "SUCCESS" && r.subject.includes("demo-ukey-user"))) {
      throw new Error("nginx did not verify the token client");
    }

    step("Without the client certificate nginx refuses (HTTP 400, hsmkit curl exits 22)");
    const res = spawnSync(HSMKIT, ["curl", url, "--cacert", join(root, "ca.crt")], { env, encoding: "utf8" });
    process.stdout.write(`exit ${res.status}: ${res.stderr.trim()}\n`);
    if (res.status !== 22) throw new Error("expected exit 22");
  } finally {
    await nginx.stop();
  }

  step("The token still holds the keys, and they cannot be exported");
  const objects = execFileSync(
    "pkcs11-tool",
    [
      "--module",
      "/usr/lib/softhsm/libsofthsm2.so",
      "--token-label",
      "demo-ukey",
      "--login",
      "--pin",
      readFileSync(pinFile, "utf8").trim(),
      "--list-objects",
      "--type",
      "privkey",
    ],
    { env, encoding: "utf8" },
  );
  const lines = objects.split("\n").filter((l) => /Private Key Object|label|Access/.test(l));
  process.stdout.write(`${lines.join("\n")}\n`);
  process.stdout.write("\ndemo: all steps passed\n");
}

try {
  await main();
} catch (err) {
  process.stderr.write(
    `\ndemo failed at step ${stepNo}: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
