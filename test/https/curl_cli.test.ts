/**
 * `hsmkit curl` failures are clear and carry curl's exit codes: 60 for certificate
 * verification, 35 for TLS failures, 58 for client key problems, 7 when nothing listens.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { hsmkit, type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { freePort } from "../helpers/net.ts";
import { opensslServer, type Peer } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

let pki: Pki;
let id: TokenIdentity;

before(async () => {
  pki = await makePki();
  id = await tokenIdentity(pki, "rsa2048", "hsmkit-cli-client");
  await id.handle.close();
});

/** One line on stderr, prefixed, no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  assert.match(stderr, /^hsmkit: [^\n]+\n$/, `exactly one line: ${JSON.stringify(stderr)}`);
  assert.match(stderr, pattern);
  assert.doesNotMatch(stderr, /\bat .*\.ts:\d+/);
}

describe("server certificate verification", () => {
  const servers: Peer[] = [];
  async function serve(leaf: { certPath: string; keyPath: string }, chain?: string): Promise<number> {
    const p = await opensslServer({ cert: leaf.certPath, key: leaf.keyPath, chain, www: true });
    servers.push(p);
    return p.port;
  }
  after(async () => {
    for (const s of servers) await s.stop();
  });

  test("a server certificate from an unknown CA: exit 60 with the reason", async () => {
    const port = await serve(pki.otherServer);
    const res = await hsmkit(["curl", `https://localhost:${port}/`, "--cacert", pki.caFile]);
    assert.equal(res.exitCode, 60, res.output);
    assertOneLine(res.stderr, /server certificate verification failed: .*(issuer|trust|root)/i);
  });

  test("the same server with -k: exit 0", async () => {
    const port = await serve(pki.otherServer);
    const res = await hsmkit(["curl", `https://localhost:${port}/`, "--cacert", pki.caFile, "-k"]);
    assert.equal(res.exitCode, 0, res.output);
    assert.match(res.stdout, /s_server/);
  });

  test("an expired server certificate: exit 60", async () => {
    const port = await serve(pki.expiredServer, pki.intermediate.certPath);
    const res = await hsmkit(["curl", `https://localhost:${port}/`, "--cacert", pki.caFile]);
    assert.equal(res.exitCode, 60, res.output);
    assertOneLine(res.stderr, /expired/i);
  });

  test("a certificate for another host: exit 60 naming the host", async () => {
    const port = await serve(pki.wrongHostServer, pki.intermediate.certPath);
    const res = await hsmkit(["curl", `https://localhost:${port}/`, "--cacert", pki.caFile]);
    assert.equal(res.exitCode, 60, res.output);
    assertOneLine(res.stderr, /localhost/);
  });

  test("an IP address is checked against IP SANs", async () => {
    const good = await serve(pki.server, pki.intermediate.certPath);
    const ok = await hsmkit(["curl", `https://127.0.0.1:${good}/`, "--cacert", pki.caFile]);
    assert.equal(ok.exitCode, 0, ok.output);
    const bad = await serve(pki.wrongHostServer, pki.intermediate.certPath);
    const res = await hsmkit(["curl", `https://127.0.0.1:${bad}/`, "--cacert", pki.caFile]);
    assert.equal(res.exitCode, 60, res.output);
  });
});

describe("client authentication problems", () => {
  test("server requires a client certificate and none is given (TLS 1.2): exit 35 saying so", async () => {
    const peer = await opensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediate.certPath,
      caFile: pki.caFile,
      verifyClient: true,
      tls: "1.2",
      www: true,
    });
    try {
      const res = await hsmkit(["curl", `https://localhost:${peer.port}/`, "--cacert", pki.caFile]);
      assert.equal(res.exitCode, 35, res.output);
      assertOneLine(res.stderr, /requires a client certificate/);
    } finally {
      await peer.stop();
    }
  });

  test("server requires a client certificate and none is given (TLS 1.3): exit 35 saying so", async () => {
    const peer = await opensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediate.certPath,
      caFile: pki.caFile,
      verifyClient: true,
      tls: "1.3",
      www: true,
    });
    try {
      const res = await hsmkit(["curl", `https://localhost:${peer.port}/`, "--cacert", pki.caFile]);
      assert.equal(res.exitCode, 35, res.output);
      assertOneLine(res.stderr, /requires a client certificate/);
    } finally {
      await peer.stop();
    }
  });

  test("a wrong PIN: one line naming the token, exit 58, and no connection attempt needed", async () => {
    const port = await freePort();
    const ref = id.ref.replace(/pin-value=[^&]*/, "pin-value=000000");
    const res = await hsmkit([
      "curl",
      `https://localhost:${port}/`,
      "--cacert",
      pki.caFile,
      "--cert",
      id.cert.chainPath,
      "--key",
      ref,
    ]);
    assert.equal(res.exitCode, 58, res.output);
    assertOneLine(res.stderr, new RegExp(`PIN.*${id.token.label}|${id.token.label}.*PIN`));
    assert.doesNotMatch(res.stderr, /000000/, "the PIN is never printed");
  });

  test("a key object that is not in the token: one line naming it", async () => {
    const port = await freePort();
    const ref = id.ref.replace(/object=[^;?]*/, "object=no-such-key");
    const res = await hsmkit([
      "curl",
      `https://localhost:${port}/`,
      "--cert",
      id.cert.chainPath,
      "--key",
      ref,
    ]);
    assert.equal(res.exitCode, 58, res.output);
    assertOneLine(res.stderr, /no-such-key/);
  });

  test("--cert without --key is a usage error", async () => {
    const res = await hsmkit(["curl", "https://localhost:1/", "--cert", id.cert.chainPath]);
    assert.equal(res.exitCode, 2, res.output);
    assertOneLine(res.stderr, /--cert needs --key/);
  });
});

