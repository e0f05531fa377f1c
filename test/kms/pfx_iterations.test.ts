/**
 * A PKCS#12 naming an enormous MAC iteration count is refused at once with a PfxError: node-forge
 * derives keys in JavaScript, so such a file (found by the kms-pfx fuzz target, issue 9 §4)
 * held readPfx, and the event loop, for hours. Real files, up to the bound, still read.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import * as asn1js from "asn1js";
import { MAX_PFX_BYTES, MAX_PFX_ITERATIONS, PfxError, readPfx } from "../../src/keys/pkcs12/index.ts";
import { opensslSelfSignedPfx } from "../helpers/pki-openssl.ts";

const dir = mkdtempSync(join(tmpdir(), "hsmkit-pfx-iter-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An RSA key and self-signed certificate in an OpenSSL PKCS#12 (3DES, SHA-1 MAC) with `iterations`. */
function opensslPfx(iterations: number, ...extra: string[]): Promise<Buffer> {
  return opensslSelfSignedPfx(dir, String(iterations), "pw", [
    ...["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
    ...["-iter", String(iterations), ...extra],
  ]);
}

/** The same file with MacData.iterations encoded as `count` (the MAC is never reached). */
function withMacIterations(pfx: Buffer, count: Uint8Array): Buffer {
  const outer = asn1js.fromBER(new Uint8Array(pfx)).result as asn1js.Sequence;
  const macData = outer.valueBlock.value[2] as asn1js.Sequence;
  macData.valueBlock.value[2] = new asn1js.Integer({ valueHex: count.slice().buffer });
  return Buffer.from(outer.toBER());
}

// 2^31 - 1, and four 0xff octets: negative as DER, 2^32 - 1 as node-forge reads it.
for (const count of [
  [0x7f, 0xff, 0xff, 0xff],
  [0xff, 0xff, 0xff, 0xff],
]) {
  const hex = Buffer.from(count).toString("hex");
  it(`refuses MAC iterations encoded as ${hex} with a PfxError naming the bound`, {
    timeout: 120_000,
  }, async () => {
    const hostile = withMacIterations(await opensslPfx(2048), new Uint8Array(count));
    assert.throws(
      () => readPfx(hostile, "pw"),
      (err: unknown) =>
        err instanceof PfxError &&
        err.message === `the PKCS#12 asks for more than ${MAX_PFX_ITERATIONS} key-derivation iterations`,
    );
  });
}

/**
 * The same file with its authenticated safe as a BER constructed OCTET STRING in two chunks:
 * the same content (the MAC still holds), but the counts inside are no longer primitive DER
 * that a walk of the file can read before anything is derived.
 */
function withChunkedAuthSafe(pfx: Buffer): Buffer {
  const outer = asn1js.fromBER(new Uint8Array(pfx)).result as asn1js.Sequence;
  const authSafe = outer.valueBlock.value[1] as asn1js.Sequence;
  const explicit = authSafe.valueBlock.value[1] as asn1js.Constructed;
  const content = new Uint8Array(
    (explicit.valueBlock.value[0] as asn1js.OctetString).valueBlock.valueHexView,
  );
  explicit.valueBlock.value[0] = new asn1js.OctetString({
    isConstructed: true,
    value: [
      new asn1js.OctetString({ valueHex: content.slice(0, 10).buffer }),
      new asn1js.OctetString({ valueHex: content.slice(10).buffer }),
    ],
  });
  return Buffer.from(outer.toBER());
}

it("refuses counts hidden from the DER walk (a chunked authenticated safe) when forge is about to use them", {
  timeout: 120_000,
}, async () => {
  // 200 000 key-derivation iterations (the MAC's is 1): readPfx took about 2 s a file before.
  const hostile = withChunkedAuthSafe(await opensslPfx(200_000, "-nomaciter"));
  assert.throws(
    () => readPfx(hostile, "pw"),
    (err: unknown) =>
      err instanceof PfxError &&
      err.message === `the PKCS#12 asks for more than ${MAX_PFX_ITERATIONS} key-derivation iterations`,
  );
});

it("refuses a file over the size bound before parsing it", () => {
  assert.throws(() => readPfx(Buffer.alloc(MAX_PFX_BYTES + 1, 0x30), "pw"), /larger than/);
});

it("still reads OpenSSL files with 20 000 iterations", async () => {
  const { privateKey, certificatePem } = readPfx(await opensslPfx(20_000), "pw");
  assert.equal(privateKey.asymmetricKeyType, "rsa");
  assert.match(certificatePem ?? "", /BEGIN CERTIFICATE/);
});
