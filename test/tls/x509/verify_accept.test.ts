/**
 * verifyChain accepts good chains made by the openssl CLI (RSA, EC, Ed25519, RSA-PSS;
 * server and client purposes; host names and IPs; intermediates in any order; alternatives
 * tried), and `openssl verify -x509_strict` accepts the same chains.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type VerifyOptions, verifyChain } from "../../../src/tls/x509/verify.ts";
import { assertOk, assertRefused, buildBaseChains, DAY, rsaOptions } from "./chains.ts";
import { CA_EXT, type Issued, serverExt, type TestPki } from "./pki.ts";

describe("verifyChain accepts good chains, as openssl verify -x509_strict does", () => {
  let pki: TestPki;
  let rsaRoot: Issued;
  let rsaInter: Issued;
  let rsaLeaf: Issued;
  let ecRoot: Issued;
  let ecInter: Issued;
  let ecLeaf: Issued;
  let clientLeaf: Issued;
  let pssLeaf: Issued;
  let base: Awaited<ReturnType<typeof buildBaseChains>>;
  const rsa = (extra: Partial<VerifyOptions> = {}): VerifyOptions => rsaOptions(base, extra);

  before(async () => {
    base = await buildBaseChains();
    ({ pki, rsaRoot, rsaInter, rsaLeaf, ecRoot, ecInter, ecLeaf, clientLeaf, pssLeaf } = base);
  });

  after(async () => {
    await pki.cleanup();
  });

  it("RSA root -> intermediate -> leaf for a server host name", async () => {
    assertOk(verifyChain(rsaLeaf.cert, rsa({ purpose: "server", host: "www.example.com" })), [
      rsaLeaf,
      rsaInter,
      rsaRoot,
    ]);
    const openssl = await pki.opensslVerify(rsaLeaf, {
      roots: [rsaRoot],
      untrusted: [rsaInter],
      extra: ["-purpose", "sslserver", "-verify_hostname", "www.example.com"],
    });
    assert.ok(openssl.ok, openssl.output);
  });

  it("the same RSA leaf for its wildcard, its IPv4 and IPv6 addresses, in any spelling", async () => {
    assertOk(verifyChain(rsaLeaf.cert, rsa({ host: "Foo.Apps.Example.COM." })), [rsaLeaf, rsaInter, rsaRoot]);
    assertOk(verifyChain(rsaLeaf.cert, rsa({ ip: "10.0.0.5" })), [rsaLeaf, rsaInter, rsaRoot]);
    assertOk(verifyChain(rsaLeaf.cert, rsa({ host: "10.0.0.5" })), [rsaLeaf, rsaInter, rsaRoot]);
    assertOk(verifyChain(rsaLeaf.cert, rsa({ ip: "2001:0DB8:0:0:0:0:0:5" })), [rsaLeaf, rsaInter, rsaRoot]);
    assertOk(verifyChain(rsaLeaf.cert, rsa({ host: "[2001:db8::5]" })), [rsaLeaf, rsaInter, rsaRoot]);
    const openssl = await pki.opensslVerify(rsaLeaf, {
      roots: [rsaRoot],
      untrusted: [rsaInter],
      extra: ["-purpose", "sslserver", "-verify_ip", "2001:db8::5"],
    });
    assert.ok(openssl.ok, openssl.output);
  });

  it("EC P-384 root -> P-256 intermediate -> P-256 leaf (ECDSA SHA-384 and SHA-256 links)", async () => {
    assert.equal(ecInter.cert.signatureAlgorithm.name, "ecdsa-with-SHA384");
    assertOk(
      verifyChain(ecLeaf.cert, {
        roots: [ecRoot.cert],
        intermediates: [ecInter.cert],
        host: "ec.example.com",
      }),
      [ecLeaf, ecInter, ecRoot],
    );
    assertOk(
      verifyChain(ecLeaf.cert, { roots: [ecRoot.cert], intermediates: [ecInter.cert], ip: "127.0.0.1" }),
      [ecLeaf, ecInter, ecRoot],
    );
    const openssl = await pki.opensslVerify(ecLeaf, {
      roots: [ecRoot],
      untrusted: [ecInter],
      extra: ["-purpose", "sslserver", "-verify_hostname", "ec.example.com"],
    });
    assert.ok(openssl.ok, openssl.output);
  });

  it("an Ed25519 root -> Ed25519 leaf", async () => {
    const root = await pki.issue("ed-root", { subject: "/CN=Ed25519 Root", key: "ed25519", ext: CA_EXT });
    const leaf = await pki.issue("ed-leaf", {
      subject: "/CN=ed",
      key: "ed25519",
      issuer: root,
      ext: serverExt("DNS:ed.example.com"),
    });
    assert.equal(leaf.cert.signatureAlgorithm.name, "Ed25519");
    assertOk(verifyChain(leaf.cert, { roots: [root.cert], host: "ed.example.com" }), [leaf, root]);
    const openssl = await pki.opensslVerify(leaf, { roots: [root], extra: ["-purpose", "sslserver"] });
    assert.ok(openssl.ok, openssl.output);
  });

  it("an RSA-PSS signed leaf", async () => {
    assert.equal(pssLeaf.cert.signatureAlgorithm.kind, "rsa-pss");
    assert.equal(pssLeaf.cert.signatureAlgorithm.saltLength, 32);
    assertOk(verifyChain(pssLeaf.cert, rsa({ host: "pss.example.com" })), [pssLeaf, rsaInter, rsaRoot]);
    const openssl = await pki.opensslVerify(pssLeaf, {
      roots: [rsaRoot],
      untrusted: [rsaInter],
      extra: ["-purpose", "sslserver"],
    });
    assert.ok(openssl.ok, openssl.output);
  });

  it("a client certificate for the client purpose", async () => {
    assertOk(verifyChain(clientLeaf.cert, rsa({ purpose: "client" })), [clientLeaf, rsaInter, rsaRoot]);
    const openssl = await pki.opensslVerify(clientLeaf, {
      roots: [rsaRoot],
      untrusted: [rsaInter],
      extra: ["-purpose", "sslclient"],
    });
    assert.ok(openssl.ok, openssl.output);
  });

  it("intermediates in any order, with duplicates and unrelated certificates", () => {
    const intermediates = [
      ecLeaf.cert,
      ecInter.cert,
      rsaRoot.cert,
      clientLeaf.cert,
      rsaInter.cert,
      rsaInter.cert,
    ];
    const roots = [ecRoot.cert, rsaRoot.cert];
    assertOk(verifyChain(rsaLeaf.cert, { roots, intermediates, host: "www.example.com" }), [
      rsaLeaf,
      rsaInter,
      rsaRoot,
    ]);
    assertOk(verifyChain(ecLeaf.cert, { roots, intermediates: intermediates.reverse() }), [
      ecLeaf,
      ecInter,
      ecRoot,
    ]);
  });

  it("tries alternatives: an expired copy of the intermediate is passed over for the valid one", async () => {
    const staleInter = await pki.issue("rsa-inter-old", {
      subject: "/O=hsmkit test/CN=RSA Intermediate",
      keyOf: rsaInter,
      issuer: rsaRoot,
      ext: CA_EXT,
      notBefore: new Date(Date.now() - 400 * DAY),
      notAfter: new Date(Date.now() - 30 * DAY),
    });
    const result = verifyChain(rsaLeaf.cert, {
      roots: [rsaRoot.cert],
      intermediates: [staleInter.cert, rsaInter.cert],
    });
    assertOk(result, [rsaLeaf, rsaInter, rsaRoot]);
    assert.ok(result.ok && result.chain[1]!.equals(rsaInter.cert), "the valid intermediate was chosen");
    assertRefused(
      verifyChain(rsaLeaf.cert, { roots: [rsaRoot.cert], intermediates: [staleInter.cert] }),
      "expired",
      /'O=hsmkit test, CN=RSA Intermediate' expired at/,
    );
  });

  it("does not check the trust anchor's own self-signature (a SHA-1 self-signed root is fine)", async () => {
    const sha1Root = await pki.issue("sha1-root", {
      subject: "/CN=SHA1 Root",
      key: "ec-p256",
      md: "sha1",
      ext: CA_EXT,
    });
    assert.equal(sha1Root.cert.signatureAlgorithm.name, "ecdsa-with-SHA1");
    const leaf = await pki.issue("under-sha1-root", {
      subject: "/CN=s",
      key: "ec-p256",
      issuer: sha1Root,
      ext: serverExt("DNS:s.example.com"),
    });
    assertOk(verifyChain(leaf.cert, { roots: [sha1Root.cert], host: "s.example.com" }), [leaf, sha1Root]);
  });
});

describe("refuses bad chains with a code and a reason naming the certificate", () => {});
