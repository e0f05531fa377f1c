/**
 * Bounds on the work path validation does before the peer has proven anything (issue 9,
 * finding 6, Go's CVE-2023-29409 class): RSA keys with a huge exponent or modulus are
 * refused without a signature check, the issuers tried for one certificate are bounded,
 * and self-issued intermediates do not count toward maxDepth. The tests count signature
 * verifications (VerifyResult.signatureChecks); they never measure time.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { TlsError } from "../../../src/tls/alert.ts";
import { leafPublicKey } from "../../../src/tls/verify_peer.ts";
import { describeKey } from "../../../src/tls/x509/algorithms.ts";
import { Certificate } from "../../../src/tls/x509/certificate.ts";
import { MAX_CANDIDATES_CONSIDERED, MAX_ISSUER_CANDIDATES } from "../../../src/tls/x509/chain_builder.ts";
import { verifyChain } from "../../../src/tls/x509/verify.ts";
import { assertOk, assertRefused } from "./chains.ts";
import { CA_EXT, type Issued, serverExt, TestPki } from "./pki.ts";

const LEAF_EXT = serverExt("DNS:leaf.example.com");
/** CA extensions without a subjectKeyIdentifier, so that a leaf's key id cannot rule the CA out as its issuer. */
const NO_SKI_CA_EXT = [
  ...CA_EXT.filter((l) => !l.startsWith("subjectKeyIdentifier")),
  "subjectKeyIdentifier=none",
];

/** A random odd number of exactly `bits` bits, big-endian. */
function oddNumber(bits: number): Buffer {
  const bytes = randomBytes(Math.ceil(bits / 8));
  const topBits = bits % 8 || 8;
  bytes[0] = (bytes[0]! & ((1 << topBits) - 1)) | (1 << (topBits - 1));
  bytes[bytes.length - 1]! |= 1;
  return bytes;
}

/** An RSA public key (PEM) with any modulus and exponent: nothing checks that n is a product of two primes. */
function rsaPublicKeyPem(n: Buffer, e: Buffer): string {
  const key = createPublicKey({
    key: { kty: "RSA", n: n.toString("base64url"), e: e.toString("base64url") },
    format: "jwk",
  });
  return key.export({ type: "spki", format: "pem" }).toString();
}

function bigintBytes(value: bigint): Buffer {
  const hex = value.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex");
}