test("nothing listening: exit 7", async () => {
  const port = await freePort();
  const res = await hsmkit(["curl", `https://127.0.0.1:${port}/`, "-k"]);
  assert.equal(res.exitCode, 7, res.output);
  assertOneLine(res.stderr, /failed to connect/);
});

test("-X, -d @FILE, -H and -o reach a Node https server with mutual TLS as curl would send them", async () => {
  const { createServer } = await import("node:https");
  const { mkdtempSync, readFileSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const server = createServer(
    {
      cert: readFileSync(pki.server.chainPath),
      key: readFileSync(pki.server.keyPath),
      ca: readFileSync(pki.caFile),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const peer = (req.socket as import("node:tls").TLSSocket).getPeerCertificate();
        res.writeHead(201, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            method: req.method,
            url: req.url,
            header: req.headers["x-demo"],
            type: req.headers["content-type"],
            body: Buffer.concat(chunks).toString(),
            client: peer.subject?.CN,
          }),
        );
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as import("node:net").AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), "hsmkit-curl-"));
  try {
    writeFileSync(join(dir, "body.txt"), "payload from a file");
    const res = await hsmkit([
      "curl",
      `https://localhost:${port}/upload?x=1`,
      "--cacert",
      pki.caFile,
      "--cert",
      id.cert.chainPath,
      "--key",
      id.ref,
      "-X",
      "PUT",
      "-d",
      `@${join(dir, "body.txt")}`,
      "-H",
      "X-Demo: yes",
      "-o",
      join(dir, "out.json"),
    ]);
    assert.equal(res.exitCode, 0, res.output);
    assert.equal(res.stdout, "");
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "out.json"), "utf8")), {
      method: "PUT",
      url: "/upload?x=1",
      header: "yes",
      type: "application/x-www-form-urlencoded",
      body: "payload from a file",
      client: "hsmkit-cli-client",
    });
  } finally {
    server.close();
  }
});
