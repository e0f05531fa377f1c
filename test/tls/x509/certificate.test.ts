/**
 * Certificate parsing: fields of openssl-made certificates agree with `openssl x509`,
 * PEM bundles are read in order, and garbage, truncated, corrupted and oversized DER or
 * PEM fail with one clean X509ParseError line (never a crash, never a wrong parse).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { Certificate, parsePemBundle } from "../../../src/tls/x509/certificate.ts";
import { X509ParseError } from "../../../src/tls/x509/errors.ts";
import { formatIpAddress } from "../../../src/tls/x509/ip.ts";
import { loadSystemRoots, verifyChain } from "../../../src/tls/x509/verify.ts";
import { CA_EXT, type Issued, run, serverExt, TestPki } from "./pki.ts";

function assertParseError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof X509ParseError, `not an X509ParseError: ${String(err)}`);
    assert.match(err.message, message);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

describe("Certificate", () => {
  let pki: TestPki;
  let root: Issued;
  let ca: Issued;
  let leaf: Issued;
  let v1: Issued;

  before(async () => {
    pki = await TestPki.create();
    root = await pki.issue("parse-root", {
      subject: "/C=NL/O=hsmkit test/CN=Parse Root",
      key: "ec-p384",
      md: "sha384",
      ext: CA_EXT,
    });
    ca = await pki.issue("parse-ca", {
      subject: "/O=hsmkit test/OU=Unit/CN=Parse CA",
      issuer: root,
      ext: [
        "basicConstraints=critical,CA:TRUE,pathlen:2",
        "keyUsage=critical,keyCertSign,cRLSign",
        "extendedKeyUsage=serverAuth,clientAuth",
        "nameConstraints=critical,permitted;DNS:.example.com,permitted;IP:192.168.0.0/255.255.0.0,permitted;IP:2001:db8::/ffff:ffff::,excluded;IP:2001:db8:bad::/ffff:ffff:ffff::",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid:always",
      ],
    });
    leaf = await pki.issue("parse-leaf", {
      subject: "/CN=leaf.example.com",
      key: "ec-p256",
      issuer: ca,
      ext: serverExt(
        "DNS:leaf.example.com,DNS:*.leaf.example.com,IP:192.168.1.2,IP:2001:db8::1,email:a@example.com,URI:https://example.com/",
      ),
    });
    v1 = await pki.issue("parse-v1", { subject: "/CN=Version One", key: "ec-p256", issuer: root });
  });

  after(async () => {
    await pki.cleanup();
  });

  it("decodes the fields openssl x509 reports", async () => {
    const { stdout } = await run("openssl", [
      "x509",
      "-in",
      ca.certPath,
      "-noout",
      "-serial",
      "-fingerprint",
      "-sha256",
      "-startdate",
      "-enddate",
    ]);
    const c = ca.cert;
    assert.equal(c.serialHex.toUpperCase(), /serial=([0-9A-F]+)/.exec(stdout)![1]);
    assert.equal(
      c.fingerprintSha256.toUpperCase(),
      /Fingerprint=([0-9A-F:]+)/.exec(stdout)![1]!.replaceAll(":", ""),
    );
    assert.equal(c.notBefore.getTime(), new Date(/notBefore=(.*)/.exec(stdout)![1]!).getTime());
    assert.equal(c.notAfter.getTime(), new Date(/notAfter=(.*)/.exec(stdout)![1]!).getTime());
    assert.equal(c.version, 3);
    assert.equal(c.subject, "O=hsmkit test, OU=Unit, CN=Parse CA");
    assert.equal(c.issuer, "C=NL, O=hsmkit test, CN=Parse Root");
    assert.ok(c.issuerDer.equals(root.cert.subjectDer));
    assert.equal(c.signatureAlgorithm.name, "ecdsa-with-SHA256");
    assert.deepEqual(c.keyInfo, { kind: "rsa", bits: 2048 });
    assert.deepEqual(c.basicConstraints, { ca: true, pathLen: 2 });
    assert.deepEqual([...(c.keyUsage ?? [])].sort(), ["cRLSign", "keyCertSign"]);
    assert.deepEqual(c.extKeyUsage, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    assert.ok(c.subjectKeyId && root.cert.subjectKeyId && c.authorityKeyId?.equals(root.cert.subjectKeyId));
    const nc = c.nameConstraints!;
    assert.deepEqual(nc.permitted[0], { type: "dns", value: ".example.com" });
    assert.ok(
      nc.permitted[1]!.type === "ip" &&
        nc.permitted[1]!.bytes.equals(Buffer.from([192, 168, 0, 0, 255, 255, 0, 0])),
    );
    assert.ok(nc.excluded[0]!.type === "ip" && nc.excluded[0]!.bytes.length === 32);
    assert.equal(nc.permitted.length, 3);
    const spkiPath = pki.path("parse-ca.spki");
    await run("openssl", ["pkey", "-in", ca.keyPath, "-pubout", "-outform", "DER", "-out", spkiPath]);
    assert.ok(c.spki.equals(await readFile(spkiPath)));
    assert.equal(c.publicKey.asymmetricKeyType, "rsa");
  });

  it("decodes SANs of every kind and EC key details", async () => {
    const c = leaf.cert;
    assert.deepEqual(c.sanDns, ["leaf.example.com", "*.leaf.example.com"]);
    assert.deepEqual(c.sanIps.map(formatIpAddress), ["192.168.1.2", "2001:db8::1"]);
    assert.deepEqual(
      c.subjectAltNames.map((n) => n.type),
      ["dns", "dns", "ip", "ip", "email", "uri"],
    );
    assert.deepEqual(c.keyInfo, { kind: "ec", bits: 256, curve: "P-256" });
    assert.equal(root.cert.keyInfo.curve, "P-384");
    assert.equal(root.cert.signatureAlgorithm.name, "ecdsa-with-SHA384");
    assert.ok(root.cert.isSelfIssued && !leaf.cert.isSelfIssued);
    // The certificate openssl made for a constrained CA verifies end to end.
    const result = verifyChain(leaf.cert, {
      roots: [root.cert],
      intermediates: [ca.cert],
      host: "x.leaf.example.com",
      ip: "192.168.1.2",
    });
    assert.ok(result.ok, result.ok ? "" : result.reason);
  });

  it("reads version 1 certificates (no extensions)", () => {
    assert.equal(v1.cert.version, 1);
    assert.equal(v1.cert.extensions.length, 0);
    assert.equal(v1.cert.basicConstraints, undefined);
    assert.deepEqual(v1.cert.subjectAltNames, []);
  });

  it("round-trips PEM and reads bundles in order, skipping comments and other blocks", async () => {
    assert.ok(Certificate.fromPem(leaf.cert.toPem()).equals(leaf.cert));
    const { stdout: keyPem } = await run("openssl", ["pkey", "-in", leaf.keyPath]);
    const { stdout: legacyKey } = await run("openssl", [
      "ec",
      "-in",
      leaf.keyPath,
      "-aes128",
      "-passout",
      "pass:secret",
    ]);
    assert.match(legacyKey, /Proc-Type: 4,ENCRYPTED/);
    const bundle = `# a comment\n${leaf.pem}\nsome text\n${keyPem}${legacyKey}${ca.pem.replaceAll("\n", "\r\n")}${root.pem}`;
    assert.deepEqual(
      parsePemBundle(bundle).map((c) => c.subject),
      [leaf.cert.subject, ca.cert.subject, root.cert.subject],
    );
    assertParseError(() => Certificate.fromPem(bundle), /expected one certificate in PEM input, found 3/);
  });

  it("parses the Debian system roots once and caches them", () => {
    const roots = loadSystemRoots();
    assert.ok(roots.length > 50, `only ${roots.length} system roots`);
    assert.equal(loadSystemRoots(), roots);
    assert.ok(roots.every((r) => r.isSelfIssued || r.basicConstraints?.ca));
  });

  it("refuses garbage, truncated, padded, BER and oversized DER with one clean line", () => {
    const der = leaf.cert.der;
    assertParseError(() => Certificate.fromDer(Buffer.alloc(0)), /certificate: empty input/);
    assertParseError(
      () => Certificate.fromDer(Buffer.from("hello, world")),
      /certificate: expected tag 0x30, found 0x68/,
    );
    assertParseError(() => Certificate.fromDer(Buffer.from([0x30])), /truncated element header/);
    assertParseError(
      () => Certificate.fromDer(Buffer.concat([der, Buffer.from([0x00])])),
      /certificate: 1 unexpected trailing bytes/,
    );
    assertParseError(
      () => Certificate.fromDer(Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3])),
      /truncated: element runs past the end/,
    );
    assertParseError(
      () =>
        Certificate.fromDer(Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(4), Buffer.from([0, 0])])),
      /invalid length encoding/,
    );
    const huge = Buffer.alloc(70_000);
    huge.set([0x30, 0x83, 0x01, 0x11, 0x6c]);
    assertParseError(() => Certificate.fromDer(huge), /certificate too large \(70000 bytes > 65536\)/);
    for (let cut = 0; cut < der.length; cut++) {
      assert.throws(
        () => Certificate.fromDer(der.subarray(0, cut)),
        X509ParseError,
        `prefix of ${cut} bytes`,
      );
    }
  });

  it("never accepts a certificate with a corrupted byte: it fails to parse or to verify", () => {
    const der = leaf.cert.der;
    let parsed = 0;
    for (let i = 0; i < der.length; i += 3) {
      const corrupt = Buffer.from(der);
      corrupt[i]! ^= 0x41;
      let cert: Certificate;
      try {
        cert = Certificate.fromDer(corrupt);
      } catch (err) {
        assert.ok(err instanceof X509ParseError, `byte ${i}: ${String(err)}`);
        continue;
      }
      parsed++;
      const result = verifyChain(cert, { roots: [root.cert], intermediates: [ca.cert] });
      assert.equal(result.ok, false, `byte ${i} corrupted and still accepted`);
    }
    assert.ok(parsed > 0, "some corruptions parse (and are then refused by verification)");
  });

  it("refuses malformed and oversized PEM with one clean line", () => {
    const body = leaf.pem.split("\n").slice(1, -2).join("\n");
    const cases: Array<[string, RegExp]> = [
      ["", /no CERTIFICATE block in PEM input/],
      ["just some text\n", /no CERTIFICATE block/],
      [`-----BEGIN CERTIFICATE-----\n${body}\n`, /PEM block #1 \(CERTIFICATE\): no END line/],
      [
        `-----BEGIN CERTIFICATE-----\n${body}\n-----END X509 CRL-----\n`,
        /END X509 CRL closes BEGIN CERTIFICATE/,
      ],
      [
        `-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n`,
        /BEGIN inside an open CERTIFICATE block/,
      ],
      [`-----END CERTIFICATE-----\n`, /END without BEGIN/],
      [
        `-----BEGIN CERTIFICATE-----\n${body.replace("M", "*")}\n-----END CERTIFICATE-----\n`,
        /not valid base64/,
      ],
      [
        `-----BEGIN CERTIFICATE-----\n${body.slice(0, -3)}\n-----END CERTIFICATE-----\n`,
        /not valid base64|certificate #1 in PEM input/,
      ],
      [`-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n`, /empty body/],
      [
        `-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n${body}\n-----END CERTIFICATE-----\n`,
        /unexpected header/,
      ],
      [
        `-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n`,
        /certificate #1 in PEM input: certificate: expected tag 0x30/,
      ],
      [
        `${leaf.pem}-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n`,
        /certificate #2 in PEM input/,
      ],
      ["x".repeat(17 * 1024 * 1024), /PEM input too large/],
    ];
    for (const [text, message] of cases) assertParseError(() => parsePemBundle(text), message);
  });
});
