/**
 * CSRs whose key or signature algorithm is malformed must be refused with a PkiError, as any
 * other bad CSR: @peculiar/x509 decodes those parts lazily and used to throw TypeError (or a
 * plain schema Error) out of parseCsr. Found by the pki-csr fuzz target (issue 9 §4); each
 * case below is an openssl CSR with one part replaced, as the fuzzer's DER mutator did.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import * as asn1js from "asn1js";
import { PkiError } from "../../src/pki/errors.ts";
import { parseCsr } from "../../src/pki/subject_key.ts";
import { openssl, tempDir } from "./helpers.ts";

const EC_PUBLIC_KEY = "1.2.840.10045.2.1";

/** A fresh EC P-256 CSR from openssl, DER. */
async function opensslCsr(dir: string): Promise<Buffer> {
  const key = join(dir, "ec.key");
  const csr = join(dir, "req.der");
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
  await openssl(["req", "-new", "-key", key, "-subj", "/CN=csr.example", "-outform", "DER", "-out", csr]);
  return readFile(csr);
}

/** The CSR with `edit` applied to its decoded structure, re-encoded. */
function damaged(der: Buffer, edit: (csr: asn1js.Sequence) => void): Buffer {
  const csr = asn1js.fromBER(new Uint8Array(der)).result as asn1js.Sequence;
  edit(csr);
  return Buffer.from(csr.toBER());
}

const algorithmId = (...value: asn1js.AsnType[]) => new asn1js.Sequence({ value });
const oid = (value: string) => new asn1js.ObjectIdentifier({ value });

/** SubjectPublicKeyInfo inside CertificationRequestInfo. */
function spkiOf(csr: asn1js.Sequence): asn1js.Sequence {
  const info = csr.valueBlock.value[0] as asn1js.Sequence;
  return info.valueBlock.value[2] as asn1js.Sequence;
}

const CASES: ReadonlyArray<[string, (csr: asn1js.Sequence) => void]> = [
  [
    "signature algorithm id-ecPublicKey",
    (csr) => (csr.valueBlock.value[1] = algorithmId(oid(EC_PUBLIC_KEY))),
  ],
  [
    "EC key without curve parameters",
    (csr) => (spkiOf(csr).valueBlock.value[0] = algorithmId(oid(EC_PUBLIC_KEY))),
  ],
  [
    "EC key whose parameters are neither a curve OID nor domain parameters",
    (csr) =>
      (spkiOf(csr).valueBlock.value[0] = algorithmId(oid(EC_PUBLIC_KEY), new asn1js.Integer({ value: 5 }))),
  ],
];

test("CSRs with a malformed key or signature algorithm are refused with PkiError bad-input", async (t) => {
  const der = await opensslCsr(await tempDir(t));
  await parseCsr(der, "good.csr").catch((err: unknown) => assert.fail(`the unedited CSR is refused: ${err}`));
  for (const [what, edit] of CASES) {
    await assert.rejects(
      parseCsr(damaged(der, edit), "bad.csr"),
      (err: unknown) =>
        err instanceof PkiError &&
        err.kind === "bad-input" &&
        err.message === "bad.csr is not a PKCS#10 certificate request",
      what,
    );
  }
});
