/**
 * The Express-style example (examples/express.ts, a plain Node request handler since
 * Express is not installed): in process with the server key in SoftHSM2 and Node's https
 * client presenting a certificate, and run as a script, with curl.
 */
import assert from "node:assert/strict";
import https from "node:https";
import path from "node:path";
import { after, before, test } from "node:test";
import { app } from "../../examples/express.ts";
import { createHttpsServer, type HttpsServer } from "../../src/https/serve.ts";
import { type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { waitForOutput } from "../helpers/net.ts";
import { curl } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { ManagedProcess } from "../helpers/process.ts";
import { softHsm } from "../helpers/softhsm.ts";

const hsm = softHsm();
let pki: Pki;
let id: TokenIdentity;

before(async () => {
  pki = await makePki();
  id = await tokenIdentity(pki, "rsa2048", "example-server", "server");
});
after(() => id.handle.close());

test("the app behind a token-held key: Node's https client sees its certificate echoed back", async () => {
  const server: HttpsServer = createHttpsServer(
    { cert: id.cert.chainPem, key: id.handle, clientCa: pki.root.certPem, maxVersion: "1.2" },
    app,
  );
  const { port } = await server.listen(0, "127.0.0.1");
  try {
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(
          {
            host: "localhost",
            port,
            path: "/whoami",
            ca: pki.root.certPem,
            cert: pki.client.chainPem,
            key: pki.client.keyPem,
          },
          (res) => {
            let text = "";
            res.on("data", (d: Buffer) => {
              text += d;
            });
            res.on("end", () => resolve(text));
          },
        )
        .on("error", reject);
    });
    const who = JSON.parse(body) as {
      authorized: boolean;
      subject: Record<string, string>;
      protocol: string;
      cipher: string;
    };
    assert.equal(who.authorized, true);
    assert.equal(who.subject.CN, "hsmkit-test-client-rsa");
    assert.equal(who.protocol, "TLSv1.2");
    assert.match(who.cipher, /^TLS_ECDHE_RSA_WITH_/);
  } finally {
    await server.close(1000);
  }
});

test("the example as a script, with curl", async () => {
  const script = path.join(import.meta.dirname, "..", "..", "examples", "express.ts");
  const proc = await ManagedProcess.start(
    process.execPath,
    [
      "--no-warnings",
      "--import",
      "tsx",
      script,
      "--cert",
      id.cert.chainPath,
      "--key",
      id.ref,
      "--client-ca",
      pki.caFile,
      "--listen",
      "127.0.0.1:0",
    ],
    { env: hsm.env, cwd: path.join(import.meta.dirname, "..", "..") },
  );
  try {
    const port = (await waitForOutput(proc, /listening on 127\.0\.0\.1:(\d+)/, 30_000))[1];
    const mtls = { cacert: pki.caFile, cert: pki.client.chainPath, key: pki.client.keyPath };
    const hello = await curl(`https://localhost:${port}/hello?name=token`, mtls);
    assert.equal(hello.stdout, '{"hello":"token"}\n');
    const missing = await curl(`https://localhost:${port}/nothing`, {
      ...mtls,
      args: ["-o", "/dev/null", "-w", "%{http_code}"],
    });
    assert.equal(missing.stdout, "404");
    const anonymous = await curl(`https://localhost:${port}/hello`, { cacert: pki.caFile });
    // TLS 1.3 refuses a missing client certificate after the client's Finished, so curl
    // sees it while receiving (56, "certificate required") rather than in the handshake (35).
    assert.equal(anonymous.exitCode, 56, anonymous.output);
    assert.match(anonymous.output, /certificate required/i);
  } finally {
    await proc.stop();
  }
});
