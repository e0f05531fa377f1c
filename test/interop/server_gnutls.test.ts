/**
 * hsmkit's TLS server against `gnutls-cli`: every TLS 1.2 and TLS 1.1 suite the server
 * enables (RSA and EC server keys) with a client certificate, resumption (`--resume`),
 * and a refused rehandshake.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { CIPHER_SUITES, type CipherSuite } from "../../src/tls/cipher_suites.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { type RunResult, runCommand } from "../helpers/process.ts";
import { type EchoServer, startEchoServer } from "./server_fixture.ts";

let pki: Pki;
let rsaKey: PrivateKeyHandle;
let ecKey: PrivateKeyHandle;
let rsaServer: EchoServer;
let ecServer: EchoServer;

const LEGACY = CIPHER_SUITES.filter((s) => s.kx !== "tls13");
const RSA_SUITES = LEGACY.filter((s) => s.kx === "rsa" || s.kx === "ecdhe_rsa");
const EC_SUITES = LEGACY.filter((s) => s.kx === "ecdhe_ecdsa");

before(async () => {
  pki = await makePki();
  [rsaKey, ecKey] = await Promise.all([openKey(pki.server.keyPath), openKey(pki.serverEc.keyPath)]);
  const common = { clientCa: pki.root.certPem, minVersion: "1.1" as const, maxVersion: "1.2" as const };
  rsaServer = await startEchoServer({
    cert: pki.server.chainPem,
    key: rsaKey,
    ciphers: RSA_SUITES,
    ...common,
  });
  ecServer = await startEchoServer({
    cert: pki.serverEc.chainPem,
    key: ecKey,
    ciphers: EC_SUITES,
    ...common,
  });
});

after(async () => {
  await Promise.all([rsaServer?.close(), ecServer?.close()]);
  await Promise.all([rsaKey?.close(), ecKey?.close()]);
});

/** The GnuTLS priority string that allows exactly this suite at this version. */
function priority(suite: CipherSuite, version: "1.1" | "1.2"): string {
  const kx = { rsa: "RSA", ecdhe_rsa: "ECDHE-RSA", ecdhe_ecdsa: "ECDHE-ECDSA", tls13: "" }[suite.kx];
  const cipher = suite.cipher.toUpperCase();
  const mac = suite.mac ? suite.mac.toUpperCase() : "AEAD";
  return `NONE:+VERS-TLS${version}:+${kx}:+${cipher}:+${mac}:+SIGN-ALL:+COMP-NULL:+GROUP-ALL:%VERIFY_ALLOW_SIGN_WITH_SHA1`;
}

function gnutlsCli(port: number, args: string[], input = "ping\n"): Promise<RunResult> {
  return runCommand(
    "gnutls-cli",
    [
      "-p",
      String(port),
      "--x509cafile",
      pki.caFile,
      "--x509certfile",
      pki.client.chainPath,
      "--x509keyfile",
      pki.client.keyPath,
      "--sni-hostname",
      "localhost",
      ...args,
      "127.0.0.1",
    ],
    { input, timeoutMs: 20_000 },
  );
}

/** GnuTLS's names in "- Description: (TLS1.2)-(ECDHE-SECP256R1)-(RSA-PSS-RSAE-SHA256)-(AES-128-GCM)". */
function description(output: string): string | undefined {
  return /^- Description: (.*)$/m.exec(output)?.[1];
}

describe("every enabled suite and version with gnutls-cli, client certificate sent", () => {
  for (const [label, suites, serverOf] of [
    ["RSA server key", RSA_SUITES, () => rsaServer],
    ["EC server key", EC_SUITES, () => ecServer],
  ] as const) {
    test(label, async () => {
      const server = serverOf();
      for (const suite of suites) {
        for (const version of suite.minVersion <= 0x0302 ? (["1.2", "1.1"] as const) : (["1.2"] as const)) {
          const tag = `${suite.name} TLS ${version}`;
          const r = await gnutlsCli(server.port, ["--priority", priority(suite, version)]);
          assert.equal(r.exitCode, 0, `${tag}\n${r.output}`);
          const desc = description(r.output) ?? "";
          assert.ok(desc.startsWith(`(TLS${version}`), `${tag}: ${desc}`);
          assert.ok(
            desc.endsWith(
              `-(${suite.cipher.toUpperCase()})${suite.mac ? `-(${suite.mac.toUpperCase()})` : ""}`,
            ),
            `${tag}: ${desc}`,
          );
          const accepted = server.accepted.at(-1)!;
          assert.equal(accepted.getCipher()?.standardName, suite.name, tag);
          assert.equal(accepted.authorized, true, tag);
        }
      }
    });
  }
});

test("gnutls-cli --resume: the second connection is a resumed session", async () => {
  const r = await gnutlsCli(rsaServer.port, ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2", "--resume"], "");
  assert.equal(r.exitCode, 0, r.output);
  assert.match(r.output, /This is a resumed session/);
});

test("gnutls-cli --rehandshake: renegotiation is refused with no_renegotiation", async () => {
  const r = await gnutlsCli(
    rsaServer.port,
    ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2", "--rehandshake"],
    "",
  );
  assert.match(r.output, /Received alert \[100\]: No renegotiation/, r.output);
  assert.match(r.output, /ReHandshake has failed/);
});
