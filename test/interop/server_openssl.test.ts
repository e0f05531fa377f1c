/**
 * hsmkit's TLS server against `openssl s_client`: every TLS 1.2 and TLS 1.1 suite the
 * server enables, with mutual TLS and RSA and EC server keys; resumption by ticket and by
 * session ID (`-reconnect` shows "Reused"); client certificates from another CA, expired
 * or without the clientAuth purpose refused with the right alert; a fallback SCSV refused
 * with inappropriate_fallback.
 */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { CIPHER_SUITES, type CipherSuite } from "../../src/tls/cipher_suites.ts";
import { tokenIdentity } from "../helpers/hsmkit.ts";
import { opensslClient } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { issueCertificate } from "../helpers/pki-openssl.ts";
import { type EchoServer, opensslCipherArg, startEchoServer } from "./server_fixture.ts";

let pki: Pki;
let rsaKey: PrivateKeyHandle;
let ecKey: PrivateKeyHandle;
let rsaServer: EchoServer;
let ecServer: EchoServer;
/** Client leaf + intermediate for an expired client certificate (the client key). */
let expiredClientChain: string;

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
  const day = 86_400_000;
  const expired = await issueCertificate({
    profile: "client",
    commonName: "hsmkit-test-client-expired",
    publicKeyPem: createPublicKey(pki.client.keyPem).export({ type: "spki", format: "pem" }).toString(),
    issuer: pki.intermediate,
    validity: {
      notBefore: new Date(Date.now() - 30 * day),
      notAfter: new Date(Date.now() - day),
      csrKeyPath: pki.client.keyPath,
    },
    outPath: path.join(pki.dir, "server-test-expired-client.crt"),
  });
  expiredClientChain = path.join(pki.dir, "server-test-expired-client.pem");
  await writeFile(expiredClientChain, expired.certPem + pki.intermediate.chainPem);
});

after(async () => {
  await Promise.all([rsaServer?.close(), ecServer?.close()]);
  await Promise.all([rsaKey?.close(), ecKey?.close()]);
});

/** s_client arguments for mutual TLS with a client chain file (leaf + intermediate) and key. */
function mtlsArgs(chainPath: string, keyPath: string): string[] {
  return [
    "-CAfile",
    pki.caFile,
    "-cert",
    chainPath,
    "-cert_chain",
    chainPath,
    "-key",
    keyPath,
    "-verify_return_error",
  ];
}

function field(output: string, re: RegExp): string | undefined {
  return re.exec(output)?.[1];
}

describe("every enabled suite and version with openssl s_client, mutual TLS", () => {
  for (const [label, suites, serverOf] of [
    ["RSA server key", RSA_SUITES, () => rsaServer],
    ["EC server key", EC_SUITES, () => ecServer],
  ] as const) {
    test(label, async () => {
      const server = serverOf();
      const cases: Array<[CipherSuite, "1.1" | "1.2"]> = [];
      for (const s of suites) {
        cases.push([s, "1.2"]);
        if (s.minVersion <= 0x0302) cases.push([s, "1.1"]);
      }
      for (const [suite, version] of cases) {
        const tag = `${suite.name} TLS ${version}`;
        const r = await opensslClient({
          port: server.port,
          servername: "localhost",
          args: [
            ...mtlsArgs(pki.client.chainPath, pki.client.keyPath),
            `-tls${version.replace(".", "_")}`,
            "-cipher",
            opensslCipherArg(suite.opensslName, version),
          ],
          input: "ping\n",
        });
        assert.equal(r.exitCode, 0, `${tag}\n${r.output}`);
        assert.equal(field(r.output, /^\s*Cipher\s*: (\S+)$/m), suite.opensslName, tag);
        assert.equal(field(r.output, /^\s*Protocol\s*: (\S+)$/m), `TLSv${version}`, tag);
        assert.match(r.output, /Verify return code: 0 \(ok\)/, tag);
        if (version === "1.2") assert.match(r.output, /Extended master secret: yes/, tag);
        const accepted = server.accepted.at(-1)!;
        assert.equal(accepted.getCipher()?.standardName, suite.name, tag);
        assert.equal(accepted.authorized, true, tag);
      }
    });
  }
});

