/**
 * The main job: an end-to-end walk through hsmkit on its embedded defaults, printing each
 * step as a user would type it. Seed 004 (a client whose key lives in a USB key doing mutual
 * TLS) on a SoftHSM2 token, with a private CA whose keys stay in that token, against nginx
 * configured as in seed 000 (`ssl_verify_client on`). Later parts of the system (serve, KMS,
 * file signing) join the walk as they exist.
 *
 * Run: node --import tsx scripts/demo.ts   (the set-up script runs it)
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
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

  await serveWithTokenKey(root, inter, tokenRef);
  await kmsWalk();

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

/** Starts a long-running hsmkit command and resolves once it prints "listening on HOST:PORT". */
async function background(args: string[]): Promise<{ port: number; stop: () => Promise<void> }> {
  const shown = ["hsmkit", ...args].join(" ").replaceAll(work, "$DEMO");
  process.stdout.write(`$ ${shown} &\n`);
  const child = spawn(HSMKIT, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`'${shown}' did not start:\n${out}`)), 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on [^\s:]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`'${shown}' exited with ${code}:\n${out}`)));
  });
  process.stdout.write(`${out.trimEnd().replaceAll(work, "$DEMO")}\n`);
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Seed 000's point: the server key stays in hardware too. `hsmkit serve` with a token key. */
async function serveWithTokenKey(
  root: string,
  inter: string,
  tokenRef: (o: string) => string,
): Promise<void> {
  step("hsmkit serve: a mutual-TLS HTTPS server whose own key is in the token");
  run(HSMKIT, ["key", "generate", "--key", tokenRef("web"), "--type", "ec-p256"], { quiet: true });
  const web = join(work, "web");
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
    "--key",
    tokenRef("web"),
    "--out",
    web,
    "--days",
    "10",
  ]);
  const site = join(work, "site");
  mkdirSync(site);
  writeFileSync(join(site, "index.html"), "hello from hsmkit serve\n");
  const server = await background([
    "serve",
    "--cert",
    `${web}.pem`,
    "--key",
    tokenRef("web"),
    "--client-ca",
    join(root, "ca.crt"),
    "--root",
    site,
    "--listen",
    "127.0.0.1:0",
  ]);
  try {
    step(
      "Both ends in hardware: hsmkit curl (client key in the token) to hsmkit serve (server key in the token)",
    );
    const url = `https://localhost:${server.port}/`;
    const page = run(HSMKIT, [
      "curl",
      url,
      "--cacert",
      join(root, "ca.crt"),
      "--cert",
      join(work, "client.pem"),
      "--key",
      tokenRef("client"),
      "-v",
    ]);
    if (page !== "hello from hsmkit serve\n") throw new Error("hsmkit serve did not serve the page");

    step("Plain curl with a client certificate whose key is a file (as a browser would, after a PFX import)");
    const alice = join(work, "alice");
    run(HSMKIT, [
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
      alice,
      "--days",
      "5",
    ]);
    run(HSMKIT, [
      "cert",
      "pfx",
      "--cert",
      `${alice}.pem`,
      "--key",
      `${alice}.key`,
      "--out",
      `${alice}.pfx`,
      "--password-file",
      join(work, "pin.txt"),
    ]);
    run("curl", [
      "-sS",
      "--cacert",
      join(root, "ca.crt"),
      "--cert",
      `${alice}.pem`,
      "--key",
      `${alice}.key`,
      url,
    ]);
    const anonymous = spawnSync("curl", ["-sS", "--cacert", join(root, "ca.crt"), url], { encoding: "utf8" });
    process.stdout.write(
      `without a certificate: curl exit ${anonymous.status}: ${anonymous.stderr.trim()}\n`,
    );
    if (anonymous.status === 0) throw new Error("hsmkit serve let a client without a certificate in");
  } finally {
    await server.stop();
  }
}

/** Seed 000's KMS half: a self-hosted KMS instance, an access point, and file signing with its key. */
async function kmsWalk(): Promise<void> {
  step("A self-hosted KMS instance (SQLite store, keys wrapped under a master key)");
  const data = join(work, "kms");
  const kms = await background(["kms", "serve", "--data", data, "--listen", "127.0.0.1:0", "--quiet"]);
  try {
    step(
      "An RSA signing key and an application access point (client key file + password), as the seed creates",
    );
    const keyId = run(HSMKIT, [
      "kms",
      "key",
      "create",
      "--data",
      data,
      "--spec",
      "RSA_2048",
      "--usage",
      "SIGN/VERIFY",
    ])
      .trim()
      .split("\n")
      .at(-1)!;
    const apDir = join(work, "ap");
    run(HSMKIT, [
      "kms",
      "ap",
      "create",
      "--data",
      data,
      "--name",
      "demo-app",
      "--keys",
      keyId,
      "--out",
      apDir,
    ]);
    run(HSMKIT, ["kms", "ca", "--data", data, "--out", join(work, "PrivateKmsCA.pem")]);
    const files = execFileSync("ls", [apDir], { encoding: "utf8" }).trim().split("\n");
    const clientKey = join(apDir, files.find((f) => f.endsWith(".json"))!);
    const password = join(apDir, files.find((f) => f.endsWith("_Password.txt"))!);
    const ref = `kms://127.0.0.1:${kms.port}/${keyId}?client-key=${clientKey}&password-file=${password}&ca=${join(work, "PrivateKmsCA.pem")}`;

    step(
      "Sign a file with the KMS key (RSA_PSS_SHA_256, as in the seed's script); check it with openssl and hsmkit",
    );
    const file = join(work, "release.tar");
    writeFileSync(file, Buffer.alloc(3 * 1024 * 1024, "hsmkit"));
    run(HSMKIT, ["sign", "--key", ref, "--alg", "RSA_PSS_SHA_256", "--in", file, "--out", `${file}.sig`]);
    writeFileSync(join(work, "kms-pub.pem"), run(HSMKIT, ["key", "public", "--key", ref], { quiet: true }));
    run("openssl", [
      "dgst",
      "-sha256",
      "-sigopt",
      "rsa_padding_mode:pss",
      "-sigopt",
      "rsa_pss_saltlen:32",
      "-verify",
      join(work, "kms-pub.pem"),
      "-signature",
      `${file}.sig`,
      file,
    ]);
    run(HSMKIT, ["verify", "--key", ref, "--alg", "RSA_PSS_SHA_256", "--in", file, "--sig", `${file}.sig`]);
    writeFileSync(file, "tampered");
    const bad = spawnSync(
      HSMKIT,
      ["verify", "--key", ref, "--alg", "RSA_PSS_SHA_256", "--in", file, "--sig", `${file}.sig`],
      { env, encoding: "utf8" },
    );
    process.stdout.write(`after changing the file: exit ${bad.status}: ${bad.stdout.trim()}\n`);
    if (bad.status !== 1) throw new Error("a tampered file verified");

    step("The audit log recorded every operation, each entry chained to the last");
    run(HSMKIT, ["kms", "audit", "verify", "--data", data]);
  } finally {
    await kms.stop();
  }
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
