/**
 * `hsmkit serve --key kms://...`: the server's ServerKeyExchange signed by a key held in a
 * real hsmkit KMS on 127.0.0.1 (RSA-2048 and EC P-256); curl with a client certificate
 * gets 200 and the KMS audit log shows the signatures.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { adminCreateKey } from "../../src/kms/admin.ts";
import { curl } from "../helpers/peers.ts";
import { issueCert, makePki, type Pki } from "../helpers/pki.ts";
import { type ApClient, type KmsFixture, startKms } from "../kms/kms_fixture.ts";
import { startServe } from "./serve_fixture.ts";

let kms: KmsFixture;
let ap: ApClient;
let pki: Pki;

before(async () => {
  pki = await makePki();
  kms = await startKms();
  ap = await kms.client("*");
});
after(() => kms?.close());

function kmsRef(keyId: string): string {
  const q = new URLSearchParams({
    "client-key": ap.clientKeyFile,
    "password-file": ap.passwordFile,
    ca: kms.instance.caPath,
  });
  return `kms://${kms.server.endpoint}/${keyId}?${q.toString()}`;
}

for (const [spec, cipher] of [
  ["RSA_2048", "ECDHE-RSA-AES128-GCM-SHA256"],
  ["EC_P256", "ECDHE-ECDSA-AES128-GCM-SHA256"],
] as const) {
  test(`hsmkit serve with a ${spec} key in the KMS serves curl over ${cipher}`, async () => {
    const keyId = (await adminCreateKey(kms.instance, spec, "SIGN/VERIFY")).id;
    const cert = await issueCert(pki, {
      name: `kms-server-${spec}`,
      profile: "server",
      commonName: "localhost",
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
      publicKeyPem: (await ap.kms.getPublicKey(keyId)).PublicKey,
    });
    const serve = await startServe([
      "--cert",
      cert.chainPath,
      "--key",
      kmsRef(keyId),
      "--client-ca",
      pki.caFile,
      "--root",
      pki.dir,
      "--tls-max",
      "1.2",
    ]);
    try {
      const r = await curl(`https://localhost:${serve.port}/ca.crt`, {
        cacert: pki.caFile,
        cert: pki.client.chainPath,
        key: pki.client.keyPath,
        args: ["--ciphers", cipher, "-v", "-o", "/dev/null", "-w", "%{http_code}"],
      });
      assert.equal(r.stdout, "200", r.output);
      assert.match(r.stderr, new RegExp(`SSL connection using TLSv1\\.2 / ${cipher}`));
    } finally {
      await serve.stop();
    }
    const signs = (await kms.instance.audit.entries()).filter(
      (e) => e.operation === "Sign" && e.keyId === keyId && e.outcome === "ok",
    );
    assert.ok(signs.length >= 1, "the KMS signed the ServerKeyExchange (audited)");
  });
}
