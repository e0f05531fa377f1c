/**
 * Host name and IP identity checks (RFC 6125 / 9525): the wildcard matrix on the matcher
 * itself, reference-identity parsing, and the checks on a real openssl-made certificate.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  checkHost,
  checkIp,
  matchesDnsName,
  parseReferenceIdentity,
} from "../../../src/tls/x509/hostname.ts";
import { formatIpAddress, parseIpAddress } from "../../../src/tls/x509/ip.ts";
import { type Issued, serverExt, TestPki } from "./pki.ts";

describe("matchesDnsName: the wildcard matrix", () => {
  const cases: Array<[pattern: string, host: string, expected: boolean]> = [
    ["example.com", "example.com", true],
    ["EXAMPLE.com", "example.com", true],
    ["example.com.", "example.com", true],
    ["example.com", "www.example.com", false],
    ["www.example.com", "example.com", false],
    ["*.example.com", "a.example.com", true],
    ["*.EXAMPLE.COM", "a.example.com", true],
    ["*.example.com", "xn--bcher-kva.example.com", true],
    ["*.example.com", "a.b.example.com", false],
    ["*.example.com", "example.com", false],
    ["*.example.com", "aexample.com", false],
    ["*.a.example.com", "x.a.example.com", true],
    ["*.a.example.com", "x.b.example.com", false],
    ["a.*.example.com", "a.b.example.com", false],
    ["*.*.example.com", "a.b.example.com", false],
    ["f*.example.com", "foo.example.com", false],
    ["*o.example.com", "foo.example.com", false],
    ["f*o.example.com", "foo.example.com", false],
    ["*.com", "example.com", false],
    ["*", "localhost", false],
    ["*.", "com", false],
    ["**.example.com", "a.example.com", false],
    ["*.example..com", "a.example..com", false],
    ["", "example.com", false],
    ["xn--bcher-kva.example", "xn--bcher-kva.example", true],
    ["bücher.example", "xn--bcher-kva.example", false],
    ["10.0.0.1", "10.0.0.1", true], // the matcher compares text; checkHost never sends IPs here
  ];
  for (const [pattern, host, expected] of cases) {
    it(`${JSON.stringify(pattern)} ${expected ? "matches" : "does not match"} ${host}`, () => {
      assert.equal(matchesDnsName(pattern, host), expected);
    });
  }
});

describe("parseReferenceIdentity", () => {
  it("normalises DNS names: case, one trailing dot, U-labels to A-labels", () => {
    assert.deepEqual(parseReferenceIdentity("WWW.Example.COM."), { kind: "dns", name: "www.example.com" });
    assert.deepEqual(parseReferenceIdentity("Bücher.example"), {
      kind: "dns",
      name: "xn--bcher-kva.example",
    });
  });

  it("recognises IPv4 and IPv6 literals and normalises them to bytes", () => {
    const v4 = parseReferenceIdentity("192.0.2.7");
    assert.ok(v4.kind === "ip" && v4.bytes.equals(Buffer.from([192, 0, 2, 7])));
    const v6 = parseReferenceIdentity("[2001:DB8::0:1]");
    assert.ok(v6.kind === "ip" && formatIpAddress(v6.bytes) === "2001:db8::1");
    const mapped = parseReferenceIdentity("::ffff:192.0.2.7");
    assert.ok(mapped.kind === "ip" && mapped.bytes.length === 16);
  });

  it("refuses malformed hosts", () => {
    for (const host of [
      "",
      ".",
      "a..b",
      "-a.example",
      "a b.example",
      "*.example.com",
      "a.example.com..",
      "1.2.3.4:443",
      "[::1",
      "fe80::1%eth0",
      `${"x".repeat(64)}.com`,
    ]) {
      assert.equal(parseReferenceIdentity(host).kind, "invalid", host);
    }
  });
});

describe("IP address text", () => {
  it("parses strictly and formats canonically", () => {
    const table: Array<[string, string | undefined]> = [
      ["10.0.0.1", "10.0.0.1"],
      ["255.255.255.255", "255.255.255.255"],
      ["256.0.0.1", undefined],
      ["010.0.0.1", undefined],
      ["10.0.0", undefined],
      ["::", "::"],
      ["::1", "::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:DB8::", "2001:db8::"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["1:2:3:4:5:6:7:8:9", undefined],
      ["1::2::3", undefined],
      ["1:2:3:4:5:6:7::8", undefined],
      ["::ffff:1.2.3.4", "::ffff:102:304"],
      ["12345::", undefined],
    ];
    for (const [text, formatted] of table) {
      const bytes = parseIpAddress(text);
      assert.equal(bytes === undefined ? undefined : formatIpAddress(bytes), formatted, text);
    }
  });
});

describe("checkHost / checkIp on a real certificate", () => {
  let pki: TestPki;
  let leaf: Issued;
  let noSan: Issued;

  before(async () => {
    pki = await TestPki.create();
    const root = await pki.issue("host-root", {
      subject: "/CN=Host Root",
      key: "ec-p256",
      ext: ["basicConstraints=critical,CA:TRUE"],
    });
    leaf = await pki.issue("host-leaf", {
      subject: "/CN=not-a-san.example.com",
      key: "ec-p256",
      issuer: root,
      ext: serverExt(
        "DNS:Service.Example.COM,DNS:*.web.example.com,DNS:xn--bcher-kva.example,DNS:192.0.2.9,IP:192.0.2.10,IP:2001:db8::10",
      ),
    });
    noSan = await pki.issue("host-nosan", {
      subject: "/CN=nosan.example.com",
      key: "ec-p256",
      issuer: root,
      ext: ["basicConstraints=CA:FALSE"],
    });
  });

  after(async () => {
    await pki.cleanup();
  });

  it("matches DNS SANs case-insensitively, with a trailing dot, through one-label wildcards and IDNA", () => {
    for (const host of [
      "service.example.com",
      "SERVICE.example.com.",
      "a.web.example.com",
      "bücher.example",
      "XN--BCHER-KVA.example",
    ]) {
      assert.deepEqual(checkHost(leaf.cert, host), { ok: true }, host);
    }
  });

  it("refuses other names and never uses the common name", () => {
    for (const host of [
      "not-a-san.example.com",
      "web.example.com",
      "a.b.web.example.com",
      "example.com",
      "service.example.co",
    ]) {
      const result = checkHost(leaf.cert, host);
      assert.equal(result.ok, false, host);
      assert.match(
        result.ok ? "" : result.reason,
        /^certificate 'CN=not-a-san.example.com' is not valid for host ".*" \(valid for DNS:Service.Example.COM, DNS:\*.web.example.com, DNS:xn--bcher-kva.example, DNS:192.0.2.9, IP:192.0.2.10, IP:2001:db8::10\)$/,
      );
    }
    const result = checkHost(noSan.cert, "nosan.example.com");
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : result.reason, /has no subjectAltName; the common name is not used/);
  });

  it("matches IP literals only against IP SANs", () => {
    assert.deepEqual(checkHost(leaf.cert, "192.0.2.10"), { ok: true });
    assert.deepEqual(checkIp(leaf.cert, "192.0.2.10"), { ok: true });
    assert.deepEqual(checkHost(leaf.cert, "[2001:db8:0::10]"), { ok: true });
    assert.deepEqual(checkIp(leaf.cert, "2001:DB8:0:0:0:0:0:10"), { ok: true });
    assert.deepEqual(checkIp(leaf.cert, Buffer.from([192, 0, 2, 10])), { ok: true });
    // The dNSName "192.0.2.9" is not an IP identity.
    assert.equal(checkHost(leaf.cert, "192.0.2.9").ok, false);
    assert.equal(checkIp(leaf.cert, "192.0.2.9").ok, false);
    assert.equal(checkIp(leaf.cert, "::ffff:192.0.2.10").ok, false);
    assert.equal(checkIp(leaf.cert, "not an ip").ok, false);
  });
});
