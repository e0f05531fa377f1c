/**
 * `hsmkit serve` with its private key inside a SoftHSM2 token (RSA-2048 and EC P-256):
 * curl with a client certificate gets 200 over TLS 1.2 ECDHE-GCM and, with the RSA token
 * key, over RSA key exchange (AES128-SHA256, the token decrypting the premaster) and
 * TLS 1.1 AES128-SHA; a client without a certificate is refused; RSA key exchange with
 * bad padding fails like a wrong premaster with the token too; 64 concurrent connections
 * each making several requests all succeed while the server's memory stays bounded.
 */
import assert from "node:assert/strict";
import https from "node:https";
import { after, before, describe, test } from "node:test";
import { type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { curl, opensslClient } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";
import { rsaHandshake } from "../tls/server_raw_client.ts";
import { type ServeProcess, startServe } from "./serve_fixture.ts";

const hsm = softHsm();

let pki: Pki;
const identities: Partial<Record<"rsa" | "ec", TokenIdentity>> = {};
const servers: ServeProcess[] = [];
let rootDir: string;

before(async () => {
  pki = await makePki();
  identities.rsa = await tokenIdentity(pki, "rsa2048", "serve-token-rsa", "server");
  identities.ec = await tokenIdentity(pki, "ec-p256", "serve-token-ec", "server");
  rootDir = pki.dir;
});

after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(Object.values(identities).map((i) => i.handle.close()));
});

const SUITES = {
  rsa: "TLS_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA",
  ec: "TLS_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
};

async function serveWith(kind: "rsa" | "ec", clientAuth = true): Promise<ServeProcess> {
  const id = identities[kind]!;
  const serve = await startServe(
    [
      "--cert",
      id.cert.chainPath,
      "--key",
      id.ref,
      ...(clientAuth ? ["--client-ca", pki.caFile] : []),
      "--root",
      rootDir,
      "--tls-min",
      "1.1",
      "--tls-max",
      "1.3",
      "--ciphers",
      SUITES[kind],
    ],
    hsm.env,
  );
  servers.push(serve);
  return serve;
}

const mtls = () => ({ cacert: pki.caFile, cert: pki.client.chainPath, key: pki.client.keyPath });

/** curl -v over the given suite; resolves with the HTTP status and what curl said about TLS. */
async function curlWith(
  port: number,
  opensslCipher: string,
): Promise<{ code: string; tls: string; exit: number | null }> {
  const r = await curl(`https://localhost:${port}/ca.crt`, {
    ...mtls(),
    args: [
      "--tlsv1.2",
      "--tls-max",
      "1.2",
      "--ciphers",
      opensslCipher,
      "-v",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
    ],
  });
  return {
    code: r.stdout,
    tls: /SSL connection using (.*)$/m.exec(r.stderr)?.[1] ?? r.stderr,
    exit: r.exitCode,
  };
}

