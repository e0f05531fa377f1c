/**
 * verifyChain refuses identity and purpose mismatches with their code and a one-line
 * reason: wrong host, IP vs DNS confusion, no CN fallback, wrong extendedKeyUsage, names
 * outside name constraints (OpenSSL refusing too where it checks the same thing).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type VerifyOptions, verifyChain } from "../../../src/tls/x509/verify.ts";
import { assertOk, assertRefused, buildBaseChains, rsaOptions } from "./chains.ts";
import { CA_EXT, type Issued, serverExt, type TestPki } from "./pki.ts";

describe("verifyChain refuses name, address and purpose mismatches", () => {
  let pki: TestPki;
  let rsaRoot: Issued;
  let rsaInter: Issued;
  let rsaLeaf: Issued;
  let clientLeaf: Issued;
  let base: Awaited<ReturnType<typeof buildBaseChains>>;
  const rsa = (extra: Partial<VerifyOptions> = {}): VerifyOptions => rsaOptions(base, extra);

  before(async () => {
    base = await buildBaseChains();
    ({ pki, rsaRoot, rsaInter, rsaLeaf, clientLeaf } = base);
  });

  after(async () => {
    await pki.cleanup();
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
});
