/**
 * hsmkit's TLS 1.3 server with its key in a SoftHSM2 token, against real clients:
 * openssl s_client (mutual TLS, every suite, HelloRetryRequest, KeyUpdate), gnutls-cli and
 * Node's tls; and the refusals a demanding operator expects.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import * as nodeTls from "node:tls";
import { openKey } from "../../src/keys/index.ts";
import { clientConfig, connect } from "../../src/tls/client.ts";
import type { TlsSocket } from "../../src/tls/conn.ts";
import { serverHandshake13 } from "../../src/tls/handshake_server13.ts";
import { createServer, type TlsServer, type TlsServerOptions } from "../../src/tls/server.ts";
import { type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { opensslClient } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { runCommand } from "../helpers/process.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

let pki: Pki;
let rsaServer: TokenIdentity;
let ecServer: TokenIdentity;
const servers: TlsServer[] = [];

before(async () => {
  pki = await makePki();
  rsaServer = await tokenIdentity(pki, "rsa2048", "tls13-server-rsa", "server");
  ecServer = await tokenIdentity(pki, "ec-p256", "tls13-server-ec", "server");
});

after(async () => {
  for (const s of servers) s.close();
  await rsaServer?.handle.close();
  await ecServer?.handle.close();
});

/** A TLS 1.3 echo server: answers each chunk with "echo:" + what it got, and notes client subjects. */
async function serve(id: TokenIdentity, extra: Partial<TlsServerOptions> = {}) {
  const seen: Array<{ authorized: boolean; subject: string | undefined }> = [];
  const errors: string[] = [];
  const server = createServer(
    {
      cert: id.cert.chainPem,
      key: id.handle,
      clientCa: readFileSync(pki.caFile, "utf8"),
      minVersion: "1.3",
      maxVersion: "1.3",
      tls13: serverHandshake13,
      ...extra,
    },
    (sock: TlsSocket) => {
      const cert = sock.getPeerCertificate();
      seen.push({ authorized: sock.authorized, subject: "subject" in cert ? cert.subject.CN : undefined });
      sock.on("data", (d: Buffer) => {
        if (d.includes("quit")) sock.end(`echo:${d}`);
        else sock.write(`echo:${d}`);
      });
      sock.on("error", () => {});
    },
  );
  server.on("tlsClientError", (err: Error) => errors.push(err.message));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, seen, errors };
}

const mtlsArgs = () => [
  "-CAfile",
  pki.caFile,
  "-cert",
  pki.client.certPath,
  "-key",
  pki.client.keyPath,
  "-cert_chain",
  pki.intermediate.certPath,
  "-verify_return_error",
];

describe("openssl s_client", () => {
  for (const suite of ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]) {
    for (const which of ["rsa", "ec"] as const) {
      test(`${suite}, ${which.toUpperCase()} server key in SoftHSM2, mutual TLS`, async () => {
        const { port, seen } = await serve(which === "rsa" ? rsaServer : ecServer);
        const res = await opensslClient({
          port,
          servername: "localhost",
          args: [...mtlsArgs(), "-ign_eof", "-tls1_3", "-ciphersuites", suite],
          input: "ping quit\n",
        });
        assert.match(res.output, /Verify return code: 0 \(ok\)/);
        assert.match(res.output, new RegExp(`New, TLSv1\\.3, Cipher is ${suite}`));
        assert.match(res.output, /echo:ping/);
        assert.deepEqual(seen, [{ authorized: true, subject: "hsmkit-test-client-rsa" }]);
      });
    }
  }

  test("HelloRetryRequest: the client's first share is for a group the server does not take", async () => {
    const { port, seen } = await serve(rsaServer);
    const res = await opensslClient({
      port,
      servername: "localhost",
      args: [...mtlsArgs(), "-ign_eof", "-tls1_3", "-groups", "P-521:P-384", "-msg"],
      input: "ping quit\n",
    });
    assert.match(res.output, /echo:ping/);
    assert.equal(
      (res.output.match(/<<< TLS 1\.3, Handshake \[length [0-9a-f]+\], ServerHello/g) ?? []).length,
      2,
    );
    assert.match(res.output, /Server Temp Key: ECDH, secp384r1/);
    assert.equal(seen.length, 1);
  });

  test("a client KeyUpdate (with update requested) keeps the connection working", async () => {
    const { port } = await serve(ecServer);
    // s_client acts on "K" only at the start of a read from its console, so type line by line.
    const child = spawn("openssl", [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      "-servername",
      "localhost",
      ...mtlsArgs(),
      "-tls1_3",
    ]);
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const until = async (re: RegExp) => {
      const deadline = Date.now() + 10_000;
      while (!re.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      assert.match(out, re);
    };
    try {
      await until(/Verify return code: 0/);
      child.stdin.write("one\n");
      await until(/echo:one/);
      child.stdin.write("K\n");
      await until(/KEYUPDATE/);
      child.stdin.write("two\n");
      await until(/echo:two/);
      child.stdin.write("K\n");
      await new Promise((r) => setTimeout(r, 100));
      child.stdin.write("three quit\n");
      await until(/echo:three quit/);
    } finally {
      child.kill();
    }
  });

  test("no client certificate: refused with certificate_required", async () => {
    const { port, seen, errors } = await serve(rsaServer);
    const res = await opensslClient({
      port,
      servername: "localhost",
      args: ["-CAfile", pki.caFile, "-tls1_3", "-ign_eof"],
      input: "ping quit\n",
    });
    assert.doesNotMatch(res.output, /echo:ping/);
    assert.match(res.output, /certificate required/i);
    assert.deepEqual(seen, []);
    assert.ok(
      errors.some((e) => /no certificate/.test(e)),
      errors.join("; "),
    );
  });

  test("a client certificate from another CA: refused with unknown_ca", async () => {
    const { port, seen } = await serve(rsaServer);
    const res = await opensslClient({
      port,
      servername: "localhost",
      args: [
        "-CAfile",
        pki.caFile,
        "-cert",
        pki.otherClient.certPath,
        "-key",
        pki.otherClient.keyPath,
        "-tls1_3",
        "-ign_eof",
      ],
      input: "ping quit\n",
    });
    assert.doesNotMatch(res.output, /echo:ping/);
    assert.match(res.output, /unknown ca/i);
    assert.deepEqual(seen, []);
  });
});