describe("path validation bounds the work an unauthenticated chain can cause", () => {
  let pki: TestPki;
  let root: Issued;

  before(async () => {
    pki = await TestPki.create();
    root = await pki.make("root", { subject: "/CN=Limits Root", ext: CA_EXT });
  });

  after(async () => {
    await pki.cleanup();
  });

  /** `count` CAs named `subject` issued by the root, each certifying the public key in `pubPath`. */
  async function sameNameCas(
    label: string,
    subject: string,
    pubPath: string,
    count: number,
  ): Promise<Issued[]> {
    const out: Issued[] = [];
    for (let i = 0; i < count; i++) {
      out.push(
        await pki.make(`${label}-${i}`, {
          subject,
          issuer: root,
          ext: NO_SKI_CA_EXT,
          publicKeyPath: pubPath,
        }),
      );
    }
    return out;
  }

  /** A leaf whose issuer name is `subject`, signed by a key none of the decoys hold. */
  async function leafNamedUnder(label: string, subject: string): Promise<Issued> {
    const signer = await pki.make(`${label}-signer`, { subject, issuer: root, ext: CA_EXT });
    return pki.make(`${label}-leaf`, { subject: "/CN=leaf.example.com", issuer: signer, ext: LEAF_EXT });
  }

  it("RSA keys: exponent odd, from 3 to 2^32; modulus from 2048 to 8192 bits", () => {
    const n2048 = oddNumber(2048);
    const weakness = (n: Buffer, e: bigint) =>
      describeKey(createPublicKey(rsaPublicKeyPem(n, bigintBytes(e)))).weakness;
    assert.equal(weakness(n2048, 65537n), undefined);
    assert.equal(weakness(n2048, 2n ** 32n - 1n), undefined);
    assert.match(
      weakness(n2048, 2n ** 32n + 1n) ?? "",
      /RSA public exponent of 33 bits is above the maximum of 2\^32/,
    );
    assert.match(
      weakness(n2048, 65538n) ?? "",
      /RSA public exponent 65538 is not acceptable \(it must be odd/,
    );
    assert.match(weakness(n2048, 1n) ?? "", /RSA public exponent 1 is not acceptable/);
    assert.match(weakness(oddNumber(8200), 65537n) ?? "", /RSA-8200 is above the 8192-bit maximum/);
    assert.equal(weakness(oddNumber(8192), 65537n), undefined);
  });

  it("40 issuer candidates with e close to n are refused without one signature check", async () => {
    // 3072 bits: above that OpenSSL itself refuses exponents over 64 bits; at or below, it grinds through them.
    const n = oddNumber(3072);
    const e = bigintBytes(BigInt(`0x${n.toString("hex")}`) - 2n);
    const pubPath = pki.path("costly.pub");
    await writeFile(pubPath, rsaPublicKeyPem(n, e));
    const decoys = await sameNameCas("costly", "/CN=Costly CA", pubPath, 40);
    const leaf = await leafNamedUnder("costly", "/CN=Costly CA");
    const result = verifyChain(leaf.cert, { roots: [root.cert], intermediates: decoys.map((d) => d.cert) });
    assertRefused(
      result,
      "weak-key",
      /certificate 'CN=Costly CA' has a weak key: RSA public exponent of 3072 bits is above the maximum of 2\^32/,
    );
    assert.equal(result.signatureChecks, 0);
  });

  it("a peer leaf with a costly RSA key is refused before the key is used, verified or not", async () => {
    const n = oddNumber(3072);
    const pubPath = pki.path("expensive-leaf.pub");
    await writeFile(pubPath, rsaPublicKeyPem(n, bigintBytes(BigInt(`0x${n.toString("hex")}`) - 2n)));
    const leaf = await pki.make("expensive-leaf", {
      subject: "/CN=leaf.example.com",
      issuer: root,
      ext: LEAF_EXT,
      publicKeyPath: pubPath,
    });
    assert.throws(
      () => leafPublicKey(leaf.cert.der, "server"),
      (err: unknown) =>
        err instanceof TlsError &&
        /server certificate key refused: RSA public exponent of 3072 bits is above the maximum of 2\^32/.test(
          err.message,
        ),
    );
    assert.equal(
      leafPublicKey(root.cert.der, "client").asymmetricKeyType,
      root.cert.publicKey.asymmetricKeyType,
    );
  });

  it("an issuer with a modulus over 8192 bits is refused without a signature check", async () => {
    const pubPath = pki.path("huge.pub");
    await writeFile(pubPath, rsaPublicKeyPem(oddNumber(8200), bigintBytes(65537n)));
    const decoys = await sameNameCas("huge", "/CN=Huge CA", pubPath, 1);
    const leaf = await leafNamedUnder("huge", "/CN=Huge CA");
    const result = verifyChain(leaf.cert, { roots: [root.cert], intermediates: decoys.map((d) => d.cert) });
    assertRefused(result, "weak-key", /'CN=Huge CA' has a weak key: RSA-8200 is above the 8192-bit maximum/);
    assert.equal(result.signatureChecks, 0);
  });

  it("many certificates sharing the issuer's name: only a bounded number are tried", async () => {
    const pubPath = pki.path("crowd.pub");
    const decoyKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    await writeFile(pubPath, decoyKey.export({ type: "spki", format: "pem" }).toString());
    const decoys = await sameNameCas("crowd", "/CN=Crowded CA", pubPath, MAX_ISSUER_CANDIDATES + 8);
    const leaf = await leafNamedUnder("crowd", "/CN=Crowded CA");
    const result = verifyChain(leaf.cert, { roots: [root.cert], intermediates: decoys.map((d) => d.cert) });
    assertRefused(
      result,
      "bad-signature",
      /certificate 'CN=leaf\.example\.com': .* signature does not verify with the key of 'CN=Crowded CA'/,
    );
    assert.equal(result.signatureChecks, MAX_ISSUER_CANDIDATES);
  });

  it("self-issued intermediates (key rollover) do not count toward maxDepth", async () => {
    const oldCa = await pki.make("rollover-old", { subject: "/CN=Rollover CA", issuer: root, ext: CA_EXT });
    const newCa = await pki.make("rollover-new", { subject: "/CN=Rollover CA", issuer: oldCa, ext: CA_EXT });
    assert.ok(newCa.cert.isSelfIssued);
    const leaf = await pki.make("rollover-leaf", {
      subject: "/CN=leaf.example.com",
      issuer: newCa,
      ext: LEAF_EXT,
    });
    const options = { roots: [root.cert], intermediates: [oldCa.cert, newCa.cert] };
    assertOk(verifyChain(leaf.cert, { ...options, maxDepth: 1 }), [leaf, newCa, oldCa, root]);
    assertRefused(
      verifyChain(leaf.cert, { ...options, maxDepth: 0 }),
      "depth",
      /chain from 'CN=leaf\.example\.com' needs more than 0 intermediate certificates/,
    );
  });

  it("a mesh of self-issued CAs with two issuers each is not walked path by path", async () => {
    // Every level holds two CAs named CN=Mesh sharing one key, both issued by the level above:
    // each link is checked once and cached, but 12 levels make 2^12 paths to a dead end.
    const subject = "/CN=Mesh";
    const outside = await pki.make("mesh-outside", { subject, ext: CA_EXT });
    let above: Issued = outside;
    const mesh: Issued[] = [];
    for (let level = 12; level >= 1; level--) {
      const a = await pki.make(`mesh-${level}-a`, { subject, issuer: above, ext: CA_EXT });
      const b = await pki.make(`mesh-${level}-b`, { subject, issuer: above, keyOf: a, ext: CA_EXT });
      mesh.push(a, b);
      above = a;
    }
    const leaf = await pki.make("mesh-leaf", {
      subject: "/CN=leaf.example.com",
      issuer: above,
      ext: LEAF_EXT,
    });
    const result = verifyChain(leaf.cert, { roots: [root.cert], intermediates: mesh.map((m) => m.cert) });
    assertRefused(
      result,
      "depth",
      new RegExp(`gave up after considering ${MAX_CANDIDATES_CONSIDERED} candidate issuers`),
    );
    assert.ok(result.signatureChecks <= 2 * mesh.length, `${result.signatureChecks} signature checks`);
  });

  it("a link verified once costs no signature check again; a tampered signature is checked and refused", async () => {
    const ca = await pki.make("cached-ca", { subject: "/CN=Cached CA", issuer: root, ext: CA_EXT });
    const leaf = await pki.make("cached-leaf", {
      subject: "/CN=leaf.example.com",
      issuer: ca,
      ext: LEAF_EXT,
    });
    const options = { roots: [root.cert], intermediates: [ca.cert] };
    const first = verifyChain(leaf.cert, options);
    assertOk(first, [leaf, ca, root]);
    assert.equal(first.signatureChecks, 2);
    // Parsed again from the same bytes, as a new connection would: the links are known good.
    const again = verifyChain(Certificate.fromPem(leaf.pem), {
      ...options,
      intermediates: [Certificate.fromPem(ca.pem)],
    });
    assertOk(again, [leaf, ca, root]);
    assert.equal(again.signatureChecks, 0);
    // The last signature byte flipped: other bytes, another fingerprint, a real check, a refusal.
    const der = Buffer.from(leaf.cert.der);
    der[der.length - 1]! ^= 0x01;
    const tampered = verifyChain(Certificate.fromDer(der), options);
    assertRefused(tampered, "bad-signature", /signature/);
    assert.equal(tampered.signatureChecks, 1);
  });
});
