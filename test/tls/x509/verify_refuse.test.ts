/**
 * verifyChain refuses bad chains with their code and a one-line reason naming the
 * certificate: validity, path length, v1 and non-CA issuers, weak signatures and keys,
 * unknown roots, bad signatures, loops and depth, unknown critical extensions (OpenSSL
 * refusing the same chains where it checks the same thing).
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { Certificate } from "../../../src/tls/x509/certificate.ts";
import { type VerifyOptions, verifyChain } from "../../../src/tls/x509/verify.ts";
import { assertOk, assertRefused, buildBaseChains, DAY, rsaOptions } from "./chains.ts";
import { CA_EXT, type Issued, serverExt, type TestPki } from "./pki.ts";

describe("verifyChain refuses bad chains with a code and a reason naming the certificate", () => {
  let pki: TestPki;
  let rsaRoot: Issued;
  let rsaInter: Issued;
  let rsaLeaf: Issued;
  let ecRoot: Issued;
  let ecInter: Issued;
  let ecLeaf: Issued;
  let base: Awaited<ReturnType<typeof buildBaseChains>>;
  const rsa = (extra: Partial<VerifyOptions> = {}): VerifyOptions => rsaOptions(base, extra);

  before(async () => {
    base = await buildBaseChains();
    ({ pki, rsaRoot, rsaInter, rsaLeaf, ecRoot, ecInter, ecLeaf } = base);
  });

  after(async () => {
    await pki.cleanup();
  });

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
    assertOk(verifyChain(leaf.cert, rsa({ at: new Date(Date.now() - 50 * DAY) })), [leaf, rsaInter, rsaRoot]);
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

  it("SHA-1 and MD5 signed leaves", async () => {
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
    const md5 = await pki.issue("md5-leaf", {
      subject: "/CN=md5",
      key: "ec-p256",
      issuer: rsaInter,
      md: "md5",
      ext: serverExt("DNS:md5.example.com"),
    });
    assertRefused(
      verifyChain(md5.cert, rsa()),
      "weak-signature",
      /certificate 'CN=md5': signed with md5WithRSAEncryption: MD5 signatures are not accepted/,
    );
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
      ext: [
        "basicConstraints=critical,CA:FALSE",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=DNS:self.example.com",
      ],
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
