/**
 * The TLS 1.1/1.2 server in process, against Node's native tls client and hsmkit's own
 * client: every suite with RSA and EC keys, mutual TLS (including TLS 1.1's MD5+SHA-1
 * CertificateVerify), forged CertificateVerify, ALPN, session resumption by ticket and
 * by session ID, and refused renegotiation.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { CIPHER_SUITES, type CipherSuite } from "../../src/tls/cipher_suites.ts";
import { type ConnectOptions, connect } from "../../src/tls/client.ts";
import type { TlsSocket } from "../../src/tls/conn.ts";
import {
  createServer,
  serverHandshakeDetails,
  type TlsServer,
  type TlsServerOptions,
} from "../../src/tls/server.ts";
import { makePki, type Pki } from "../helpers/pki.ts";

let pki: Pki;
let rsaKey: PrivateKeyHandle;
let ecKey: PrivateKeyHandle;
let otherKey: PrivateKeyHandle;
const servers: TlsServer[] = [];

before(async () => {
  pki = await makePki();
  [rsaKey, ecKey, otherKey] = await Promise.all([
    openKey(pki.server.keyPath),
    openKey(pki.serverEc.keyPath),
    openKey(pki.otherClient.keyPath),
  ]);
});

after(async () => {
  for (const server of servers) for (const s of server.sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  await Promise.all([rsaKey.close(), ecKey.close(), otherKey.close()]);
});

interface Started {
  server: TlsServer;
  port: number;
  /** Every server-side socket that completed its handshake. */
  accepted: TlsSocket[];
  /** Every handshake failure message. */
  failures: string[];
}

/** An echo server: each line received is answered with "echo:" + it, then the server ends. */
async function start(options: Partial<TlsServerOptions> & { ec?: boolean } = {}): Promise<Started> {
  const { ec, ...rest } = options;
  const server = createServer({
    cert: ec ? pki.serverEc.chainPem : pki.server.chainPem,
    key: ec ? ecKey : rsaKey,
    // This file is about TLS 1.2 and 1.1, whatever the server's default maximum becomes.
    maxVersion: "1.2",
    ...rest,
  });
  servers.push(server);
  const accepted: TlsSocket[] = [];
  const failures: string[] = [];
  server.on("secureConnection", (s: TlsSocket) => {
    accepted.push(s);
    s.on("error", () => {});
    s.on("data", (d: Buffer) => s.end(`echo:${d}`));
  });
  server.on("tlsClientError", (err: Error) => failures.push(err.message));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as { port: number }).port, accepted, failures };
}

/** Sends "ping" over hsmkit's client and resolves with the reply and the socket. */
function hsmkitPing(
  port: number,
  options: Partial<ConnectOptions> = {},
): Promise<{ reply: string; socket: TlsSocket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: pki.root.certPem,
      ...options,
    });
    let reply = "";
    socket.on("secureConnect", () => socket.write("ping"));
    socket.on("data", (d: Buffer) => {
      reply += d.toString();
    });
    socket.on("end", () => resolve({ reply, socket }));
    socket.on("error", reject);
  });
}

/** The same with Node's native client. */
function nodePing(
  port: number,
  options: tls.ConnectionOptions = {},
): Promise<{ reply: string; socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, servername: "localhost", ca: pki.root.certPem, ...options },
      () => socket.write("ping"),
    );
    let reply = "";
    socket.on("data", (d: Buffer) => {
      reply += d.toString();
    });
    socket.on("end", () => resolve({ reply, socket }));
    socket.on("error", reject);
  });
}

const LEGACY = CIPHER_SUITES.filter((s) => s.kx !== "tls13");

