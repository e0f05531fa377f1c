/**
 * Many requests with the client key in SoftHSM2, in one process (the session pool at work):
 * sequential, then 16 at once, against nginx requiring client certificates; and Node's own
 * http client over hsmkit TLS through HsmkitAgent with keep-alive.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { after, before, test } from "node:test";
import { HsmkitAgent } from "../../src/https/agent.ts";
import { fetchVia, type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { NGINX_INDEX_HTML, type NginxPeer, nginxServer } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

let pki: Pki;
let rsa: TokenIdentity;
let ec: TokenIdentity;
let nginx: NginxPeer;
let ca: string;

before(async () => {
  pki = await makePki();
  rsa = await tokenIdentity(pki, "rsa2048", "hsmkit-load-rsa");
  ec = await tokenIdentity(pki, "ec-p256", "hsmkit-load-ec");
  ca = readFileSync(pki.caFile, "utf8");
  nginx = await nginxServer({ cert: pki.server.chainPath, key: pki.server.keyPath, clientCa: pki.caFile });
});

after(async () => {
  await nginx?.stop();
  await rsa?.handle.close();
  await ec?.handle.close();
});

function get(id: TokenIdentity, maxVersion: "1.2" | "1.3") {
  return fetchVia({
    url: `https://localhost:${nginx.port}/`,
    ca,
    cert: id.cert.chainPem,
    key: id.handle,
    maxVersion,
  });
}

test("40 sequential mutual-TLS requests with token keys (RSA and EC, TLS 1.2 and 1.3)", async () => {
  const before = nginx.requests().length;
  for (let i = 0; i < 40; i++) {
    const res = await get(i % 2 ? rsa : ec, i % 4 < 2 ? "1.2" : "1.3");
    assert.equal(res.status, 200);
    assert.equal(res.body, NGINX_INDEX_HTML);
  }
  const logged = (await nginx.waitForRequests(before + 40)).slice(before);
  assert.equal(logged.length, 40);
  assert.ok(logged.every((r) => r.verify === "SUCCESS"));
});

test("16 concurrent requests, three rounds, one token key: all succeed", async () => {
  const before = nginx.requests().length;
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => get(rsa, i % 2 ? "1.2" : "1.3")));
    assert.ok(results.every((r) => r.status === 200 && r.body === NGINX_INDEX_HTML));
  }
  const logged = (await nginx.waitForRequests(before + 48)).slice(before);
  assert.equal(logged.length, 48);
  assert.ok(logged.every((r) => r.verify === "SUCCESS" && r.subject.includes("hsmkit-load-rsa")));
});

test("Node's https.request over HsmkitAgent: keep-alive reuses one TLS connection", async () => {
  const agent = new HsmkitAgent(
    { ca, cert: rsa.cert.chainPem, key: rsa.handle, servername: "localhost" },
    { maxSockets: 1 },
  );
  const sockets = new Set<unknown>();
  try {
    for (let i = 0; i < 5; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ host: "localhost", port: nginx.port, path: "/", agent }, (res) => {
          sockets.add(res.socket);
          assert.equal(res.statusCode, 200);
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            text += c;
          });
          res.on("end", () => resolve(text));
        });
        req.on("error", reject);
        req.end();
      });
      assert.equal(body, NGINX_INDEX_HTML);
    }
    assert.equal(sockets.size, 1, "all five requests used the same TLS socket");
  } finally {
    agent.destroy();
  }
});
