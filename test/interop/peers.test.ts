/**
 * Self-tests of the real peers in test/helpers/peers.ts: each one starts, serves curl with mutual
 * TLS, logs the verified client subject, refuses a client without (or with a bad) certificate,
 * and stops without leaving a process behind.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { waitForOutput } from "../helpers/net.ts";
import {
  curl,
  gnutlsClientVerifications,
  gnutlsServer,
  NGINX_INDEX_HTML,
  nginxServer,
  opensslClient,
  opensslClientVerifications,
  opensslServer,
  type Peer,
  waitForVerifications,
} from "../helpers/peers.ts";
import { issueCert, makePki, type Pki } from "../helpers/pki.ts";
import { groupMembers, processAlive, runChecked } from "../helpers/process.ts";

const pki: Pki = await makePki();
const mtls = { cacert: pki.caFile, cert: pki.client.chainPath, key: pki.client.keyPath };

/** Stops the peer and checks that no process of its group is left. */
async function stopAndCheck(peer: Peer): Promise<void> {
  await peer.stop();
  assert.equal(processAlive(peer.pid), false, "main process still alive");
  assert.deepEqual(groupMembers(peer.pid), [], "processes of the peer's group still alive");
}

describe("openssl s_server", () => {
  test("serves curl with mutual TLS and logs the verified client", async (t) => {
    const server = await opensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediate.certPath,
      caFile: pki.caFile,
      verifyClient: true,
      www: true,
    });
    t.after(() => server.stop());
    const ok = await curl(`https://localhost:${server.port}/`, mtls);
    assert.equal(ok.exitCode, 0, ok.output);
    assert.match(ok.stdout, /Client certificate[\s\S]*CN=hsmkit-test-client-rsa/);
    assert.deepEqual(await waitForVerifications(server, opensslClientVerifications, 1), [
      { subject: "O = hsmkit tests, CN = hsmkit-test-client-rsa", ok: true },
    ]);

    const anonymous = await curl(`https://localhost:${server.port}/`, { cacert: pki.caFile });
    assert.notEqual(anonymous.exitCode, 0);
    assert.match(anonymous.stderr, /certificate required/);
    await waitForOutput(server.process, /peer did not return a certificate/, 5000);

    const stranger = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.caFile,
      cert: pki.otherClient.chainPath,
      key: pki.otherClient.keyPath,
    });
    assert.notEqual(stranger.exitCode, 0);
    assert.deepEqual((await waitForVerifications(server, opensslClientVerifications, 2))[1], {
      subject: "O = hsmkit tests, CN = hsmkit-test-client-of-other-ca",
      ok: false,
      error: "unable to get local issuer certificate",
    });
    await stopAndCheck(server);
  });

  test("speaks TLS 1.1 with a seed suite when asked (SECLEVEL 0 added)", async (t) => {
    const server = await opensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediate.certPath,
      caFile: pki.caFile,
      verifyClient: true,
      tls: "1.1",
      ciphers: "AES128-SHA",
    });
    t.after(() => server.stop());
    const client = await opensslClient({
      port: server.port,
      args: ["-tls1_1", "-cipher", "AES128-SHA:@SECLEVEL=0", "-CAfile", pki.caFile],
      input: "",
    });
    // Without a client certificate the handshake fails; with one it completes.
    assert.notEqual(client.exitCode, 0, client.output);
    const withCert = await opensslClient({
      port: server.port,
      args: [
        ...["-tls1_1", "-cipher", "AES128-SHA:@SECLEVEL=0", "-CAfile", pki.caFile],
        ...[
          "-cert",
          pki.client.certPath,
          "-key",
          pki.client.keyPath,
          "-cert_chain",
          pki.intermediate.certPath,
        ],
      ],
      input: "",
    });
    assert.equal(withCert.exitCode, 0, withCert.output);
    assert.match(withCert.stdout, /Protocol *: TLSv1\.1/);
    assert.match(withCert.stdout, /Cipher *: AES128-SHA$/m);
    assert.match(withCert.stdout, /Verify return code: 0 \(ok\)/);
    assert.equal((await waitForVerifications(server, opensslClientVerifications, 1)).at(-1)?.ok, true);
    await stopAndCheck(server);
  });

  test("echo mode relays bytes both ways", async (t) => {
    const server = await opensslServer({ cert: pki.server.certPath, key: pki.server.keyPath, tls: "1.2" });
    t.after(() => server.stop());
    const client = opensslClient({
      port: server.port,
      args: ["-CAfile", pki.caFile, "-ign_eof", "-quiet"],
      input: "ping from client\n",
      timeoutMs: 10_000,
    });
    await waitForOutput(server.process, /ping from client/, 10_000);
    server.process.write("pong from server\n");
    // Give the line time to cross; then closing the server ends the client's -ign_eof wait.
    await new Promise((r) => setTimeout(r, 300));
    await stopAndCheck(server);
    const result = await client;
    assert.match(result.stdout, /pong from server/);
  });
});

