/**
 * Both keys in hardware: nginx's server key in a SoftHSM2 token (through
 * libengine-pkcs11-openssl) and hsmkit's client key in another token object. hsmkit's
 * client speaks TLS 1.3 and every ECDHE suite nginx can serve with a token key.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fetchVia, type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { NGINX_INDEX_HTML, type NginxPeer, nginxServer } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

const hsm = softHsm();

let pki: Pki;
let client: TokenIdentity;
let web: TokenIdentity;
let nginx: NginxPeer;

before(async () => {
  pki = await makePki();
  client = await tokenIdentity(pki, "rsa2048", "engine-client");
  web = await tokenIdentity(pki, "ec-p256", "engine-web", "server");
  await web.handle.close();
  nginx = await nginxServer({
    cert: web.cert.chainPath,
    clientCa: pki.caFile,
    protocols: ["1.2", "1.3"],
    ciphers:
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384",
    engineKey: {
      uri: `pkcs11:token=${web.token.label};object=engine-web;type=private`,
      modulePath: web.token.module,
      pin: web.token.pin,
      env: { SOFTHSM2_CONF: hsm.conf },
    },
  });
});

after(async () => {
  await nginx?.stop();
  await client?.handle.close();
});

const suites: Array<[string, "1.2" | "1.3"]> = [
  ["TLS_AES_128_GCM_SHA256", "1.3"],
  ["TLS_AES_256_GCM_SHA384", "1.3"],
  ["TLS_CHACHA20_POLY1305_SHA256", "1.3"],
  ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "1.2"],
  ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "1.2"],
  ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "1.2"],
  ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "1.2"],
  ["TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "1.2"],
];

for (const [suite, version] of suites) {
  test(`${suite}: token client key against a token server key`, async () => {
    const seen = nginx.requests().length;
    const res = await fetchVia({
      url: `https://localhost:${nginx.port}/`,
      ca: readFileSync(pki.caFile, "utf8"),
      cert: client.cert.chainPem,
      key: client.handle,
      ciphers: suite,
    });
    assert.equal(res.status, 200);
    assert.equal(res.body, NGINX_INDEX_HTML);
    assert.equal(res.protocol, `TLSv${version}`);
    assert.equal(res.cipher, suite);
    const logged = (await nginx.waitForRequests(seen + 1)).at(-1)!;
    assert.equal(logged.verify, "SUCCESS");
    assert.match(logged.subject, /CN=engine-client/);
  });
}