test("gnutls-cli with a client certificate, TLS 1.3 only", async () => {
  const { port, seen } = await serve(ecServer);
  const res = await runCommand(
    "gnutls-cli",
    [
      "--port",
      String(port),
      "--x509cafile",
      pki.caFile,
      "--x509certfile",
      pki.client.chainPath,
      "--x509keyfile",
      pki.client.keyPath,
      "--priority",
      "NORMAL:-VERS-ALL:+VERS-TLS1.3",
      "localhost",
    ],
    { input: "ping quit\n", timeoutMs: 15_000 },
  );
  assert.match(res.output, /Handshake was completed/);
  assert.match(res.output, /TLS1\.3/);
  assert.match(res.output, /echo:ping/);
  assert.deepEqual(seen, [{ authorized: true, subject: "hsmkit-test-client-rsa" }]);
});

describe("Node's tls client", () => {
  test("with a client certificate", async () => {
    const { port, seen } = await serve(rsaServer);
    const reply = await new Promise<string>((resolve, reject) => {
      const c = nodeTls.connect(
        {
          port,
          host: "127.0.0.1",
          servername: "localhost",
          ca: readFileSync(pki.caFile),
          cert: readFileSync(pki.client.chainPath),
          key: readFileSync(pki.client.keyPath),
        },
        () => c.write("hello"),
      );
      c.on("data", (d) => {
        resolve(d.toString());
        c.end();
      });
      c.on("error", reject);
    });
    assert.equal(reply, "echo:hello");
    assert.equal(seen[0]?.subject, "hsmkit-test-client-rsa");
  });

  test("without a client certificate, when the server only asks for one", async () => {
    const { port, seen } = await serve(rsaServer, { rejectUnauthorized: false });
    const reply = await new Promise<string>((resolve, reject) => {
      const c = nodeTls.connect(
        { port, host: "127.0.0.1", servername: "localhost", ca: readFileSync(pki.caFile) },
        () => c.write("anon"),
      );
      c.on("data", (d) => {
        resolve(d.toString());
        c.end();
      });
      c.on("error", reject);
    });
    assert.equal(reply, "echo:anon");
    assert.deepEqual(seen, [{ authorized: false, subject: undefined }]);
  });
});

test("a forged CertificateVerify (certificate of one client, key of another) fails with decrypt_error", async () => {
  const { port, seen, errors } = await serve(rsaServer);
  const otherKey = await openKey(pki.clientEc.keyPath);
  try {
    const sock = connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: readFileSync(pki.caFile, "utf8"),
      cert: pki.client.chainPem,
      key: otherKey,
    });
    const outcome = await new Promise<string>((resolve) => {
      sock.on("data", () => resolve("data"));
      sock.on("error", (e: Error) => resolve(e.message));
      sock.on("secureConnect", () => sock.write("x"));
    });
    assert.match(outcome, /decrypt_error|illegal_parameter/);
    assert.deepEqual(seen, []);
    assert.ok(
      errors.some((e) => /signature/.test(e)),
      errors.join("; "),
    );
  } finally {
    await otherKey.close();
  }
});

