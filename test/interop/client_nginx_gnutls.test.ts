/**
 * `hsmkit curl` (the CLI, as users run it) against nginx configured as in seed 000
 * (`ssl_client_certificate ca.crt; ssl_verify_client on;`, server.pem with its chain) and
 * against `gnutls-serv --require-client-cert`, with the client key in a SoftHSM2 token.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { hsmkit, type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import {
  gnutlsClientVerifications,
  gnutlsServer,
  NGINX_INDEX_HTML,
  nginxServer,
  waitForVerifications,
} from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

let pki: Pki;
let rsa: TokenIdentity;
let ec: TokenIdentity;

before(async () => {
  pki = await makePki();
  rsa = await tokenIdentity(pki, "rsa2048", "hsmkit-nginx-client-rsa");
  ec = await tokenIdentity(pki, "ec-p256", "hsmkit-nginx-client-ec");
  // The CLI runs in its own process: free this process's sessions on the tokens first.
  await rsa.handle.close();
  await ec.handle.close();
});

describe("nginx with ssl_verify_client on (seed 000)", () => {
  const cases: Array<[string, string[], "1.1" | "1.2" | "1.3"]> = [
    ["TLS_RSA_WITH_AES_128_CBC_SHA256", ["--tls-max", "1.2"], "1.2"],
    ["TLS_RSA_WITH_AES_256_CBC_SHA256", ["--tls-max", "1.2"], "1.2"],
    ["TLS_RSA_WITH_AES_128_CBC_SHA", ["--tls-min", "1.1", "--tls-max", "1.1"], "1.1"],
    ["TLS_RSA_WITH_AES_256_CBC_SHA", ["--tls-min", "1.1", "--tls-max", "1.1"], "1.1"],
    ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ["--tls-max", "1.2"], "1.2"],
    ["TLS_AES_256_GCM_SHA384", [], "1.3"],
  ];
  let nginx: Awaited<ReturnType<typeof nginxServer>>;
  before(async () => {
    nginx = await nginxServer({
      cert: pki.server.chainPath,
      key: pki.server.keyPath,
      clientCa: pki.caFile,
      protocols: ["1.1", "1.2", "1.3"],
      // The seed's own cipher line.
      ciphers: "ECDHE-RSA-AES128-GCM-SHA256:ECDHE:ECDH:AES:HIGH:!NULL:!aNULL:!MD5:!ADH:!RC4:!DH:!DHE",
    });
  });
  after(() => nginx?.stop());

  for (const [suite, flags, version] of cases) {
    test(`${suite}: hsmkit curl with the key in SoftHSM2 gets the page; nginx verified the client`, async () => {
      const seen = nginx.requests().length;
      const res = await hsmkit([
        "curl",
        `https://localhost:${nginx.port}/`,
        "--cacert",
        pki.caFile,
        "--cert",
        rsa.cert.chainPath,
        "--key",
        rsa.ref,
        "--ciphers",
        suite,
        ...flags,
        "-v",
      ]);
      assert.equal(res.exitCode, 0, res.output);
      assert.equal(res.stdout, NGINX_INDEX_HTML);
      assert.match(res.stderr, new RegExp(`TLSv${version.replace(".", "\\.")} / ${suite}`));
      const last = (await nginx.waitForRequests(seen + 1)).at(-1)!;
      assert.equal(last.verify, "SUCCESS");
      assert.match(last.subject, /CN=hsmkit-nginx-client-rsa/);
      assert.equal(last.protocol, `TLSv${version}`);
    });
  }

  test("an EC P-256 token key authenticates on TLS 1.2", async () => {
    const seen = nginx.requests().length;
    const res = await hsmkit([
      "curl",
      `https://127.0.0.1:${nginx.port}/`,
      "--cacert",
      pki.caFile,
      "--cert",
      ec.cert.chainPath,
      "--key",
      ec.ref,
      "--tls-max",
      "1.2",
    ]);
    assert.equal(res.exitCode, 0, res.output);
    const last = (await nginx.waitForRequests(seen + 1)).at(-1)!;
    assert.equal(last.verify, "SUCCESS");
    assert.match(last.subject, /CN=hsmkit-nginx-client-ec/);
  });

  test("without a client certificate nginx answers 400 and hsmkit curl exits 22", async () => {
    const res = await hsmkit(["curl", `https://localhost:${nginx.port}/`, "--cacert", pki.caFile]);
    assert.equal(res.exitCode, 22, res.output);
    assert.match(res.stderr, /^hsmkit: The requested URL returned error: 400\n$/);
  });
});

describe("gnutls-serv --require-client-cert", () => {
  // The seed's four RSA key-exchange suites need +RSA (and TLS 1.1 itself) switched on in GnuTLS.
  const seed: Array<[string, string, string[]]> = [
    ["TLS_RSA_WITH_AES_128_CBC_SHA256", "NORMAL:+RSA:+SHA256:-VERS-ALL:+VERS-TLS1.2", ["--tls-max", "1.2"]],
    ["TLS_RSA_WITH_AES_256_CBC_SHA256", "NORMAL:+RSA:+SHA256:-VERS-ALL:+VERS-TLS1.2", ["--tls-max", "1.2"]],
    // RSA key exchange with AES-GCM (issue 9): the server offers RSA key exchange only.
    ["TLS_RSA_WITH_AES_128_GCM_SHA256", "NORMAL:-KX-ALL:+RSA:-VERS-ALL:+VERS-TLS1.2", ["--tls-max", "1.2"]],
    ["TLS_RSA_WITH_AES_256_GCM_SHA384", "NORMAL:-KX-ALL:+RSA:-VERS-ALL:+VERS-TLS1.2", ["--tls-max", "1.2"]],
    [
      "TLS_RSA_WITH_AES_128_CBC_SHA",
      "NORMAL:+RSA:-VERS-ALL:+VERS-TLS1.1",
      ["--tls-min", "1.1", "--tls-max", "1.1"],
    ],
    [
      "TLS_RSA_WITH_AES_256_CBC_SHA",
      "NORMAL:+RSA:-VERS-ALL:+VERS-TLS1.1",
      ["--tls-min", "1.1", "--tls-max", "1.1"],
    ],
  ];
  const cases = [
    ...seed.map(([suite, priority, flags]) => ({
      name: suite,
      priority,
      flags: ["--ciphers", suite, ...flags],
    })),
    { name: "TLS 1.2 default suites", priority: "NORMAL:-VERS-ALL:+VERS-TLS1.2", flags: [] as string[] },
    { name: "TLS 1.3", priority: "NORMAL:-VERS-ALL:+VERS-TLS1.3", flags: [] as string[] },
  ];
  for (const { name, priority, flags } of cases) {
    test(`${name}: client key in SoftHSM2`, async () => {
      const peer = await gnutlsServer({
        cert: pki.server.chainPath,
        key: pki.server.keyPath,
        caFile: pki.caFile,
        requireClientCert: true,
        priority,
      });
      try {
        const res = await hsmkit([
          "curl",
          `https://localhost:${peer.port}/`,
          "--cacert",
          pki.caFile,
          "--cert",
          rsa.cert.chainPath,
          "--key",
          rsa.ref,
          ...flags,
        ]);
        assert.equal(res.exitCode, 0, res.output);
        assert.match(res.stdout, /GnuTLS/);
        const seen = await waitForVerifications(peer, gnutlsClientVerifications, 1);
        assert.ok(
          seen.some((v) => v.ok && v.subject.includes("hsmkit-nginx-client-rsa")),
          peer.output(),
        );
      } finally {
        await peer.stop();
      }
    });
  }
});
