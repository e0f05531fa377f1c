/**
 * Self-tests of test/helpers/pki.ts, net.ts and process.ts: the fixtures are what they claim
 * (checked by `openssl verify -x509_strict`), the waits are bounded, and a test process that
 * ends without stopping its peers does not leave them running.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort, waitForOutput, waitForPort } from "../helpers/net.ts";
import { curl, opensslClientVerifications, opensslServer, waitForVerifications } from "../helpers/peers.ts";
import { issueCert, makePki } from "../helpers/pki.ts";
import { groupMembers, ManagedProcess, processAlive, runCommand, waitUntil } from "../helpers/process.ts";

const pki = await makePki();

/** `openssl verify -x509_strict` with the given trust anchor and extra arguments; returns its output. */
async function verify(
  certPath: string,
  args: string[],
  caFile = pki.caFile,
): Promise<{ ok: boolean; text: string }> {
  const r = await runCommand("openssl", ["verify", "-x509_strict", "-CAfile", caFile, ...args, certPath]);
  return { ok: r.exitCode === 0, text: r.output };
}
const untrusted = ["-untrusted", pki.intermediate.certPath];

describe("pki fixtures", () => {
  test("good certificates pass openssl verify -x509_strict for their purpose and names", async () => {
    for (const leaf of [pki.server, pki.serverEc]) {
      const r = await verify(leaf.certPath, [
        ...untrusted,
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "localhost",
      ]);
      assert.ok(r.ok, r.text);
      const ip = await verify(leaf.certPath, [
        ...untrusted,
        "-purpose",
        "sslserver",
        "-verify_ip",
        "127.0.0.1",
      ]);
      assert.ok(ip.ok, ip.text);
    }
    for (const leaf of [pki.client, pki.clientEc, pki.revokedClient]) {
      const r = await verify(leaf.certPath, [...untrusted, "-purpose", "sslclient"]);
      assert.ok(r.ok, r.text);
    }
    for (const leaf of [pki.otherClient, pki.otherServer]) {
      const r = await verify(leaf.certPath, [], pki.otherCa.certPath);
      assert.ok(r.ok, r.text);
    }
    // A server certificate is not a client certificate and vice versa.
    assert.equal((await verify(pki.server.certPath, [...untrusted, "-purpose", "sslclient"])).ok, false);
    assert.equal((await verify(pki.client.certPath, [...untrusted, "-purpose", "sslserver"])).ok, false);
  });

  test("the bad certificates fail for the intended reason", async () => {
    const expired = await verify(pki.expiredServer.certPath, untrusted);
    assert.match(expired.text, /certificate has expired/);
    const wrongHost = await verify(pki.wrongHostServer.certPath, [
      ...untrusted,
      "-verify_hostname",
      "localhost",
    ]);
    assert.match(wrongHost.text, /hostname mismatch/);
    assert.ok(
      (await verify(pki.wrongHostServer.certPath, [...untrusted, "-verify_hostname", "wrong.example"])).ok,
    );
    const stranger = await verify(pki.otherClient.certPath, untrusted);
    assert.match(stranger.text, /unable to get local issuer certificate/);
    const crl = [...untrusted, "-crl_check_all", "-CRLfile", pki.crlPath];
    assert.match((await verify(pki.revokedClient.certPath, crl)).text, /certificate revoked/);
    assert.ok((await verify(pki.client.certPath, crl)).ok);
  });

  test("files are laid out as the seed does, keys private, DER matches PEM", async () => {
    assert.equal(path.basename(pki.caFile), "ca.crt");
    assert.equal(new X509Certificate(pki.root.certPem).subject, "O=hsmkit tests\nCN=hsmkit-test-root-ca");
    assert.equal(pki.server.chainPem, pki.server.certPem + pki.intermediate.certPem);
    assert.equal(pki.client.chainPem, pki.client.certPem + pki.intermediate.certPem);
    assert.equal(pki.otherClient.chainPem, pki.otherClient.certPem);
    for (const leaf of [pki.server, pki.client, pki.clientEc, pki.root, pki.intermediate]) {
      assert.equal((await stat(leaf.keyPath)).mode & 0o777, 0o600, leaf.keyPath);
      assert.deepEqual(new X509Certificate(leaf.certPem).raw, leaf.certDer);
    }
    assert.equal(
      new X509Certificate(pki.clientEc.certPem).publicKey.asymmetricKeyDetails?.namedCurve,
      "prime256v1",
    );
    assert.equal(new X509Certificate(pki.client.certPem).publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    const text = async (p: string): Promise<string> =>
      (await runCommand("openssl", ["x509", "-noout", "-text", "-in", p])).stdout;
    assert.match(await text(pki.intermediate.certPath), /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(
      await text(pki.server.certPath),
      /Key Usage: critical\s+Digital Signature, Key Encipherment/,
    );
    assert.match(await text(pki.serverEc.certPath), /Key Usage: critical\s+Digital Signature\n/);
    assert.equal(await makePki(), pki, "cached per process");
  });

  test("certifies a public key whose private key it never sees, usable for mutual TLS", async (t) => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const withExternal = await makePki({
      clientPublicKeyPem: publicKeyPem,
      clientCommonName: "token-client",
    });
    const external = withExternal.externalClient!;
    assert.ok(new X509Certificate(external.certPem).publicKey.equals(publicKey));
    const r = await verify(external.certPath, [...untrusted, "-purpose", "sslclient"]);
    assert.ok(r.ok, r.text);

    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    const ecServer = await issueCert(pki, {
      name: "token-server",
      profile: "server",
      commonName: "token.example",
      publicKeyPem: ec.export({ type: "spki", format: "pem" }).toString(),
      dnsNames: ["token.example"],
    });
    const s = await verify(ecServer.certPath, [
      ...untrusted,
      "-purpose",
      "sslserver",
      "-verify_hostname",
      "token.example",
    ]);
    assert.ok(s.ok, s.text);

    // The holder of the private key can now authenticate with it.
    const dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-ext-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const keyPath = path.join(dir, "client.key");
    await writeFile(keyPath, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const server = await opensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediate.certPath,
      caFile: pki.caFile,
      verifyClient: true,
      www: true,
    });
    t.after(() => server.stop());
    const page = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.caFile,
      cert: external.chainPath,
      key: keyPath,
    });
    assert.equal(page.exitCode, 0, page.output);
    assert.deepEqual(await waitForVerifications(server, opensslClientVerifications, 1), [
      { subject: "O = hsmkit tests, CN = token-client", ok: true },
    ]);
  });
});