for (const kind of ["rsa", "ec"] as const) {
  describe(`server key in SoftHSM2 (${kind === "rsa" ? "RSA-2048" : "EC P-256"})`, () => {
    let serve: ServeProcess;
    before(async () => {
      serve = await serveWith(kind);
    });

    test("curl with a client certificate: 200 over TLS 1.3", async () => {
      const r = await curl(`https://localhost:${serve.port}/ca.crt`, {
        ...mtls(),
        args: ["--tlsv1.3", "-v", "-o", "/dev/null", "-w", "%{http_code}"],
      });
      assert.equal(r.stdout, "200", r.stderr);
      assert.match(r.stderr, /SSL connection using TLSv1\.3 \/ TLS_AES_256_GCM_SHA384/);
    });

    test("curl without a client certificate over TLS 1.3: refused (certificate required)", async () => {
      const r = await curl(`https://localhost:${serve.port}/ca.crt`, {
        cacert: pki.caFile,
        args: ["--tlsv1.3"],
      });
      assert.notEqual(r.exitCode, 0);
      assert.match(r.stderr, /certificate required/);
    });

    test("curl with a client certificate: 200 over TLS 1.2 ECDHE-GCM", async () => {
      const cipher = kind === "rsa" ? "ECDHE-RSA-AES128-GCM-SHA256" : "ECDHE-ECDSA-AES128-GCM-SHA256";
      const r = await curlWith(serve.port, cipher);
      assert.equal(r.code, "200", r.tls);
      assert.equal(r.tls, `TLSv1.2 / ${cipher}`);
    });

    if (kind === "rsa") {
      test("curl: 200 over TLS 1.2 RSA key exchange AES128-SHA256 (the token decrypts the premaster)", async () => {
        const r = await curlWith(serve.port, "AES128-SHA256");
        assert.equal(r.code, "200", r.tls);
        assert.equal(r.tls, "TLSv1.2 / AES128-SHA256");
      });

      test("openssl s_client: TLS 1.1 AES128-SHA", async () => {
        const r = await opensslClient({
          port: serve.port,
          servername: "localhost",
          args: [
            "-CAfile",
            pki.caFile,
            "-cert",
            pki.client.chainPath,
            "-cert_chain",
            pki.client.chainPath,
            "-key",
            pki.client.keyPath,
            "-tls1_1",
            "-cipher",
            "AES128-SHA:@SECLEVEL=0",
            "-ign_eof",
          ],
          input: "GET /ca.crt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        });
        assert.match(r.output, /Protocol\s*: TLSv1\.1/);
        assert.match(r.output, /Cipher\s*: AES128-SHA$/m);
        assert.match(r.output, /HTTP\/1\.1 200 OK/);
      });

      test("RSA key exchange with bad padding fails exactly like a wrong premaster", async () => {
        // The raw client does not do client authentication: a server that asks for none.
        const plain = await serveWith("rsa", false);
        const good = await rsaHandshake(plain.port, "good");
        good.conn.destroy();
        assert.equal(
          good.answer[0],
          20,
          "the raw client completes a good handshake (server ChangeCipherSpec)",
        );
        const answers: Buffer[] = [];
        for (const mode of ["wrong-premaster", "bad-padding", "wrong-version"] as const) {
          const attempt = await rsaHandshake(plain.port, mode);
          const { bytes } = await attempt.conn.finish();
          attempt.conn.destroy();
          answers.push(Buffer.from(bytes.subarray(bytes.length - attempt.answer.length)));
        }
        // One fatal bad_record_mac alert record, the same every time.
        assert.deepEqual(answers[0], Buffer.from("15030300020214", "hex"));
        assert.deepEqual(answers[1], answers[0]);
        assert.deepEqual(answers[2], answers[0]);
      });
    }

    test("a client without a certificate is refused (TLS 1.2: in the handshake)", async () => {
      const r = await curl(`https://localhost:${serve.port}/ca.crt`, {
        cacert: pki.caFile,
        args: ["--tls-max", "1.2"],
      });
      assert.equal(r.exitCode, 35, r.output);
      assert.match(r.stderr, /handshake failure/);
    });
  });
}

test("64 concurrent connections x 5 requests with the RSA key in SoftHSM2 all succeed; memory stays bounded", async () => {
  const serve = await serveWith("rsa");
  const round = async (): Promise<number> => {
    const agent = new https.Agent({
      keepAlive: true,
      maxSockets: 64,
      ca: pki.root.certPem,
      cert: pki.client.chainPem,
      key: pki.client.keyPem,
      maxVersion: "TLSv1.2",
    });
    const sockets = new Set<unknown>();
    const get = () =>
      new Promise<number>((resolve, reject) => {
        const req = https.get({ host: "localhost", port: serve.port, path: "/ca.crt", agent }, (res) => {
          sockets.add(res.socket);
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.setTimeout(60_000, () => req.destroy(new Error("request timed out")));
        req.on("error", reject);
      });
    try {
      const statuses = await Promise.all(
        Array.from({ length: 64 }, async () => {
          const out: number[] = [];
          for (let i = 0; i < 5; i++) out.push(await get());
          return out;
        }),
      );
      assert.deepEqual(new Set(statuses.flat()), new Set([200]));
      assert.equal(statuses.flat().length, 320);
      return sockets.size;
    } finally {
      agent.destroy();
    }
  };
  const firstSockets = await round();
  assert.ok(firstSockets >= 32, `${firstSockets} connections were opened`);
  const afterFirst = serve.rssKiB();
  await round();
  await round();
  const afterThird = serve.rssKiB();
  assert.ok(afterThird - afterFirst < 48 * 1024, `RSS grew from ${afterFirst} KiB to ${afterThird} KiB`);
});
