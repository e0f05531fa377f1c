/**
 * A KMS-held key used where any key reference goes: `hsmkit curl --key kms://...` completes
 * mutual TLS against nginx, and `hsmkit ca init --key kms://...` makes a CA whose
 * certificates `openssl verify` accepts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { adminCreateKey } from "../../src/kms/admin.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { type NginxPeer, nginxServer } from "../helpers/peers-nginx.ts";
import { issueCert, makePki } from "../helpers/pki.ts";
import { type RunResult, runCommand } from "../helpers/process.ts";
import { type ApClient, type KmsFixture, startKms } from "./kms_fixture.ts";

let kms: KmsFixture;
let ap: ApClient;

before(async () => {
  kms = await startKms();
  ap = await kms.client("*");
});
after(() => kms.close());

function kmsRef(keyId: string): string {
  const q = new URLSearchParams({
    "client-key": ap.clientKeyFile,
    "password-file": ap.passwordFile,
    ca: kms.instance.caPath,
  });
  return `kms://${kms.server.endpoint}/${keyId}?${q.toString()}`;
}

function hsmkit(args: string[]): Promise<RunResult> {
  return runCommand(HSMKIT_BIN, args, { timeoutMs: 90_000 });
}

describe("kms:// keys in TLS and the CA", () => {
  for (const spec of ["RSA_2048", "EC_P256"] as const) {
    it(`hsmkit curl --key kms://... (${spec}) completes mutual TLS against nginx`, async (t) => {
      const keyId = (await adminCreateKey(kms.instance, spec, "SIGN/VERIFY")).id;
      const pki = await makePki();
      const cert = await issueCert(pki, {
        name: `kms-client-${spec}`,
        profile: "client",
        commonName: `kms-client-${spec}`,
        publicKeyPem: (await ap.kms.getPublicKey(keyId)).PublicKey,
      });
      const nginx: NginxPeer = await nginxServer({
        cert: pki.server.chainPath,
        key: pki.server.keyPath,
        clientCa: pki.caFile,
      });
      t.after(() => nginx.stop());
      for (const version of ["1.2", "1.3"]) {
        const r = await hsmkit([
          "curl",
          `https://127.0.0.1:${nginx.port}/whoami`,
          "--cacert",
          pki.caFile,
          "--cert",
          cert.chainPath,
          "--key",
          kmsRef(keyId),
          "--tls-min",
          version,
          "--tls-max",
          version,
        ]);
        assert.equal(r.exitCode, 0, r.output);
        assert.match(r.stdout, /verify=SUCCESS/);
        assert.match(r.stdout, new RegExp(`subject=CN=kms-client-${spec}`));
        assert.match(r.stdout, new RegExp(`protocol=TLSv${version}`));
      }
      const signs = (await kms.instance.audit.entries()).filter(
        (e) => e.operation === "Sign" && e.keyId === keyId && e.outcome === "ok",
      );
      assert.ok(signs.length >= 2, "the KMS signed each handshake (audited)");
    });
  }

  it("hsmkit ca init --key kms://... issues certificates openssl verify accepts", async () => {
    const keyId = (await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY")).id;
    const caDir = join(kms.dir, "kms-ca");
    const init = await hsmkit([
      "ca",
      "init",
      "--dir",
      caDir,
      "--cn",
      "KMS Root CA",
      "--key",
      kmsRef(keyId),
      "--days",
      "30",
    ]);
    assert.equal(init.exitCode, 0, init.output);
    const caCrt = join(caDir, "ca.crt");
    const self = await runCommand("openssl", ["verify", "-CAfile", caCrt, caCrt]);
    assert.equal(self.output.trim(), `${caCrt}: OK`);
    const leaf = join(kms.dir, "leaf");
    const issued = await hsmkit([
      "cert",
      "issue",
      "--ca",
      caDir,
      "--profile",
      "server",
      "--cn",
      "kms-issued",
      "--san",
      "DNS:kms-issued.test",
      "--type",
      "ec-p256",
      "--out",
      leaf,
    ]);
    assert.equal(issued.exitCode, 0, issued.output);
    const verdict = await runCommand("openssl", ["verify", "-CAfile", caCrt, `${leaf}.pem`]);
    assert.equal(verdict.output.trim(), `${leaf}.pem: OK`);
    const text = await runCommand("openssl", ["x509", "-in", caCrt, "-noout", "-pubkey"]);
    assert.equal(
      text.stdout.trim(),
      (await ap.kms.getPublicKey(keyId)).PublicKey.trim(),
      "the CA key is the KMS key",
    );
  });
});
