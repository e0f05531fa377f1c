/**
 * Self-tests of the real peers in test/helpers/peers.ts: each one starts, serves curl with mutual
 * TLS, logs the verified client subject, refuses a client without (or with a bad) certificate,
 * and stops without leaving a process behind.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
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
} from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { groupMembers, processAlive } from "../helpers/process.ts";

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
    assert.deepEqual(opensslClientVerifications(server.output()), [
      { subject: "O = hsmkit tests, CN = hsmkit-test-client-rsa", ok: true },
    ]);

    const anonymous = await curl(`https://localhost:${server.port}/`, { cacert: pki.caFile });
    assert.notEqual(anonymous.exitCode, 0);
    assert.match(anonymous.stderr, /certificate required/);
    assert.match(server.output(), /peer did not return a certificate/);

    const stranger = await curl(`https://localhost:${server.port}/`, {
      cacert: pki.caFile,
      cert: pki.otherClient.chainPath,
      key: pki.otherClient.keyPath,
    });
    assert.notEqual(stranger.exitCode, 0);
    assert.deepEqual(opensslClientVerifications(server.output())[1], {
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
    assert.equal(opensslClientVerifications(server.output()).at(-1)?.ok, true);
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

    const log = server.requests();
    assert.equal(log.length, 5);
    assert.equal(log[0]!.verify, "SUCCESS");
    assert.equal(log[0]!.subject, "CN=hsmkit-test-client-rsa,O=hsmkit tests");
    assert.equal(log[0]!.status, 200);
    assert.equal(log[0]!.protocol, "TLSv1.3");
    assert.equal(log[2]!.verify, "NONE");
    assert.match(log[3]!.verify, /^FAILED:unable to (get local issuer|verify the first) certificate/);
    assert.match(log[4]!.verify, /^FAILED:certificate revoked/);
    assert.match(server.output(), /client sent no required SSL certificate/);

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
    assert.deepEqual(gnutlsClientVerifications(server.output()), [
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
    assert.match(server.output(), /Certificate is required/);
    assert.equal(gnutlsClientVerifications(server.output()).length, 1, "only the good client was trusted");
    await stopAndCheck(server);
  });
});