describe("resumption from tickets", () => {
  test("openssl s_client resumes with the ticket it was given (-sess_out, then -sess_in)", async () => {
    const { port, seen } = await serve(rsaServer);
    const { mkdtempSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const sess = join(mkdtempSync(join(tmpdir(), "hsmkit-sess-")), "session.pem");
    const first = await opensslClient({
      port,
      servername: "localhost",
      args: [...mtlsArgs(), "-tls1_3", "-ign_eof", "-sess_out", sess],
      input: "ping quit\n",
    });
    assert.match(first.output, /New, TLSv1\.3/);
    const second = await opensslClient({
      port,
      servername: "localhost",
      args: [...mtlsArgs(), "-tls1_3", "-ign_eof", "-sess_in", sess],
      input: "again quit\n",
    });
    assert.match(second.output, /Reused, TLSv1\.3/);
    assert.match(second.output, /echo:again/);
    // The resumed connection keeps the client identity of the full handshake.
    assert.deepEqual(seen.at(-1), { authorized: true, subject: "hsmkit-test-client-rsa" });
  });

  test("hsmkit's client resumes with hsmkit's server, a token key on both ends", async () => {
    const { ClientSessionCache } = await import("../../src/tls/psk.ts");
    const { serverHandshakeDetails } = await import("../../src/tls/server.ts");
    const client = await tokenIdentity(pki, "ec-p256", "tls13-resume-client");
    const resumed: boolean[] = [];
    const { port, seen } = await serve(rsaServer);
    const server = servers.at(-1)!;
    server.on("secureConnection", (s: TlsSocket) =>
      resumed.push(serverHandshakeDetails(s)?.resumed ?? false),
    );
    const cache = new ClientSessionCache();
    try {
      for (let i = 0; i < 3; i++) {
        const reply = await new Promise<string>((resolve, reject) => {
          const sock = connect({
            host: "127.0.0.1",
            port,
            servername: "localhost",
            ca: readFileSync(pki.caFile, "utf8"),
            cert: client.cert.chainPem,
            key: client.handle,
            sessionCache: cache,
          });
          sock.on("secureConnect", () => sock.write(`n${i} quit`));
          sock.on("data", (d: Buffer) => resolve(d.toString()));
          sock.on("error", reject);
        });
        assert.equal(reply, `echo:n${i} quit`);
      }
      assert.deepEqual(resumed, [false, true, true]);
      assert.ok(seen.every((s) => s.authorized && s.subject === "tls13-resume-client"));
    } finally {
      await client.handle.close();
    }
  });

  test("a ticket with a forged binder is refused (decrypt_error), a stranger's ticket is ignored", async () => {
    const { port, errors } = await serve(rsaServer);
    const { ClientSessionCache } = await import("../../src/tls/psk.ts");
    const cache = new ClientSessionCache();
    const options = () => ({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: readFileSync(pki.caFile, "utf8"),
      cert: pki.client.chainPem,
      key: fileKey,
      sessionCache: cache,
    });
    const once = () =>
      new Promise<string>((resolve) => {
        const sock = connect(options());
        sock.on("secureConnect", () => sock.write("hi quit"));
        sock.on("data", (d: Buffer) => resolve(d.toString()));
        sock.on("error", (e: Error) => resolve(`error: ${e.message}`));
      });
    const fileKey = await openKey(pki.client.keyPath);
    try {
      assert.equal(await once(), "echo:hi quit");
      // Corrupt the PSK the client will bind with: the binder no longer verifies.
      // Tickets are filed under the server and the client identity.
      const key = clientConfig(options()).sessionKey;
      const ticket = cache.take(key)!;
      ticket.psk[0]! ^= 1;
      cache.put(key, ticket);
      assert.match(await once(), /error: .*decrypt_error/);
      assert.ok(
        errors.some((e) => /binder/.test(e)),
        errors.join("; "),
      );
      // A ticket the server never issued: ignored, a full handshake follows.
      cache.put(key, { ...ticket, ticket: Buffer.alloc(120, 7) });
      assert.equal(await once(), "echo:hi quit");
    } finally {
      await fileKey.close();
    }
  });
});
