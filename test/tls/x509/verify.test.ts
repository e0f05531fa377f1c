/**
 * Path validation against real certificates made by the openssl CLI: good RSA, EC and
 * RSA-PSS chains are accepted (and OpenSSL agrees), and each kind of bad chain is refused
 * with its code and a one-line reason naming the certificate (OpenSSL refusing too where
 * it checks the same thing).
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { Certificate } from "../../../src/tls/x509/certificate.ts";
import type { VerifyErrorCode } from "../../../src/tls/x509/errors.ts";
import { type VerifyOptions, type VerifyResult, verifyChain } from "../../../src/tls/x509/verify.ts";
import { CA_EXT, type Issued, serverExt, TestPki } from "./pki.ts";

const DAY = 24 * 3600 * 1000;

function assertOk(result: VerifyResult, expectedChain: Issued[]): void {
  assert.ok(result.ok, result.ok ? "" : `refused: ${result.code}: ${result.reason}`);
  assert.deepEqual(
    result.chain.map((c) => c.subject),
    expectedChain.map((c) => c.cert.subject),
  );
}

function assertRefused(result: VerifyResult, code: VerifyErrorCode, reason: RegExp): void {
  assert.equal(result.ok, false, "chain was accepted");
  if (result.ok) return;
  assert.equal(result.code, code, `wrong code; reason was: ${result.reason}`);
  assert.match(result.reason, reason);
  assert.doesNotMatch(result.reason, /\n/, "reason must be one line");
}

describe("verifyChain", () => {
  let pki: TestPki;
  let rsaRoot: Issued;
  let rsaInter: Issued;
  let rsaLeaf: Issued;
  let ecRoot: Issued;
  let ecInter: Issued;
  let ecLeaf: Issued;
  let clientLeaf: Issued;
  let pssLeaf: Issued;

  const rsa = (extra: Partial<VerifyOptions> = {}): VerifyOptions => ({
    roots: [rsaRoot.cert],
    intermediates: [rsaInter.cert],
    ...extra,
  });

  before(async () => {
    pki = await TestPki.create();
    // The RSA CAs start long ago so that verification at a past time can be shown to work.
    const longAgo = new Date(Date.now() - 400 * DAY);
    rsaRoot = await pki.issue("rsa-root", {
      subject: "/O=hsmkit test/CN=RSA Root",
      ext: CA_EXT,
      notBefore: longAgo,
      notAfter: new Date(Date.now() + 3650 * DAY),
    });
    rsaInter = await pki.issue("rsa-inter", {
      subject: "/O=hsmkit test/CN=RSA Intermediate",
      issuer: rsaRoot,
      ext: [...CA_EXT.slice(1), "basicConstraints=critical,CA:TRUE,pathlen:0"],
      notBefore: longAgo,
    });
    rsaLeaf = await pki.issue("rsa-leaf", {
      subject: "/CN=www.example.com",
      issuer: rsaInter,
      ext: serverExt("DNS:www.example.com,DNS:*.apps.example.com,IP:10.0.0.5,IP:2001:db8::5"),
    });
    ecRoot = await pki.issue("ec-root", {
      subject: "/O=hsmkit test/CN=EC Root",
      key: "ec-p384",
      md: "sha384",
      ext: CA_EXT,
    });
    ecInter = await pki.issue("ec-inter", {
      subject: "/O=hsmkit test/CN=EC Intermediate",
      key: "ec-p256",
      issuer: ecRoot,
      md: "sha384",
      ext: CA_EXT,
    });
    ecLeaf = await pki.issue("ec-leaf", {
      subject: "/CN=ec.example.com",
      key: "ec-p256",
      issuer: ecInter,
      ext: serverExt("DNS:ec.example.com,IP:127.0.0.1"),
    });
    clientLeaf = await pki.issue("client-leaf", {
      subject: "/CN=alice",
      key: "ec-p256",
      issuer: rsaInter,
      ext: [
        ...serverExt("DNS:alice.example.com", "clientAuth").filter((l) => !l.startsWith("keyUsage")),
        "keyUsage=critical,digitalSignature",
      ],
    });
    pssLeaf = await pki.issue("pss-leaf", {
      subject: "/CN=pss.example.com",
      issuer: rsaInter,
      ext: serverExt("DNS:pss.example.com"),
      sigopt: ["rsa_padding_mode:pss", "rsa_pss_saltlen:32"],
    });
  });

  after(async () => {
    await pki.cleanup();
  });

  describe("accepts good chains, as openssl verify -x509_strict does", () => {
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
      assertOk(verifyChain(rsaLeaf.cert, rsa({ host: "Foo.Apps.Example.COM." })), [
        rsaLeaf,
        rsaInter,
        rsaRoot,
      ]);
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

  describe("refuses bad chains with a code and a reason naming the certificate", () => {
    it("expired leaf", async () => {
      const leaf = await pki.issue("expired", {
        subject: "/CN=expired.example.com",
        key: "ec-p256",
        issuer: rsaInter,
        ext: serverExt("DNS:expired.example.com"),
        notBefore: new Date(Date.now() - 100 * DAY),
        notAfter: new Date(Date.now() - 10 * DAY),
      });
      assertRefused(
        verifyChain(leaf.cert, rsa({ host: "expired.example.com" })),
        "expired",
        /certificate 'CN=expired.example.com' expired at \d{4}-/,
      );
      assert.equal((await pki.opensslVerify(leaf, { roots: [rsaRoot], untrusted: [rsaInter] })).ok, false);
      // The same certificate verifies at a time inside its validity.
      assertOk(verifyChain(leaf.cert, rsa({ at: new Date(Date.now() - 50 * DAY) })), [
        leaf,
        rsaInter,
        rsaRoot,
      ]);
    });

    it("not-yet-valid leaf", async () => {
      const leaf = await pki.issue("future", {
        subject: "/CN=future.example.com",
        key: "ec-p256",
        issuer: rsaInter,
        ext: serverExt("DNS:future.example.com"),
        notBefore: new Date(Date.now() + 20 * DAY),
        notAfter: new Date(Date.now() + 40 * DAY),
      });
      assertRefused(
        verifyChain(leaf.cert, rsa()),
        "not-yet-valid",
        /certificate 'CN=future.example.com' is not valid before \d{4}-/,
      );
      assert.equal((await pki.opensslVerify(leaf, { roots: [rsaRoot], untrusted: [rsaInter] })).ok, false);
    });

    it("wrong host, and a wildcard asked to cover two labels", async () => {
      assertRefused(
        verifyChain(rsaLeaf.cert, rsa({ host: "mail.example.com" })),
        "hostname",
        /'CN=www.example.com' is not valid for host "mail.example.com" \(valid for DNS:www.example.com, DNS:\*.apps.example.com/,
      );
      assertRefused(
        verifyChain(rsaLeaf.cert, rsa({ host: "a.b.apps.example.com" })),
        "hostname",
        /not valid for host "a.b.apps.example.com"/,
      );
      assertRefused(
        verifyChain(rsaLeaf.cert, rsa({ host: "apps.example.com" })),
        "hostname",
        /not valid for host/,
      );
      const openssl = await pki.opensslVerify(rsaLeaf, {
        roots: [rsaRoot],
        untrusted: [rsaInter],
        extra: ["-verify_hostname", "mail.example.com"],
      });
      assert.equal(openssl.ok, false);
    });

    it("IP vs DNS confusion: a dNSName spelling an address never matches it, an IP SAN never matches a name", async () => {
      const dnsIp = await pki.issue("dns-ip", {
        subject: "/CN=10.1.1.1",
        key: "ec-p256",
        issuer: rsaInter,
        ext: serverExt("DNS:10.1.1.1"),
      });
      assertRefused(
        verifyChain(dnsIp.cert, rsa({ host: "10.1.1.1" })),
        "hostname",
        /not valid for IP address 10\.1\.1\.1 \(valid for DNS:10\.1\.1\.1\)/,
      );
      assertRefused(
        verifyChain(dnsIp.cert, rsa({ ip: "10.1.1.1" })),
        "hostname",
        /not valid for IP address 10\.1\.1\.1/,
      );
      const openssl = await pki.opensslVerify(dnsIp, {
        roots: [rsaRoot],
        untrusted: [rsaInter],
        extra: ["-verify_ip", "10.1.1.1"],
      });
      assert.equal(openssl.ok, false);
      const ipOnly = await pki.issue("ip-only", {
        subject: "/CN=localhost",
        key: "ec-p256",
        issuer: rsaInter,
        ext: serverExt("IP:127.0.0.1"),
      });
      assertRefused(
        verifyChain(ipOnly.cert, rsa({ host: "localhost" })),
        "hostname",
        /not valid for host "localhost" \(valid for IP:127\.0\.0\.1\)/,
      );
      assertRefused(
        verifyChain(rsaLeaf.cert, rsa({ ip: "10.0.0.6" })),
        "hostname",
        /not valid for IP address 10\.0\.0\.6/,
      );
      // An IPv4-mapped IPv6 address is not the IPv4 address.
      assertRefused(verifyChain(rsaLeaf.cert, rsa({ ip: "::ffff:10.0.0.5" })), "hostname", /::ffff:a00:5/);
    });

    it("the common name is never used as a host name", async () => {
      const cnOnly = await pki.issue("cn-only", {
        subject: "/CN=cn.example.com",
        key: "ec-p256",
        issuer: rsaInter,
        ext: ["basicConstraints=critical,CA:FALSE", "extendedKeyUsage=serverAuth"],
      });
      assertRefused(
        verifyChain(cnOnly.cert, rsa({ host: "cn.example.com" })),
        "hostname",
        /has no subjectAltName; the common name is not used/,
      );
    });

    it("client certificate used for a server, and anyExtendedKeyUsage on a leaf", async () => {
      assertRefused(
        verifyChain(clientLeaf.cert, rsa({ purpose: "server" })),
        "bad-purpose",
        /'CN=alice' is not valid for TLS server authentication: its extendedKeyUsage lacks serverAuth/,
      );
      assert.equal(
        (
          await pki.opensslVerify(clientLeaf, {
            roots: [rsaRoot],
            untrusted: [rsaInter],
            extra: ["-purpose", "sslserver"],
          })
        ).ok,
        false,
      );
      assertRefused(verifyChain(rsaLeaf.cert, rsa({ purpose: "client" })), "bad-purpose", /lacks clientAuth/);
      const anyEku = await pki.issue("any-eku", {
        subject: "/CN=any",
        key: "ec-p256",
        issuer: rsaInter,
        ext: serverExt("DNS:any.example.com", "anyExtendedKeyUsage"),
      });
      assertRefused(
        verifyChain(anyEku.cert, rsa()),
        "bad-purpose",
        /anyExtendedKeyUsage is not accepted on a leaf/,
      );
    });

    it("an intermediate whose extendedKeyUsage excludes the purpose", async () => {
      const clientCa = await pki.issue("client-only-ca", {
        subject: "/CN=Client Only CA",
        key: "ec-p256",
        issuer: rsaRoot,
        ext: [...CA_EXT, "extendedKeyUsage=clientAuth"],
      });
      const leaf = await pki.issue("under-client-ca", {
        subject: "/CN=srv",
        key: "ec-p256",
        issuer: clientCa,
        ext: serverExt("DNS:srv.example.com"),
      });
      assertRefused(
        verifyChain(leaf.cert, { roots: [rsaRoot.cert], intermediates: [clientCa.cert] }),
        "bad-purpose",
        /CA certificate 'CN=Client Only CA' restricts extendedKeyUsage and does not allow TLS server authentication/,
      );
    });

    it("path length exceeded", async () => {
      const subCa = await pki.issue("sub-ca", {
        subject: "/CN=Sub CA",
        key: "ec-p256",
        issuer: rsaInter,
        ext: CA_EXT,
      });
      const leaf = await pki.issue("under-sub-ca", {
        subject: "/CN=deep",
        key: "ec-p256",
        issuer: subCa,
        ext: serverExt("DNS:deep.example.com"),
      });
      assertRefused(
        verifyChain(leaf.cert, { roots: [rsaRoot.cert], intermediates: [rsaInter.cert, subCa.cert] }),
        "path-length",
        /CA certificate 'O=hsmkit test, CN=RSA Intermediate' allows 0 intermediate CA certificate\(s\) below it \(pathLenConstraint\), but the chain has 1/,
      );
      assert.equal(
        (await pki.opensslVerify(leaf, { roots: [rsaRoot], untrusted: [rsaInter, subCa] })).ok,
        false,
      );
    });

    it("names outside an intermediate's name constraints (DNS, IP, directoryName; permitted and excluded)", async () => {
      const ncCa = await pki.issue("nc-ca", {
        subject: "/CN=Constrained CA",
        key: "ec-p256",
        issuer: rsaRoot,
        ext: [
          ...CA_EXT,
          "nameConstraints=critical,permitted;DNS:example.com,permitted;IP:10.0.0.0/255.0.0.0,excluded;DNS:bad.example.com,permitted;dirName:nc_dir",
          "[nc_dir]",
          "O=Good",
        ],
      });
      const opts = { roots: [rsaRoot.cert], intermediates: [ncCa.cert] };
      const issueUnder = (name: string, subject: string, sans: string) =>
        pki.issue(name, { subject, key: "ec-p256", issuer: ncCa, ext: serverExt(sans) });

      const good = await issueUnder(
        "nc-good",
        "/O=Good/CN=ok",
        "DNS:ok.example.com,DNS:example.com,IP:10.9.9.9",
      );
      assertOk(verifyChain(good.cert, { ...opts, host: "ok.example.com" }), [good, ncCa, rsaRoot]);
      assert.ok((await pki.opensslVerify(good, { roots: [rsaRoot], untrusted: [ncCa] })).ok);

      const cases: Array<[string, string, string, RegExp]> = [
        [
          "nc-bad-dns",
          "/O=Good/CN=a",
          "DNS:evil.example.org",
          /DNS:evil\.example\.org is outside the permitted subtrees \(DNS:example\.com\)/,
        ],
        [
          "nc-suffix-trick",
          "/O=Good/CN=b",
          "DNS:notexample.com",
          /DNS:notexample\.com is outside the permitted subtrees/,
        ],
        [
          "nc-bad-ip",
          "/O=Good/CN=c",
          "DNS:ok.example.com,IP:192.168.0.1",
          /IP:192\.168\.0\.1 is outside the permitted subtrees \(IP:10\.0\.0\.0\/8\)/,
        ],
        [
          "nc-excluded",
          "/O=Good/CN=d",
          "DNS:x.bad.example.com",
          /DNS:x\.bad\.example\.com is in the excluded subtree DNS:bad\.example\.com/,
        ],
        [
          "nc-bad-dn",
          "/O=Evil/CN=e",
          "DNS:e.example.com",
          /DirName:O=Evil, CN=e is outside the permitted subtrees \(DirName:O=Good\)/,
        ],
      ];
      for (const [name, subject, sans, reason] of cases) {
        const leaf = await issueUnder(name, subject, sans);
        const result = verifyChain(leaf.cert, opts);
        assertRefused(result, "name-constraints", reason);
        assertRefused(result, "name-constraints", /violates the name constraints of 'CN=Constrained CA'/);
        const openssl = await pki.opensslVerify(leaf, { roots: [rsaRoot], untrusted: [ncCa] });
        assert.equal(openssl.ok, false, `openssl accepted ${name}`);
      }
      // A wildcard that could expand into the excluded subtree is refused too (stricter than OpenSSL).
      const wildcard = await issueUnder("nc-wildcard", "/O=Good/CN=w", "DNS:*.example.com");
      assertRefused(
        verifyChain(wildcard.cert, opts),
        "name-constraints",
        /DNS:\*\.example\.com is in the excluded subtree DNS:bad\.example\.com/,
      );
    });

    it("version 1 intermediate, and a version 1 trust anchor", async () => {
      const v1Ca = await pki.issue("v1-ca", { subject: "/CN=V1 CA", key: "ec-p256", issuer: rsaRoot });
      assert.equal(v1Ca.cert.version, 1);
      const leaf = await pki.issue("under-v1", {
        subject: "/CN=v1leaf",
        key: "ec-p256",
        issuer: v1Ca,
        ext: [
          "basicConstraints=critical,CA:FALSE",
          "extendedKeyUsage=serverAuth",
          "subjectAltName=DNS:v1.example.com",
        ],
      });
      assertRefused(
        verifyChain(leaf.cert, { roots: [rsaRoot.cert], intermediates: [v1Ca.cert] }),
        "v1-ca",
        /certificate 'CN=V1 CA' is a version 1 certificate and cannot act as a CA/,
      );
      assert.equal((await pki.opensslVerify(leaf, { roots: [rsaRoot], untrusted: [v1Ca] })).ok, false);
      const v1Root = await pki.issue("v1-root", { subject: "/CN=V1 Root", key: "ec-p256" });
      const leaf2 = await pki.issue("under-v1-root", {
        subject: "/CN=v1rootleaf",
        key: "ec-p256",
        issuer: v1Root,
        ext: ["basicConstraints=critical,CA:FALSE", "subjectAltName=DNS:v1r.example.com"],
      });
      assertRefused(
        verifyChain(leaf2.cert, { roots: [v1Root.cert] }),
        "v1-ca",
        /'CN=V1 Root' is a version 1 certificate/,
      );
    });

    it("an issuer that is not a CA, or whose keyUsage lacks keyCertSign", async () => {
      const notCa = await pki.issue("not-ca", {
        subject: "/CN=Not A CA",
        key: "ec-p256",
        issuer: rsaRoot,
        ext: ["basicConstraints=critical,CA:FALSE", "subjectKeyIdentifier=hash"],
      });
      const leaf = await pki.issue("under-not-ca", {
        subject: "/CN=n",
        key: "ec-p256",
        issuer: notCa,
        ext: ["subjectAltName=DNS:n.example.com"],
      });
      assertRefused(
        verifyChain(leaf.cert, { roots: [rsaRoot.cert], intermediates: [notCa.cert] }),
        "not-ca",
        /'CN=Not A CA' issued 'CN=n' but is not a CA/,
      );
      assert.equal((await pki.opensslVerify(leaf, { roots: [rsaRoot], untrusted: [notCa] })).ok, false);
      const noSign = await pki.issue("no-certsign", {
        subject: "/CN=No CertSign CA",
        key: "ec-p256",
        issuer: rsaRoot,
        ext: [
          "basicConstraints=critical,CA:TRUE",
          "keyUsage=critical,digitalSignature",
          "subjectKeyIdentifier=hash",
        ],
      });
      const leaf2 = await pki.issue("under-no-certsign", {
        subject: "/CN=k",
        key: "ec-p256",
        issuer: noSign,
        ext: ["subjectAltName=DNS:k.example.com"],
      });
      assertRefused(
        verifyChain(leaf2.cert, { roots: [rsaRoot.cert], intermediates: [noSign.cert] }),
        "key-usage",
        /'CN=No CertSign CA' has a keyUsage without keyCertSign/,
      );
      assert.equal((await pki.opensslVerify(leaf2, { roots: [rsaRoot], untrusted: [noSign] })).ok, false);
    });

    it("SHA-1 signed leaf", async () => {
      const leaf = await pki.issue("sha1-leaf", {
        subject: "/CN=sha1",
        key: "ec-p256",
        issuer: rsaInter,
        md: "sha1",
        ext: serverExt("DNS:sha1.example.com"),
      });
      assert.equal(leaf.cert.signatureAlgorithm.name, "sha1WithRSAEncryption");
      assertRefused(
        verifyChain(leaf.cert, rsa()),
        "weak-signature",
        /certificate 'CN=sha1': signed with sha1WithRSAEncryption: SHA1 signatures are not accepted/,
      );
      const openssl = await pki.opensslVerify(leaf, {
        roots: [rsaRoot],
        untrusted: [rsaInter],
        extra: ["-auth_level", "2"],
      });
      assert.equal(openssl.ok, false, openssl.output);
    });

    it("weak keys: RSA-1024, P-192 and DSA leaves", async () => {
      const rsa1024 = await pki.issue("rsa1024", {
        subject: "/CN=rsa1024",
        key: "rsa1024",
        issuer: rsaInter,
        ext: serverExt("DNS:r.example.com"),
      });
      assertRefused(
        verifyChain(rsa1024.cert, rsa()),
        "weak-key",
        /certificate 'CN=rsa1024' has a weak key: RSA-1024 is below the 2048-bit minimum/,
      );
      const openssl = await pki.opensslVerify(rsa1024, {
        roots: [rsaRoot],
        untrusted: [rsaInter],
        extra: ["-auth_level", "2"],
      });
      assert.equal(openssl.ok, false, openssl.output);
      const p192 = await pki.issue("p192", {
        subject: "/CN=p192",
        key: "ec-p192",
        issuer: rsaInter,
        ext: ["subjectAltName=DNS:p.example.com"],
      });
      assertRefused(
        verifyChain(p192.cert, rsa()),
        "weak-key",
        /'CN=p192' has a weak key: EC curve P-192 is not accepted/,
      );
      const dsa = await pki.issue("dsa", {
        subject: "/CN=dsa",
        key: "dsa",
        issuer: rsaInter,
        ext: ["subjectAltName=DNS:d.example.com"],
      });
      assertRefused(
        verifyChain(dsa.cert, rsa()),
        "weak-key",
        /'CN=dsa' has a weak key: DSA keys are not accepted/,
      );
    });

    it("unknown root", async () => {
      assertRefused(
        verifyChain(rsaLeaf.cert, { roots: [ecRoot.cert], intermediates: [rsaInter.cert] }),
        "untrusted-root",
        /certificate 'O=hsmkit test, CN=RSA Intermediate' was issued by 'O=hsmkit test, CN=RSA Root', which is not a trusted root/,
      );
      assertRefused(
        verifyChain(rsaLeaf.cert, { roots: [rsaRoot.cert] }),
        "untrusted-root",
        /'CN=www.example.com' was issued by 'O=hsmkit test, CN=RSA Intermediate', which is not a trusted root and was not among the given intermediates/,
      );
      const selfSigned = await pki.issue("self-signed", {
        subject: "/CN=self",
        key: "ec-p256",
        ext: ["basicConstraints=critical,CA:FALSE", "subjectAltName=DNS:self.example.com"],
      });
      assertRefused(
        verifyChain(selfSigned.cert, rsa()),
        "untrusted-root",
        /'CN=self' is self-signed and not a trusted root/,
      );
      // Trusted directly, the self-signed certificate is its own path.
      assertOk(verifyChain(selfSigned.cert, { roots: [selfSigned.cert], host: "self.example.com" }), [
        selfSigned,
      ]);
      assert.equal((await pki.opensslVerify(rsaLeaf, { roots: [ecRoot], untrusted: [rsaInter] })).ok, false);
    });

    it("bad signature: a tampered name, a flipped signature byte, an impostor issuer", async () => {
      const der = Buffer.from(rsaLeaf.cert.der);
      const at = der.indexOf("www.example.com");
      assert.ok(at > 0);
      der.write("wwx", at, "latin1");
      const tampered = Certificate.fromDer(der);
      assertRefused(
        verifyChain(tampered, rsa({ host: "wwx.example.com" })),
        "bad-signature",
        /certificate 'CN=wwx.example.com': sha256WithRSAEncryption signature does not verify with the key of 'O=hsmkit test, CN=RSA Intermediate'/,
      );
      const tamperedPath = pki.path("tampered.pem");
      await writeFile(tamperedPath, tampered.toPem());
      const openssl = await pki.opensslVerify(
        { ...rsaLeaf, certPath: tamperedPath },
        { roots: [rsaRoot], untrusted: [rsaInter] },
      );
      assert.equal(openssl.ok, false);

      const flipped = Buffer.from(ecLeaf.cert.der);
      flipped[flipped.length - 5]! ^= 0x01;
      assertRefused(
        verifyChain(Certificate.fromDer(flipped), { roots: [ecRoot.cert], intermediates: [ecInter.cert] }),
        "bad-signature",
        /'CN=ec.example.com': ecdsa-with-SHA256 signature does not verify/,
      );

      // Same subject name and key identifier as the real intermediate, different key.
      const impostor = await pki.issue("impostor", {
        subject: "/O=hsmkit test/CN=RSA Intermediate",
        issuer: rsaRoot,
        ext: CA_EXT.filter((l) => !l.startsWith("subjectKey")).concat(
          `subjectKeyIdentifier=${rsaInter.cert.subjectKeyId!.toString("hex").replace(/(..)(?!$)/g, "$1:")}`,
        ),
      });
      assertRefused(
        verifyChain(rsaLeaf.cert, { roots: [rsaRoot.cert], intermediates: [impostor.cert] }),
        "bad-signature",
        /'CN=www.example.com': .* does not verify with the key of 'O=hsmkit test, CN=RSA Intermediate'/,
      );
    });

    it("a loop of cross-signed CAs ends cleanly, and depth is bounded", async () => {
      const a = await pki.issue("loop-a", { subject: "/CN=Loop A", key: "ec-p256", ext: CA_EXT });
      const b = await pki.issue("loop-b", { subject: "/CN=Loop B", key: "ec-p256", ext: CA_EXT });
      const aByB = await pki.issue("loop-a-by-b", {
        subject: "/CN=Loop A",
        keyOf: a,
        issuer: b,
        ext: CA_EXT,
      });
      const bByA = await pki.issue("loop-b-by-a", {
        subject: "/CN=Loop B",
        keyOf: b,
        issuer: a,
        ext: CA_EXT,
      });
      const leaf = await pki.issue("loop-leaf", {
        subject: "/CN=looped",
        key: "ec-p256",
        issuer: a,
        ext: serverExt("DNS:loop.example.com"),
      });
      const started = Date.now();
      assertRefused(
        verifyChain(leaf.cert, { roots: [rsaRoot.cert], intermediates: [aByB.cert, bByA.cert] }),
        "untrusted-root",
        /certificate chain loops back to 'CN=Loop A' without reaching a trusted root/,
      );
      assert.ok(Date.now() - started < 5000);

      // root -> i1 -> i2 -> i3 -> leaf: three intermediates.
      let parent = rsaRoot;
      const chain: Issued[] = [];
      for (const n of [1, 2, 3]) {
        parent = await pki.issue(`depth-${n}`, {
          subject: `/CN=Depth ${n}`,
          key: "ec-p256",
          issuer: parent,
          ext: CA_EXT,
        });
        chain.push(parent);
      }
      const deep = await pki.issue("depth-leaf", {
        subject: "/CN=deep leaf",
        key: "ec-p256",
        issuer: parent,
        ext: serverExt("DNS:deep.example.com"),
      });
      const options = { roots: [rsaRoot.cert], intermediates: chain.map((c) => c.cert) };
      assertOk(verifyChain(deep.cert, { ...options, maxDepth: 3 }), [deep, ...chain.reverse(), rsaRoot]);
      assertRefused(
        verifyChain(deep.cert, { ...options, maxDepth: 2 }),
        "depth",
        /chain from 'CN=deep leaf' needs more than 2 intermediate certificates/,
      );
      assertRefused(
        verifyChain(deep.cert, { ...options, maxDepth: 99 }),
        "bad-input",
        /maxDepth must be an integer from 0 to 32/,
      );
      const openssl = await pki.opensslVerify(deep, {
        roots: [rsaRoot],
        untrusted: chain,
        extra: ["-verify_depth", "2"],
      });
      assert.equal(openssl.ok, false);
    });

    it("unknown critical extension", async () => {
      const leaf = await pki.issue("critical-ext", {
        subject: "/CN=crit",
        key: "ec-p256",
        issuer: rsaInter,
        ext: [
          ...serverExt("DNS:crit.example.com"),
          "1.3.6.1.4.1.55555.1=critical,ASN1:UTF8String:must understand",
        ],
      });
      assertRefused(
        verifyChain(leaf.cert, rsa()),
        "unsupported-critical-extension",
        /'CN=crit' has unsupported critical extension 1\.3\.6\.1\.4\.1\.55555\.1/,
      );
      assert.equal((await pki.opensslVerify(leaf, { roots: [rsaRoot], untrusted: [rsaInter] })).ok, false);
    });
  });
});
