/**
 * The CLI loads only the code of the command being run: each case runs `hsmkit` (from source)
 * under a module loader hook that refuses to load the modules the command has no use for, so a
 * command that pulls them in fails instead of printing its result. (Start-up time itself is
 * measured by bench/cli.ts; this pins down the cause of a slow start.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { type MutualTlsServer, mutualTlsServer, type SeenRequest } from "./helpers/mtls-server.ts";
import { makePki, type Pki } from "./helpers/pki.ts";
import { type RunResult, runCommand } from "./helpers/process.ts";

const REPO = join(import.meta.dirname, "..");
const TSX = join(REPO, "node_modules", "tsx", "dist", "esm", "index.mjs");
const MAIN = join(REPO, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "hsmkit-startup-"));

/** Libraries only the CA, the KMS, certificate printing or token keys need. */
const HEAVY = "node_modules/(@peculiar|pkijs|asn1js|node-forge|protobufjs|better-sqlite3|pkcs11js)/";

let pki: Pki;
let server: MutualTlsServer;

before(async () => {
  pki = await makePki();
  server = await mutualTlsServer(pki);
});

after(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI with a loader hook that throws on any module URL matching `refused`. */
function runRefusing(refused: string, args: readonly string[]): Promise<RunResult> {
  const hook = join(dir, `hook-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(
    hook,
    `const refused = new RegExp(${JSON.stringify(refused)});
export async function load(url, context, next) {
  if (refused.test(url)) throw new Error("this command should not load " + url);
  return next(url, context);
}
`,
  );
  const register = join(dir, `register-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(
    register,
    `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hook).href)});\n`,
  );
  return runCommand(
    process.execPath,
    ["--no-warnings", "--import", TSX, "--import", pathToFileURL(register).href, MAIN, ...args],
    { timeoutMs: 60_000 },
  );
}

test("hsmkit --version and --help load no command module and no heavy library", async () => {
  const refused = `/src/(tls|keys|kms|pki|https|sign)/|${HEAVY}`;
  const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };
  const v = await runRefusing(refused, ["--version"]);
  assert.equal(v.exitCode, 0, v.output);
  assert.equal(v.stdout.trim(), version);
  const h = await runRefusing(refused, ["--help"]);
  assert.equal(h.exitCode, 0, h.output);
  for (const name of ["curl", "serve", "key", "ca", "cert", "kms", "sign", "verify"]) {
    assert.match(h.stdout, new RegExp(`^  ${name}\\b`, "m"), `--help lists ${name}`);
  }
});

test("hsmkit sign with a file key loads neither TLS, HTTPS, the CA, the KMS client nor PKCS#11", async () => {
  const input = join(dir, "data.bin");
  writeFileSync(input, "sign me\n");
  const r = await runRefusing(`/src/(tls|https|pki)/|/src/kms/(?!register\\.ts)|${HEAVY}`, [
    "sign",
    "--key",
    pki.client.keyPath,
    "--alg",
    "RSA_PSS_SHA_256",
    "--in",
    input,
    "--out",
    join(dir, "data.sig"),
  ]);
  assert.equal(r.exitCode, 0, r.output);
  assert.ok(readFileSync(join(dir, "data.sig")).length === 256, "an RSA-2048 signature was written");
});

test("hsmkit curl with a file key does mutual TLS without the CA, the KMS client, PKCS#11 or ASN.1 libraries", async () => {
  const r = await runRefusing(`/src/(pki|sign)/|/src/kms/(?!register\\.ts)|${HEAVY}`, [
    "curl",
    `${server.url}/startup`,
    "--cacert",
    pki.caFile,
    "--cert",
    pki.client.chainPath,
    "--key",
    pki.client.keyPath,
  ]);
  assert.equal(r.exitCode, 0, r.output);
  const seen = JSON.parse(r.stdout) as SeenRequest;
  assert.equal(seen.client, "hsmkit-test-client-rsa");
  assert.equal(seen.path, "/startup");
});