describe("RSA key exchange with AES-GCM, server key in SoftHSM2 (decrypts the premaster)", () => {
  test("TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_256_GCM_SHA384 with openssl s_client, mutual TLS", async () => {
    const id = await tokenIdentity(pki, "rsa2048", "hsmkit-token-server-rsa-gcm", "server");
    const server = await startEchoServer({
      cert: id.cert.chainPem,
      key: id.handle,
      clientCa: pki.root.certPem,
      maxVersion: "1.2",
      ciphers: "TLS_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_256_GCM_SHA384",
    });
    try {
      for (const name of ["AES128-GCM-SHA256", "AES256-GCM-SHA384"]) {
        const r = await opensslClient({
          port: server.port,
          servername: "localhost",
          args: [...mtlsArgs(pki.client.chainPath, pki.client.keyPath), "-tls1_2", "-cipher", name],
          input: "ping\n",
        });
        assert.equal(r.exitCode, 0, `${name}\n${r.output}`);
        assert.equal(field(r.output, /^\s*Cipher\s*: (\S+)$/m), name);
        assert.equal(server.accepted.at(-1)?.authorized, true, name);
      }
    } finally {
      await server.close();
      await id.handle.close();
    }
  });
});

describe("resumption", () => {
  for (const [label, extra] of [
    ["by session ticket", []],
    ["by session ID (-no_ticket)", ["-no_ticket"]],
  ] as const) {
    test(`s_client -reconnect ${label}: Reused, and the resumed sessions keep the client`, async () => {
      const before = rsaServer.accepted.length;
      const r = await opensslClient({
        port: rsaServer.port,
        servername: "localhost",
        args: [...mtlsArgs(pki.client.chainPath, pki.client.keyPath), "-tls1_2", "-reconnect", ...extra],
        input: "",
      });
      assert.equal(r.exitCode, 0, r.output);
      const lines = r.output.match(/^(New|Reused), TLSv1\.2, Cipher is \S+$/gm) ?? [];
      assert.equal(lines[0]?.startsWith("New"), true, r.output);
      assert.ok(lines.length >= 5, r.output);
      assert.ok(
        lines.slice(1).every((l) => l.startsWith("Reused")),
        lines.join("\n"),
      );
      const sockets = rsaServer.accepted.slice(before);
      assert.ok(sockets.length >= 5);
      assert.ok(sockets.every((s) => s.authorized));
    });
  }
});

describe("client certificates that must be refused", () => {
  const cases = [
    {
      name: "from another CA",
      chain: () => pki.otherClient.chainPath,
      key: () => pki.otherClient.keyPath,
      alert: /alert unknown ca/,
      reason: /issuer|trusted|root/i,
    },
    {
      name: "expired",
      chain: () => expiredClientChain,
      key: () => pki.client.keyPath,
      alert: /alert certificate expired/,
      reason: /expired/,
    },
    {
      name: "without the clientAuth purpose (a server certificate)",
      chain: () => pki.server.chainPath,
      key: () => pki.server.keyPath,
      alert: /alert unsupported certificate/,
      reason: /client authentication|purpose|clientAuth/i,
    },
  ];
  for (const c of cases) {
    test(`${c.name}: refused with the right alert, and the server keeps serving`, async () => {
      const failuresBefore = rsaServer.failures.length;
      const r = await opensslClient({
        port: rsaServer.port,
        servername: "localhost",
        args: [...mtlsArgs(c.chain(), c.key()), "-tls1_2"],
        input: "ping\n",
      });
      assert.notEqual(r.exitCode, 0, r.output);
      assert.match(r.output, c.alert);
      assert.match(rsaServer.failures.slice(failuresBefore).join("\n"), c.reason);
      const ok = await opensslClient({
        port: rsaServer.port,
        servername: "localhost",
        args: [...mtlsArgs(pki.client.chainPath, pki.client.keyPath), "-tls1_2"],
        input: "ping\n",
      });
      assert.equal(ok.exitCode, 0, ok.output);
    });
  }

  test("no client certificate at all: handshake_failure", async () => {
    const r = await opensslClient({
      port: rsaServer.port,
      servername: "localhost",
      args: ["-CAfile", pki.caFile, "-tls1_2"],
      input: "ping\n",
    });
    assert.notEqual(r.exitCode, 0, r.output);
    assert.match(r.output, /alert handshake failure/);
  });
});

test("a TLS 1.1 fallback with TLS_FALLBACK_SCSV is refused: inappropriate_fallback", async () => {
  const r = await opensslClient({
    port: rsaServer.port,
    servername: "localhost",
    args: [
      ...mtlsArgs(pki.client.chainPath, pki.client.keyPath),
      "-tls1_1",
      "-cipher",
      "AES128-SHA:@SECLEVEL=0",
      "-fallback_scsv",
    ],
    input: "ping\n",
  });
  assert.notEqual(r.exitCode, 0, r.output);
  assert.match(r.output, /alert inappropriate fallback/);
  assert.match(rsaServer.failures.at(-1)!, /RFC 7507/);
});