describe("nginx", () => {
  test("serves curl with mutual TLS, logs the verified subject, refuses others", async (t) => {
    const server = await nginxServer({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      clientCa: pki.caFile,
      crl: pki.crlPath,
    });
    t.after(() => server.stop());
    const page = await curl(`https://localhost:${server.port}/`, mtls);
    assert.equal(page.exitCode, 0, page.output);
    assert.equal(page.stdout, NGINX_INDEX_HTML);

    const whoami = await curl(`https://127.0.0.1:${server.port}/whoami`, {
      cacert: pki.caFile,
      cert: pki.clientEc.chainPath,
      key: pki.clientEc.keyPath,
    });
    assert.match(whoami.stdout, /^verify=SUCCESS\nsubject=CN=hsmkit-test-client-ec,O=hsmkit tests\n/);

    const status = (args: string[]): string[] => ["-o", "/dev/null", "-w", "%{http_code}", ...args];
    const anonymous = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.caFile,
      args: status([]),
    });
    assert.equal(anonymous.stdout, "400");
    const stranger = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.caFile,
      cert: pki.otherClient.chainPath,
      key: pki.otherClient.keyPath,
      args: status([]),
    });
    assert.equal(stranger.stdout, "400");
    const revoked = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.caFile,
      cert: pki.revokedClient.chainPath,
      key: pki.revokedClient.keyPath,
      args: status([]),
    });
    assert.equal(revoked.stdout, "400");

    const log = await server.waitForRequests(5);
    assert.equal(log.length, 5);
    assert.equal(log[0]!.verify, "SUCCESS");
    assert.equal(log[0]!.subject, "CN=hsmkit-test-client-rsa,O=hsmkit tests");
    assert.equal(log[0]!.status, 200);
    assert.equal(log[0]!.protocol, "TLSv1.3");
    assert.equal(log[2]!.verify, "NONE");
    assert.match(log[3]!.verify, /^FAILED:unable to (get local issuer|verify the first) certificate/);
    assert.match(log[4]!.verify, /^FAILED:certificate revoked/);
    await waitForOutput(server.process, /client sent no required SSL certificate/, 5000);

    const prefix = server.prefix;
    await stopAndCheck(server);
    assert.equal(existsSync(prefix), false, "nginx prefix not removed");
  });

  test("TLS 1.2 with an RSA key-exchange seed suite, checked by s_client", async (t) => {
    const server = await nginxServer({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      clientCa: pki.caFile,
      protocols: ["1.2"],
      ciphers: "AES256-SHA256",
    });
    t.after(() => server.stop());
    const result = await opensslClient({
      port: server.port,
      servername: "localhost",
      args: [
        ...["-CAfile", pki.caFile, "-cert", pki.client.certPath, "-key", pki.client.keyPath],
        ...["-cert_chain", pki.intermediate.certPath],
        ...["-tls1_2", "-cipher", "AES256-SHA256", "-ign_eof", "-quiet"],
      ],
      input: "GET /whoami HTTP/1.0\r\nHost: localhost\r\n\r\n",
    });
    assert.match(result.stdout, /HTTP\/1\.1 200 OK/);
    assert.match(result.stdout, /verify=SUCCESS\nsubject=CN=hsmkit-test-client-rsa,O=hsmkit tests\n/);
    assert.match(result.stdout, /protocol=TLSv1\.2\ncipher=AES256-SHA256\n/);
    await stopAndCheck(server);
  });
});

