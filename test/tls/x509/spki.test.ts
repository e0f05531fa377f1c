/**
 * EC public keys must name their curve (RFC 5480): explicit and implicit curve parameters are
 * refused from the DER, as certificates and as CSRs, before OpenSSL builds a key from them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { PkiError } from "../../../src/pki/errors.ts";
import { subjectKeyFromSpki } from "../../../src/pki/subject_key.ts";
import { spkiProblem } from "../../../src/tls/x509/spki.ts";

test("named curves pass; explicit, implicit and malformed parameters are refused", () => {
  const named = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "der",
  });
  assert.equal(spkiProblem(named), undefined);
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
    type: "spki",
    format: "der",
  });
  assert.equal(spkiProblem(rsa), undefined);

  const dir = mkdtempSync(join(tmpdir(), "hsmkit-spki-"));
  try {
    const key = join(dir, "k.pem");
    execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
    const pem = execFileSync("openssl", ["ec", "-in", key, "-pubout", "-param_enc", "explicit"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const explicit = createPublicKey(pem).export({ type: "spki", format: "der" });
    assert.match(spkiProblem(explicit) ?? "", /EC public key without a named curve/);
    assert.throws(
      () => subjectKeyFromSpki(explicit, "the CSR"),
      (err: unknown) => err instanceof PkiError,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // implicitCurve: parameters NULL.
  const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag, body.length]), body]);
  const ecPublicKey = Buffer.from("06072a8648ce3d0201", "hex");
  const algorithm = tlv(0x30, Buffer.concat([ecPublicKey, Buffer.from("0500", "hex")]));
  const implicit = tlv(0x30, Buffer.concat([algorithm, tlv(0x03, named.subarray(named.length - 66))]));
  assert.match(spkiProblem(implicit) ?? "", /without a named curve/);
  for (const bad of [Buffer.alloc(0), Buffer.from("3000", "hex"), named.subarray(0, 20)]) {
    assert.ok(spkiProblem(bad), bad.toString("hex"));
  }
});
