/**
 * Untrusted files the CA and the KMS client read: PKCS#10 requests (`cert issue --csr`) and
 * PKCS#12 client keys (the KMS client key JSON's PrivateKeyData).
 */
import { PfxError, readPfx } from "../../src/keys/pkcs12/index.ts";
import { PkiError } from "../../src/pki/errors.ts";
import { parseCsr } from "../../src/pki/subject_key.ts";
import { PFX_PASSWORD } from "../corpus.ts";
import { derMutations } from "../der_mutate.ts";
import { type FuzzTarget, simpleTarget, typedErrors } from "../target.ts";

/** File-format targets. */
export const FILE_TARGETS: readonly FuzzTarget[] = [
  simpleTarget({
    name: "pki-csr",
    about: "PKCS#10 CSRs, PEM or DER: parse, key policy, self-signature",
    seeds: (corpus) => corpus.csrs,
    generate: (corpus) => derMutations(corpus.csrs),
    expected: typedErrors(PkiError),
    run: (input) => parseCsr(input, "fuzz.csr"),
  }),
  simpleTarget({
    name: "kms-pfx",
    about: "PKCS#12 client key files (openssl and the KMS's own legacy writer), right password",
    seeds: (corpus) => corpus.pfx,
    generate: (corpus) => derMutations(corpus.pfx),
    expected: typedErrors(PfxError),
    run: (input) => readPfx(input, PFX_PASSWORD),
  }),
];