describe("every suite, hsmkit client to hsmkit server", () => {
  for (const [keyType, kxs] of [
    ["RSA", ["rsa", "ecdhe_rsa"]],
    ["EC", ["ecdhe_ecdsa"]],
  ] as const) {
    test(`${keyType} key: every TLS 1.2 suite (CBC with and without encrypt-then-MAC), every TLS 1.1 suite`, async () => {
      const suites = LEGACY.filter((s) => (kxs as readonly string[]).includes(s.kx));
      const { port, accepted } = await start({ ec: keyType === "EC", ciphers: suites, minVersion: "1.1" });
      const cases: Array<[CipherSuite, "1.1" | "1.2", boolean]> = [];
      for (const s of suites) {
        cases.push([s, "1.2", true]);
        if (s.mac) cases.push([s, "1.2", false]);
        if (s.minVersion <= 0x0302) cases.push([s, "1.1", true]);
      }
      for (const [suite, version, etm] of cases) {
        const label = `${suite.name} TLS ${version} etm=${etm}`;
        const { reply, socket } = await hsmkitPing(port, {
          ciphers: [suite],
          minVersion: version,
          maxVersion: version,
          encryptThenMac: etm,
        });
        assert.equal(reply, "echo:ping", label);
        assert.equal(socket.getCipher()?.standardName, suite.name, label);
        assert.equal(socket.getProtocol(), `TLSv${version}`, label);
        const server = accepted.at(-1)!;
        assert.equal(server.getCipher()?.standardName, suite.name, label);
        assert.equal(server.getProtocol(), `TLSv${version}`, label);
      }
    });
  }

  test("the server's preference order wins", async () => {
    const { port } = await start({
      ciphers: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    });
    const { socket } = await hsmkitPing(port, {
      ciphers: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
      maxVersion: "1.2",
    });
    assert.equal(socket.getCipher()?.standardName, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
  });
});

describe("Node's native tls client", () => {
  test("mutual TLS: both sides see each other verified", async () => {
    const { port, accepted } = await start({ clientCa: pki.root.certPem });
    const { reply, socket } = await nodePing(port, { cert: pki.client.chainPem, key: pki.client.keyPem });
    assert.equal(reply, "echo:ping");
    assert.equal(socket.authorized, true);
    assert.equal(socket.getProtocol(), "TLSv1.2");
    const server = accepted.at(-1)!;
    assert.equal(server.authorized, true);
    assert.equal(
      (server.getPeerCertificate() as { subject: Record<string, string> }).subject.CN,
      "hsmkit-test-client-rsa",
    );
  });

  test("an EC client certificate on an EC server", async () => {
    const { port, accepted } = await start({ ec: true, clientCa: pki.root.certPem });
    const { reply } = await nodePing(port, { cert: pki.clientEc.chainPem, key: pki.clientEc.keyPem });
    assert.equal(reply, "echo:ping");
    assert.equal(accepted.at(-1)!.authorized, true);
  });

  test("without a client certificate, when none is asked for", async () => {
    const { port, accepted } = await start();
    const { reply, socket } = await nodePing(port);
    assert.equal(reply, "echo:ping");
    assert.equal(socket.authorized, true);
    assert.equal(accepted.at(-1)!.authorized, false);
    assert.deepEqual(accepted.at(-1)!.getPeerCertificateChain(), []);
  });

  test("without a client certificate, when one is required: refused with handshake_failure", async () => {
    const { port, failures } = await start({ clientCa: pki.root.certPem });
    await assert.rejects(nodePing(port), /handshake failure|alert number 40/);
    assert.match(failures.at(-1)!, /client sent no certificate/);
    const { reply } = await nodePing(port, { cert: pki.client.chainPem, key: pki.client.keyPem });
    assert.equal(reply, "echo:ping");
  });

  test("requestCert without rejectUnauthorized: a bad certificate connects unauthorized", async () => {
    const { port, accepted } = await start({ clientCa: pki.root.certPem, rejectUnauthorized: false });
    const { reply } = await nodePing(port, { cert: pki.otherClient.chainPem, key: pki.otherClient.keyPem });
    assert.equal(reply, "echo:ping");
    const server = accepted.at(-1)!;
    assert.equal(server.authorized, false);
    assert.ok(server.authorizationError);
  });

  test("ALPN: the server's protocol is chosen; none in common is no_application_protocol", async () => {
    const { port, accepted } = await start({ ALPNProtocols: ["http/1.1"] });
    const { socket } = await nodePing(port, { ALPNProtocols: ["h2", "http/1.1"] });
    assert.equal(socket.alpnProtocol, "http/1.1");
    assert.equal(accepted.at(-1)!.alpnProtocol, "http/1.1");
    await assert.rejects(
      nodePing(port, { ALPNProtocols: ["h2"] }),
      /no application protocol|alert number 120/,
    );
  });

  test("renegotiation is refused with a no_renegotiation alert", async () => {
    const { port } = await start();
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect(
        { host: "127.0.0.1", port, servername: "localhost", ca: pki.root.certPem, maxVersion: "TLSv1.2" },
        () => resolve(s),
      );
      s.on("error", reject);
    });
    const outcome = await new Promise<string>((resolve) => {
      socket.on("error", (err) => resolve(err.message));
      socket.on("close", () => resolve("closed"));
      socket.renegotiate({}, (err) => resolve(err ? err.message : "renegotiated"));
    });
    socket.destroy();
    assert.match(outcome, /no renegotiation|alert number 100/);
  });
});

