/**
 * The PKCS#12 MAC is checked by hsmkit (timingSafeEqual) before node-forge reads the file, so
 * forge's string comparison never sees a mismatching MAC. Files written by OpenSSL with SHA-1
 * and SHA-256 MACs pass; a wrong password, a changed MAC byte or a changed content byte fail.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import forge from "node-forge";
import { PfxError, readPfx } from "../../src/keys/pkcs12/index.ts";
import { checkPfxMac } from "../../src/keys/pkcs12/mac.ts";
import { opensslSelfSignedPfx } from "../helpers/pki-openssl.ts";

const dir = mkdtempSync(join(tmpdir(), "hsmkit-pfx-mac-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const parse = (pfx: Buffer) => forge.asn1.fromDer(forge.util.createBuffer(pfx.toString("binary")), true);

/** The offset of `needle` in `pfx`, which must occur exactly once. */
function onlyOffset(pfx: Buffer, needle: Buffer): number {
  const at = pfx.indexOf(needle);
  assert.ok(at >= 0 && pfx.indexOf(needle, at + 1) < 0, "needle must occur once");
  return at;
}

/** `pfx` with one byte of its stored MAC changed. */
function withMacByteFlipped(pfx: Buffer): Buffer {
  const macData = parse(pfx).value[2] as forge.asn1.Asn1;
  const digestInfo = (macData.value as forge.asn1.Asn1[])[0]!;
  const digest = Buffer.from((digestInfo.value as forge.asn1.Asn1[])[1]!.value as string, "binary");
  const copy = Buffer.from(pfx);
  copy[onlyOffset(pfx, digest) + digest.length - 1]! ^= 1;
  return copy;
}

// -nomaciter: MacData without its iteration count (DEFAULT 1), as old Windows wrote them.
for (const [macalg, ...extra] of [["sha1"], ["sha256"], ["sha1", "-nomaciter"]] as const) {
  const label = `${macalg}${extra.join("")}`;
  describe(`an OpenSSL PKCS#12 with a ${macalg} MAC ${extra.join(" ")}`, () => {
    let pfx: Buffer;
    before(async () => {
      pfx = await opensslSelfSignedPfx(dir, label, "right", ["-macalg", macalg, ...extra]);
    });

    it("passes with the right password, and reads", () => {
      checkPfxMac(parse(pfx), "right");
      assert.ok(readPfx(pfx, "right").certificatePem?.includes("BEGIN CERTIFICATE"));
    });

    it("fails with a wrong password", () => {
      assert.throws(() => checkPfxMac(parse(pfx), "wrong"), PfxError);
      assert.throws(() => readPfx(pfx, "wrong"), /wrong password or corrupted PKCS#12/);
    });

    it("fails when one byte of the stored MAC changes", () => {
      const bad = withMacByteFlipped(pfx);
      assert.throws(() => checkPfxMac(parse(bad), "right"), /wrong password or corrupted PKCS#12/);
      // readPfx refuses it before node-forge computes a MAC of its own (forge.hmac unused).
      const hmac = forge.hmac as { create: typeof forge.hmac.create };
      const create = hmac.create;
      let forgeMacs = 0;
      hmac.create = () => {
        forgeMacs++;
        return create();
      };
      try {
        assert.throws(() => readPfx(bad, "right"), /wrong password or corrupted PKCS#12/);
      } finally {
        hmac.create = create;
      }
      assert.equal(forgeMacs, 0);
    });

    it("fails when one byte of the authenticated content changes", () => {
      // The friendly-name-free bag attributes hold the localKeyId (20 bytes of the cert's SHA-1);
      // the last byte of the whole authSafe is inside it or the encrypted key: either way covered.
      const macData = parse(pfx).value[2] as forge.asn1.Asn1;
      const macDer = Buffer.from(forge.asn1.toDer(macData).getBytes(), "binary");
      const bad = Buffer.from(pfx);
      bad[onlyOffset(pfx, macDer) - 1]! ^= 1;
      assert.throws(() => checkPfxMac(parse(bad), "right"), /wrong password or corrupted PKCS#12/);
    });
  });
}
