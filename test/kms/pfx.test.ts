/**
 * The client key PKCS#12 uses the legacy algorithms the instance SDKs read; OpenSSL is the
 * judge of what is inside. Reading works for OpenSSL-made files too, and bad input fails
 * with a clear error.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { PfxError, readPfx, writeLegacyPfx } from "../../src/keys/pkcs12/index.ts";
import { createInstanceCa, issueAccessPointCert } from "../../src/kms/instance_certs.ts";
import { runCommand } from "../helpers/process.ts";

const dir = mkdtempSync(join(tmpdir(), "hsmkit-pfx-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
const keyPem = pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
let certPem: string;

before(async () => {
  const ca = await createInstanceCa("pfx-test");
  certPem = await issueAccessPointCert(
    ca.certPem,
    ca.keyDer,
    "KAAP.test",
    pair.publicKey.export({ type: "spki", format: "der" }),
  );
});

async function openssl(args: string[]): Promise<{ code: number | null; out: string }> {
  const r = await runCommand("openssl", args);
  return { code: r.exitCode, out: r.output };
}

describe("legacy PKCS#12 client keys", () => {
  for (const [cipher, name] of [
    ["3des", "pbeWithSHA1And3-KeyTripleDES-CBC"],
    ["rc2-40", "pbeWithSHA1And40BitRC2-CBC"],
  ] as const) {
    it(`writes a ${cipher} certificate safe, a 3DES key bag and a SHA-1 MAC that openssl reads`, async () => {
      const file = join(dir, `${cipher}.p12`);
      writeFileSync(
        file,
        writeLegacyPfx(keyPem, certPem, "pw-123", { certBagCipher: cipher, friendlyName: "KAAP.test" }),
      );
      const info = await openssl([
        "pkcs12",
        "-legacy",
        "-info",
        "-noout",
        "-in",
        file,
        "-passin",
        "pass:pw-123",
      ]);
      assert.equal(info.code, 0, info.out);
      assert.match(info.out, /MAC: sha1, Iteration 2048/);
      assert.match(info.out, new RegExp(`PKCS7 Encrypted data: ${name}`));
      assert.match(info.out, /Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC/);
      const keyOut = await openssl([
        "pkcs12",
        "-legacy",
        "-in",
        file,
        "-passin",
        "pass:pw-123",
        "-nocerts",
        "-nodes",
      ]);
      assert.equal(keyOut.code, 0, keyOut.out);
      const der = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, "");
      assert.ok(der(keyOut.out).includes(der(keyPem)), "openssl recovers the same private key");
      const certOut = await openssl(["pkcs12", "-legacy", "-in", file, "-passin", "pass:pw-123", "-nokeys"]);
      assert.ok(der(certOut.out).includes(der(certPem)), "and the same certificate");
      assert.notEqual(
        (await openssl(["pkcs12", "-legacy", "-info", "-noout", "-in", file, "-passin", "pass:nope"])).code,
        0,
      );
    });
  }

  it("reads its own files and OpenSSL-made ones", async () => {
    const ours = readPfx(writeLegacyPfx(keyPem, certPem, "pw"), "pw");
    assert.ok(ours.privateKey.equals(pair.privateKey));
    assert.equal(ours.certificatePem?.replace(/\s/g, ""), certPem.replace(/\s/g, ""));
    writeFileSync(join(dir, "key.pem"), keyPem);
    writeFileSync(join(dir, "cert.pem"), certPem);
    const made = join(dir, "openssl.p12");
    const r = await openssl([
      "pkcs12",
      "-export",
      "-legacy",
      "-inkey",
      join(dir, "key.pem"),
      "-in",
      join(dir, "cert.pem"),
      "-out",
      made,
      "-passout",
      "pass:from-openssl",
    ]);
    assert.equal(r.code, 0, r.out);
    assert.ok(readPfx(readFileSync(made), "from-openssl").privateKey.equals(pair.privateKey));
  });

  it("refuses a wrong password, truncated or corrupted files with a PfxError", () => {
    const good = writeLegacyPfx(keyPem, certPem, "pw");
    assert.throws(() => readPfx(good, "wrong"), PfxError);
    for (const cut of [0, 10, 100, good.length - 1])
      assert.throws(() => readPfx(good.subarray(0, cut), "pw"), PfxError);
    for (const at of [20, Math.floor(good.length / 2), good.length - 30]) {
      const bad = Buffer.from(good);
      bad[at] = (bad[at] ?? 0) ^ 0x40;
      assert.throws(() => readPfx(bad, "pw"), PfxError, `byte ${at}`);
    }
    assert.throws(() => readPfx(Buffer.alloc(5000, 0x30), "pw"), PfxError);
  });
});