describe("client authentication with hsmkit's client", () => {
  test("TLS 1.1 client authentication (MD5+SHA-1 and ECDSA-SHA1 CertificateVerify) verifies", async () => {
    const { port, accepted } = await start({ clientCa: pki.root.certPem, minVersion: "1.1" });
    for (const client of [pki.client, pki.clientEc]) {
      const key = await openKey(client.keyPath);
      try {
        const { reply } = await hsmkitPing(port, {
          cert: client.chainPem,
          key,
          minVersion: "1.1",
          maxVersion: "1.1",
          ciphers: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        });
        assert.equal(reply, "echo:ping");
        assert.equal(accepted.at(-1)!.authorized, true);
        assert.equal(accepted.at(-1)!.getProtocol(), "TLSv1.1");
      } finally {
        await key.close();
      }
    }
  });

  for (const version of ["1.2", "1.1"] as const) {
    test(`a forged CertificateVerify (TLS ${version}) ends in decrypt_error`, async () => {
      const { port, failures } = await start({ clientCa: pki.root.certPem, minVersion: "1.1" });
      // The client's certificate, signed with some other RSA key.
      await assert.rejects(
        hsmkitPing(port, {
          cert: pki.client.chainPem,
          key: otherKey,
          minVersion: version,
          maxVersion: version,
          ciphers: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        }),
        /decrypt_error/,
      );
      assert.match(failures.at(-1)!, /handshake signature is invalid/);
    });
  }
});

describe("session resumption", () => {
  async function resumeWithNode(port: number, extra: tls.ConnectionOptions = {}): Promise<boolean[]> {
    let session: Buffer | undefined;
    const reused: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const { socket } = await new Promise<{ socket: tls.TLSSocket }>((resolve, reject) => {
        const s = tls.connect(
          {
            host: "127.0.0.1",
            port,
            servername: "localhost",
            ca: pki.root.certPem,
            maxVersion: "TLSv1.2",
            session,
            ...extra,
          },
          () => s.write("ping"),
        );
        s.on("session", (sess: Buffer) => {
          session = sess;
        });
        s.on("data", () => {});
        s.on("end", () => resolve({ socket: s }));
        s.on("error", reject);
      });
      reused.push(socket.isSessionReused());
    }
    return reused;
  }

  test("by ticket: the second and third connections resume; the server says so", async () => {
    const { port, accepted } = await start();
    assert.deepEqual(await resumeWithNode(port), [false, true, true]);
    assert.deepEqual(
      accepted.map((s) => serverHandshakeDetails(s)?.resumed),
      [false, true, true],
    );
  });

  test("by session ID when tickets are off", async () => {
    const { port, server } = await start({ sessions: { tickets: false } });
    assert.deepEqual(await resumeWithNode(port), [false, true, true]);
    assert.equal(server.config.sessions?.size, 1);
  });

  test("not at all when resumption is off", async () => {
    const { port } = await start({ sessions: false });
    assert.deepEqual(await resumeWithNode(port), [false, false, false]);
  });

  test("a resumed mutual-TLS session keeps the verified client certificate", async () => {
    const { port, accepted } = await start({ clientCa: pki.root.certPem });
    assert.deepEqual(await resumeWithNode(port, { cert: pki.client.chainPem, key: pki.client.keyPem }), [
      false,
      true,
      true,
    ]);
    for (const s of accepted) {
      assert.equal(s.authorized, true);
      assert.equal(
        (s.getPeerCertificate() as { subject: Record<string, string> }).subject.CN,
        "hsmkit-test-client-rsa",
      );
    }
  });

  test("another server's ticket is not accepted: a full handshake follows", async () => {
    const a = await start();
    const b = await start();
    let session: Buffer | undefined;
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect(
        {
          host: "127.0.0.1",
          port: a.port,
          servername: "localhost",
          ca: pki.root.certPem,
          maxVersion: "TLSv1.2",
        },
        () => s.write("x"),
      );
      s.on("session", (sess: Buffer) => {
        session = sess;
      });
      s.on("data", () => {});
      s.on("end", () => resolve());
      s.on("error", reject);
    });
    const reused = await new Promise<boolean>((resolve, reject) => {
      const s = tls.connect(
        {
          host: "127.0.0.1",
          port: b.port,
          servername: "localhost",
          ca: pki.root.certPem,
          maxVersion: "TLSv1.2",
          session,
        },
        () => {
          resolve(s.isSessionReused());
          s.destroy();
        },
      );
      s.on("error", reject);
    });
    assert.equal(reused, false);
  });
});
