/**
 * Certificate targets: DER certificates as a TLS peer sends them (then validated against the
 * test PKI, as the handshake does), PEM bundles and CRLs as `cert verify` reads them from
 * untrusted files. Refusals are X509ParseError; path validation must never throw at all.
 */

import { checkRevocation } from "../../src/tls/x509/crl.ts";
import {
  Certificate,
  Crl,
  checkHost,
  checkIp,
  parsePemBundle,
  verifyChain,
  X509ParseError,
} from "../../src/tls/x509/index.ts";
import { decodePemBlocks } from "../../src/tls/x509/pem.ts";
import { derMutations } from "../der_mutate.ts";
import { asText, type FuzzTarget, simpleTarget, textSeeds, typedErrors } from "../target.ts";

const x509Expected = typedErrors(X509ParseError);

const der: FuzzTarget = {
  name: "x509-der",
  about: "a peer's DER certificate: parse, names, SAN host/IP checks, path validation to a real root",
  async prepare(corpus) {
    const root = Certificate.fromDer(corpus.rootDer);
    const intermediate = Certificate.fromDer(corpus.intermediateDer);
    return {
      seeds: corpus.certificates,
      generate: derMutations(corpus.certificates),
      expected: x509Expected,
      run(input: Buffer) {
        const cert = Certificate.fromDer(input);
        void cert.subject;
        void cert.issuer;
        checkHost(cert, "localhost");
        checkIp(cert, "127.0.0.1");
        verifyChain(cert, { roots: [root], intermediates: [intermediate], host: "localhost" });
        verifyChain(cert, { roots: [cert], purpose: "client" });
      },
    };
  },
};

const pem = simpleTarget({
  name: "x509-pem",
  about: "PEM bundles (certificates, keys, CRLs, comments) as certificate files are read",
  seeds: (corpus) => textSeeds(corpus.pemTexts),
  expected: x509Expected,
  run(input) {
    const text = asText(input);
    decodePemBlocks(text);
    parsePemBundle(text);
  },
});

const crl: FuzzTarget = {
  name: "x509-crl",
  about: "CRL files, DER or PEM, then a revocation check of real certificates against them",
  async prepare(corpus) {
    const intermediate = Certificate.fromDer(corpus.intermediateDer);
    const leaves = corpus.certificates.slice(3).map((d) => Certificate.fromDer(d));
    return {
      seeds: [...corpus.crls, ...textSeeds(corpus.pemTexts.filter((t) => t.includes("X509 CRL")))],
      generate: derMutations(corpus.crls),
      expected: x509Expected,
      run(input: Buffer) {
        const parsed = Crl.parse(input);
        for (const leaf of leaves) checkRevocation(leaf, intermediate, [parsed], new Date(), true);
      },
    };
  },
};

/** X.509 targets. */
export const X509_TARGETS: readonly FuzzTarget[] = [der, pem, crl];
