/**
 * hsmkit as a user installs it: `npm pack` of this checkout, then `npm install --offline` of the
 * tarball into an empty project, where `npx hsmkit --version` runs the compiled CLI, every entry
 * point imports from an .mjs file, and a TypeScript consumer type-checks against the shipped
 * .d.ts and fetches from a local mutual-TLS server with a SoftHSM2-held key.
 *
 * No network: the tarball's dependencies are linked from this checkout's node_modules
 * (`file:` directory dependencies, which npm links), so only the tarball itself is installed.
 * dist/ is brought up to date first with an incremental `tsc` when a source is newer than it.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ensureBuilt, REPO } from "./helpers/build.ts";
import { type TokenIdentity, tokenIdentity } from "./helpers/hsmkit.ts";
import { type MutualTlsServer, mutualTlsServer, type SeenRequest } from "./helpers/mtls-server.ts";
import { makePki, type Pki } from "./helpers/pki.ts";
import { runChecked } from "./helpers/process.ts";
import { softHsm } from "./helpers/softhsm.ts";

const hsm = softHsm();

const MODULES = join(REPO, "node_modules");
const ENTRY_POINTS = [
  "hsmkit",
  "hsmkit/keys",
  "hsmkit/tls",
  "hsmkit/https",
  "hsmkit/pki",
  "hsmkit/kms",
  "hsmkit/sign",
];

const work = mkdtempSync(join(tmpdir(), "hsmkit-package-"));
const project = join(work, "consumer");
let packedFiles: string[];
let pki: Pki;
let id: TokenIdentity;
let server: MutualTlsServer;

/** Runs a command in the consumer project, failing on a non-zero exit; returns stdout. */
async function inProject(command: string, args: readonly string[]): Promise<string> {
  return (await runChecked(command, args, { cwd: project, env: hsm.env, timeoutMs: 60_000 })).stdout;
}

before(async () => {
  await ensureBuilt();
  const packed = await runChecked("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], {
    cwd: REPO,
    timeoutMs: 60_000,
  });
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  packedFiles = info!.files.map((f) => f.path);
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  // hsmkit's dependencies, plus what the consumer itself uses, linked from this checkout.
  const links = [...Object.keys(pkg.dependencies), "typescript", "@types/node", "undici"];
  const dependencies: Record<string, string> = { hsmkit: `file:${join(work, info!.filename)}` };
  for (const name of links) dependencies[name] = `file:${join(MODULES, name)}`;
  mkdirSync(project);
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module", dependencies }),
  );
  await inProject("npm", ["install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"]);
  pki = await makePki();
  id = await tokenIdentity(pki, "ec-p256", "package-consumer");
  server = await mutualTlsServer(pki);
});

after(async () => {
  await server?.close();
  await id?.handle.close();
  rmSync(work, { recursive: true, force: true });
});

test("the tarball holds dist/, bin/, README, LICENSE and package.json only: no tests, benchmarks or sources", () => {
  const stray = packedFiles.filter(
    (f) => !/^(dist\/.+\.(js|d\.ts)|bin\/hsmkit|README\.md|package\.json|LICENSE)$/.test(f),
  );
  assert.deepEqual(stray, []);
  for (const f of [
    "bin/hsmkit",
    "dist/index.js",
    "dist/index.d.ts",
    "dist/cli/main.js",
    "README.md",
    "LICENSE",
  ]) {
    assert.ok(packedFiles.includes(f), `${f} is in the tarball`);
  }
});

test("npx hsmkit --version prints the package version from the installed tarball", async () => {
  const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };
  assert.equal((await inProject("npx", ["--offline", "hsmkit", "--version"])).trim(), version);
});

test("every entry point imports from an .mjs file and has its main exports", async () => {
  writeFileSync(
    join(project, "entries.mjs"),
    `const names = ${JSON.stringify(ENTRY_POINTS)};
const out = {};
for (const name of names) out[name] = Object.keys(await import(name)).sort();
console.log(JSON.stringify(out));
`,
  );
  const exported = JSON.parse(await inProject(process.execPath, ["entries.mjs"])) as Record<string, string[]>;
  const expect: Record<string, string[]> = {
    hsmkit: [
      "openKey",
      "generateKey",
      "connect",
      "createServer",
      "HsmkitAgent",
      "hsmkitConnector",
      "KeyError",
      "TlsError",
    ],
    "hsmkit/keys": ["openKey", "generateKey", "registerKeyBackend", "KeyError"],
    "hsmkit/tls": ["connect", "createServer", "TlsError", "verifyChain", "ClientSessionCache"],
    "hsmkit/https": ["HsmkitAgent", "hsmkitConnector", "curl", "createHttpsServer"],
    "hsmkit/pki": ["initCa", "issueCertificate", "revokeCertificate", "PkiError"],
    "hsmkit/kms": ["KmsClient", "KmsServer", "KmsInstance", "KmsRequestError"],
    "hsmkit/sign": ["signFile", "verifyFile", "FILE_ALGORITHMS"],
  };
  for (const [entry, names] of Object.entries(expect)) {
    for (const name of names) assert.ok(exported[entry]?.includes(name), `${entry} exports ${name}`);
  }
});

test("a TypeScript consumer type-checks against every entry point's types and fetches over mutual TLS", async () => {
  writeFileSync(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", strict: true, outDir: "out", types: ["node"] },
      files: ["consumer.ts"],
    }),
  );
  writeFileSync(
    join(project, "consumer.ts"),
    `import { readFileSync } from "node:fs";
import { hsmkitConnector, openKey, type PrivateKeyHandle } from "hsmkit";
import { Agent, fetch } from "undici";

/** Every entry point's types resolve and check. */
export type Entries = [${ENTRY_POINTS.map((e) => `typeof import("${e}")`).join(", ")}];
const [url, caFile, certFile, keyRef] = process.argv.slice(2) as [string, string, string, string];
const key: PrivateKeyHandle = await openKey(keyRef);
const connect = hsmkitConnector({ ca: readFileSync(caFile, "utf8"), cert: readFileSync(certFile, "utf8"), key });
const dispatcher = new Agent({ connect: connect as unknown as Agent.Options["connect"] });
const res = await fetch(url, { dispatcher });
console.log(JSON.stringify(await res.json()));
await dispatcher.close();
await key.close();
`,
  );
  await inProject(process.execPath, [join(project, "node_modules", "typescript", "bin", "tsc"), "-p", "."]);
  const out = await inProject(process.execPath, [
    join("out", "consumer.js"),
    `${server.url}/from-the-package`,
    pki.caFile,
    id.cert.chainPath,
    id.ref,
  ]);
  const seen = JSON.parse(out) as SeenRequest;
  assert.equal(seen.client, "package-consumer", "the server verified the token-held client certificate");
  assert.equal(seen.path, "/from-the-package");
});