describe("gnutls-serv", () => {
  test("serves curl with mutual TLS and logs the verified client", async (t) => {
    const server = await gnutlsServer({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      caFile: pki.caFile,
      requireClientCert: true,
    });
    t.after(() => server.stop());
    const page = await curl(`https://localhost:${server.port}/`, mtls);
    assert.equal(page.exitCode, 0, page.output);
    assert.match(page.stdout, /This is <a href="http:\/\/www.gnu.org\/software\/gnutls">GnuTLS/);
    assert.deepEqual(await waitForVerifications(server, gnutlsClientVerifications, 1), [
      { subject: "CN=hsmkit-test-client-rsa,O=hsmkit tests", ok: true },
    ]);

    const anonymous = await curl(`https://localhost:${server.port}/`, { cacert: pki.caFile });
    assert.notEqual(anonymous.exitCode, 0);
    const stranger = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.caFile,
      cert: pki.otherClient.chainPath,
      key: pki.otherClient.keyPath,
    });
    assert.notEqual(stranger.exitCode, 0);
    await waitForOutput(
      server.process,
      /Error in handshake: Certificate is required[\s\S]*Error in handshake/,
      5000,
    );
    assert.equal(gnutlsClientVerifications(server.output()).length, 1, "only the good client was trusted");
    await stopAndCheck(server);
  });
});

describe("nginx with its key in a SoftHSM token", () => {
  test("serves mutual TLS through the pkcs11 engine with a certificate made for the token key", async (t) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-ngx-hsm-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(path.join(dir, "tokens"));
    const conf = path.join(dir, "softhsm2.conf");
    await writeFile(conf, `directories.tokendir = ${path.join(dir, "tokens")}\nobjectstore.backend = file\n`);
    const env = { ...process.env, SOFTHSM2_CONF: conf };
    const module = "/usr/lib/softhsm/libsofthsm2.so";
    const pin = "4321";
    const tool = ["--module", module, "--token-label", "nginx-test", "--login", "--pin", pin];
    await runChecked(
      "softhsm2-util",
      ["--init-token", "--free", "--label", "nginx-test", "--pin", pin, "--so-pin", "8765"],
      { env },
    );
    await runChecked(
      "pkcs11-tool",
      [...tool, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "web", "--id", "01"],
      { env },
    );
    const pubDer = path.join(dir, "web.pub.der");
    await runChecked(
      "pkcs11-tool",
      [...tool, "--read-object", "--type", "pubkey", "--label", "web", "-o", pubDer],
      { env },
    );
    const publicKeyPem = (await runChecked("openssl", ["pkey", "-pubin", "-inform", "DER", "-in", pubDer]))
      .stdout;
    const cert = await issueCert(pki, {
      name: "token-web",
      profile: "server",
      commonName: "localhost",
      publicKeyPem,
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    });
    const server = await nginxServer({
      cert: cert.chainPath,
      clientCa: pki.caFile,
      engineKey: {
        uri: "pkcs11:token=nginx-test;object=web;type=private",
        modulePath: module,
        pin,
        env: { SOFTHSM2_CONF: conf },
      },
    });
    t.after(() => server.stop());
    for (const version of ["--tlsv1.3", "--tls-max"]) {
      const args = version === "--tls-max" ? ["--tls-max", "1.2"] : [version];
      const whoami = await curl(`https://localhost:${server.port}/whoami`, { ...mtls, args });
      assert.equal(whoami.exitCode, 0, whoami.output + server.output());
      assert.match(whoami.stdout, /^verify=SUCCESS\nsubject=CN=hsmkit-test-client-rsa,O=hsmkit tests\n/);
      assert.match(
        whoami.stdout,
        version === "--tlsv1.3" ? /protocol=TLSv1\.3/ : /protocol=TLSv1\.2\ncipher=ECDHE-ECDSA-/,
      );
    }
    await stopAndCheck(server);
  });
});
