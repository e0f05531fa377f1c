/**
 * CRLs made by `openssl ca -revoke / -gencrl`: parsed in PEM and DER, used by path
 * validation (revoked leaf and intermediate refused with their revocation date, OpenSSL
 * agreeing), and unusable CRLs (forged with another key, stale, missing) refused.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { Crl } from "../../../src/tls/x509/crl.ts";
import { X509ParseError } from "../../../src/tls/x509/errors.ts";
import { type VerifyResult, verifyChain } from "../../../src/tls/x509/verify.ts";
import { CA_EXT, type Issued, run, serverExt, TestPki } from "./pki.ts";

function refusal(result: VerifyResult): { code: string; reason: string } {
  assert.equal(result.ok, false, "chain was accepted");
  return result.ok ? { code: "", reason: "" } : { code: result.code, reason: result.reason };
}

describe("CRL checking", () => {
  let pki: TestPki;
  let root: Issued;
  let inter: Issued;
  let revokedLeaf: Issued;
  let goodLeaf: Issued;
  let interCrl: { path: string; crl: Crl };
  let rootCrl: { path: string; crl: Crl };

  before(async () => {
    pki = await TestPki.create();
    root = await pki.issue("crl-root", { subject: "/CN=CRL Root", key: "ec-p384", ext: CA_EXT });
    inter = await pki.issue("crl-inter", {
      subject: "/CN=CRL Intermediate",
      key: "ec-p256",
      issuer: root,
      ext: CA_EXT,
    });
    revokedLeaf = await pki.issue("revoked", {
      subject: "/CN=revoked.example.com",
      key: "ec-p256",
      issuer: inter,
      ext: serverExt("DNS:revoked.example.com"),
    });
    goodLeaf = await pki.issue("good", {
      subject: "/CN=good.example.com",
      key: "ec-p256",
      issuer: inter,
      ext: serverExt("DNS:good.example.com"),
    });
    await pki.revoke(revokedLeaf, inter, "keyCompromise");
    interCrl = await pki.crl("inter", inter);
    rootCrl = await pki.crl("root", root);
  });

  after(async () => {
    await pki.cleanup();
  });

  it("parses the CRL openssl wrote, in PEM and in DER", async () => {
    const { crl } = interCrl;
    assert.equal(crl.issuer, "CN=CRL Intermediate");
    assert.ok(crl.issuerDer.equals(inter.cert.subjectDer));
    assert.equal(crl.revoked.size, 1);
    const entry = crl.revoked.get(revokedLeaf.cert.serialHex);
    assert.ok(entry, "the revoked serial is listed");
    assert.equal(entry.reason, "keyCompromise");
    assert.ok(Math.abs(entry.revocationDate.getTime() - Date.now()) < 10 * 60 * 1000);
    assert.ok(crl.nextUpdate && crl.nextUpdate.getTime() - crl.thisUpdate.getTime() === 24 * 3600 * 1000);
    const derPath = pki.path("inter.crl.der");
    await run("openssl", ["crl", "-in", interCrl.path, "-outform", "DER", "-out", derPath]);
    const der = await readFile(derPath);
    const fromDer = Crl.parse(der);
    assert.ok(fromDer.der.equals(crl.der));
    // OpenSSL's own view of the same serial.
    const { stdout } = await run("openssl", ["crl", "-in", interCrl.path, "-noout", "-text"]);
    assert.match(stdout.toLowerCase(), new RegExp(`serial number: ${revokedLeaf.cert.serialHex}`));
  });

  it("refuses a revoked leaf with its revocation date and reason, as openssl -crl_check does", async () => {
    const { code, reason } = refusal(
      verifyChain(revokedLeaf.cert, {
        roots: [root.cert],
        intermediates: [inter.cert],
        crls: [interCrl.crl, rootCrl.crl],
      }),
    );
    assert.equal(code, "revoked");
    assert.match(
      reason,
      /^certificate 'CN=revoked.example.com' \(serial [0-9a-f]+\) was revoked on \d{4}-\d\d-\d\dT[\d:.]+Z \(reason: keyCompromise\)$/,
    );
    const openssl = await pki.opensslVerify(revokedLeaf, {
      roots: [root],
      untrusted: [inter],
      extra: ["-crl_check", "-CRLfile", interCrl.path],
    });
    assert.equal(openssl.ok, false);
    assert.match(openssl.output, /revoked/);
    // Without CRLs nothing is known about revocation.
    assert.ok(verifyChain(revokedLeaf.cert, { roots: [root.cert], intermediates: [inter.cert] }).ok);
  });

  it("accepts a leaf the CRL does not list", async () => {
    const result = verifyChain(goodLeaf.cert, {
      roots: [root.cert],
      intermediates: [inter.cert],
      crls: [interCrl.crl, rootCrl.crl],
    });
    assert.ok(result.ok, result.ok ? "" : result.reason);
    const openssl = await pki.opensslVerify(goodLeaf, {
      roots: [root],
      untrusted: [inter],
      extra: ["-crl_check", "-CRLfile", interCrl.path],
    });
    assert.ok(openssl.ok, openssl.output);
  });

  it("refuses a CRL signed by the wrong key under the issuer's name", async () => {
    const impostor = await pki.issue("crl-impostor", {
      subject: "/CN=CRL Intermediate",
      key: "ec-p256",
      ext: CA_EXT.slice(0, 3),
    });
    const forged = await pki.crl("forged", inter, { signer: impostor });
    assert.ok(forged.crl.issuerDer.equals(inter.cert.subjectDer));
    assert.equal(forged.crl.revoked.size, 0, "the forgery claims nothing is revoked");
    const { code, reason } = refusal(
      verifyChain(revokedLeaf.cert, { roots: [root.cert], intermediates: [inter.cert], crls: [forged.crl] }),
    );
    assert.equal(code, "crl");
    assert.match(
      reason,
      /CRL from 'CN=CRL Intermediate' is not validly signed by that issuer \(ecdsa-with-SHA256 signature does not verify\)/,
    );
    // Next to the genuine CRL, the forged one still fails the check rather than being skipped.
    assert.equal(
      refusal(
        verifyChain(goodLeaf.cert, {
          roots: [root.cert],
          intermediates: [inter.cert],
          crls: [interCrl.crl, forged.crl],
        }),
      ).code,
      "crl",
    );
  });

  it("refuses a stale CRL and a CRL that is not yet valid", () => {
    const options = { roots: [root.cert], intermediates: [inter.cert], crls: [interCrl.crl] };
    const stale = refusal(
      verifyChain(goodLeaf.cert, { ...options, at: new Date(Date.now() + 2 * 24 * 3600 * 1000) }),
    );
    assert.equal(stale.code, "crl");
    assert.match(stale.reason, /CRL from 'CN=CRL Intermediate' is stale: its nextUpdate was \d{4}-/);
    const early = refusal(verifyChain(goodLeaf.cert, { ...options, at: new Date(Date.now() - 3600 * 1000) }));
    assert.equal(early.code, "crl");
    assert.match(early.reason, /is not valid before/);
  });

  it("requires a CRL from the leaf's issuer once CRLs are given", () => {
    const { code, reason } = refusal(
      verifyChain(goodLeaf.cert, { roots: [root.cert], intermediates: [inter.cert], crls: [rootCrl.crl] }),
    );
    assert.equal(code, "crl");
    assert.match(
      reason,
      /no CRL from issuer 'CN=CRL Intermediate' was given for certificate 'CN=good.example.com'/,
    );
  });

  it("refuses a chain whose intermediate the root has revoked", async () => {
    const inter2 = await pki.issue("crl-inter2", {
      subject: "/CN=Revoked Intermediate",
      key: "ec-p256",
      issuer: root,
      ext: CA_EXT,
    });
    const leaf = await pki.issue("under-revoked-inter", {
      subject: "/CN=l2",
      key: "ec-p256",
      issuer: inter2,
      ext: serverExt("DNS:l2.example.com"),
    });
    await pki.revoke(inter2, root, "cACompromise");
    const rootCrl2 = await pki.crl("root2", root);
    const inter2Crl = await pki.crl("inter2", inter2);
    const { code, reason } = refusal(
      verifyChain(leaf.cert, {
        roots: [root.cert],
        intermediates: [inter2.cert],
        crls: [rootCrl2.crl, inter2Crl.crl],
      }),
    );
    assert.equal(code, "revoked");
    assert.match(
      reason,
      /certificate 'CN=Revoked Intermediate' \(serial [0-9a-f]+\) was revoked on .* \(reason: cACompromise\)/,
    );
    const openssl = await pki.opensslVerify(leaf, {
      roots: [root],
      untrusted: [inter2],
      extra: ["-crl_check_all", "-CRLfile", rootCrl2.path, "-CRLfile", inter2Crl.path],
    });
    assert.equal(openssl.ok, false);
  });

  it("gives clean errors for garbage, truncated and oversized CRLs", () => {
    const der = interCrl.crl.der;
    const bad: Array<[Uint8Array | string, RegExp]> = [
      [Buffer.alloc(0), /CRL: empty input/],
      [Buffer.from("not a crl at all"), /CRL.*expected tag 0x30/],
      [der.subarray(0, der.length - 1), /truncated/],
      [Buffer.concat([der, Buffer.from([0])]), /unexpected trailing bytes/],
      ["-----BEGIN X509 CRL-----\n@@@@\n-----END X509 CRL-----\n", /not valid base64/],
      [
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        /expected one X509 CRL block in PEM input, found 0/,
      ],
      [Buffer.concat([Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]), Buffer.alloc(64)]), /truncated/],
    ];
    for (const [input, message] of bad) {
      assert.throws(
        () => Crl.parse(input),
        (err: unknown) =>
          err instanceof X509ParseError && message.test(err.message) && !err.message.includes("\n"),
      );
    }
    for (let cut = 1; cut < der.length; cut += 7) {
      assert.throws(() => Crl.fromDer(der.subarray(0, cut)), X509ParseError);
    }
  });
});