describe("net waits", () => {
  test("freePort gives a bindable port; waitForPort sees a listener and times out without one", async (t) => {
    const port = await freePort();
    const listener = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => listener.listen(port, "127.0.0.1", r));
    t.after(() => listener.close());
    await waitForPort(port, 2000);
    const closed = await freePort();
    const started = Date.now();
    await assert.rejects(waitForPort(closed, 300), /did not accept connections within 300 ms/);
    assert.ok(Date.now() - started < 2000);
  });

  test("waitForOutput matches, and fails with the output on exit or timeout", async (t) => {
    const talker = await ManagedProcess.start("sh", ["-c", "sleep 0.2; echo 'ready on 4242'; sleep 30"]);
    t.after(() => talker.stop());
    const match = await waitForOutput(talker, /ready on (\d+)/, 5000);
    assert.equal(match[1], "4242");
    // Output printed before the call counts.
    assert.equal((await waitForOutput(talker, /ready/g, 100))[0], "ready");
    await assert.rejects(
      waitForOutput(talker, /never/, 200),
      /no output matching \/never\/ within 200 ms:\nready on 4242/,
    );

    const quitter = await ManagedProcess.start("sh", ["-c", "echo 'config error: bad thing' >&2; exit 3"]);
    await assert.rejects(
      waitForOutput(quitter, /listening/, 5000),
      /exited without printing[\s\S]*bad thing/,
    );
    const port = await freePort();
    const quitter2 = await ManagedProcess.start("sh", ["-c", "echo nope; exit 1"]);
    await assert.rejects(waitForPort(port, 5000, { process: quitter2 }), /process exited before[\s\S]*nope/);
  });

  test("runCommand kills a command that outlives its timeout", async () => {
    const started = Date.now();
    await assert.rejects(
      runCommand("sh", ["-c", "echo started; sleep 30"], { timeoutMs: 300 }),
      /timed out[\s\S]*started/,
    );
    assert.ok(Date.now() - started < 5000);
  });
});

describe("no process left behind", () => {
  const helpers = path.dirname(fileURLToPath(import.meta.url)).replace(/interop$/, "helpers");
  const script = (body: string): string =>
    [
      `import { makePki } from ${JSON.stringify(path.join(helpers, "pki.ts"))};`,
      `import { nginxServer, opensslServer } from ${JSON.stringify(path.join(helpers, "peers.ts"))};`,
      `import { groupMembers } from ${JSON.stringify(path.join(helpers, "process.ts"))};`,
      "const pki = await makePki();",
      body,
    ].join("\n");

  async function runScript(
    t: { after: (fn: () => Promise<void>) => void },
    body: string,
  ): Promise<ManagedProcess> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-orphan-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, "child.mts");
    await writeFile(file, script(body));
    const child = await ManagedProcess.start(process.execPath, ["--no-warnings", "--import", "tsx", file]);
    t.after(() => child.stop());
    return child;
  }

  test("peers die when the test process exits without stopping them", async (t) => {
    const child = await runScript(
      t,
      [
        "const s = await opensslServer({ cert: pki.server.certPath, key: pki.server.keyPath });",
        "const n = await nginxServer({ cert: pki.server.chainPath, key: pki.server.keyPath });",
        // The master listens before it forks its worker: on a loaded machine the worker may not exist yet.
        "for (let i = 0; i < 100 && groupMembers(n.pid).length < 2; i++) await new Promise((r) => setTimeout(r, 50));",
        "console.log('pids', s.pid, n.pid, groupMembers(n.pid).join(','));",
        "process.exit(0);",
      ].join("\n"),
    );
    const [, sPid, nPid, nGroup] = (await waitForOutput(child, /pids (\d+) (\d+) ([\d,]+)/, 30_000)).map(
      String,
    );
    assert.ok(nGroup!.split(",").length >= 2, "nginx master and worker");
    await child.exited;
    assert.ok(await waitUntil(() => !processAlive(Number(sPid)), 3000), "s_server survived");
    assert.ok(await waitUntil(() => groupMembers(Number(nPid)).length === 0, 3000), "nginx survived");
  });

  test("a peer gets SIGTERM when the test process is SIGKILLed", async (t) => {
    const child = await runScript(
      t,
      [
        "const s = await opensslServer({ cert: pki.server.certPath, key: pki.server.keyPath });",
        "console.log('pid', s.pid, pki.dir);",
        "setInterval(() => {}, 1000);",
      ].join("\n"),
    );
    const [, pid, pkiDir] = await waitForOutput(child, /pid (\d+) (\S+)/, 30_000);
    // A SIGKILLed process cannot remove its own temp files.
    t.after(() => rm(pkiDir!, { recursive: true, force: true }));
    const sPid = Number(pid);
    assert.ok(processAlive(sPid));
    process.kill(child.pid, "SIGKILL");
    assert.ok(await waitUntil(() => !processAlive(sPid), 3000), "s_server survived its parent's SIGKILL");
  });
});
