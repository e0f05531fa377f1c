/**
 * The base chains shared by the verifyChain tests (RSA, EC and RSA-PSS chains, a client
 * certificate), made by the openssl CLI, and the assertions those tests use.
 */
import assert from "node:assert/strict";
import type { VerifyErrorCode } from "../../../src/tls/x509/errors.ts";
import type { VerifyOptions, VerifyResult } from "../../../src/tls/x509/verify.ts";
import { CA_EXT, type Issued, serverExt, TestPki } from "./pki.ts";

/** One day in milliseconds. */
export const DAY = 24 * 3600 * 1000;

/** The certificates every verifyChain test file starts from. */
export interface BaseChains {
  pki: TestPki;
  rsaRoot: Issued;
  rsaInter: Issued;
  rsaLeaf: Issued;
  ecRoot: Issued;
  ecInter: Issued;
  ecLeaf: Issued;
  clientLeaf: Issued;
  pssLeaf: Issued;
}

/** Builds the base chains in a fresh temporary PKI (the caller cleans it up). */
export async function buildBaseChains(): Promise<BaseChains> {
  const pki = await TestPki.create();
  // The RSA CAs start long ago so that verification at a past time can be shown to work.
  const longAgo = new Date(Date.now() - 400 * DAY);
  const rsaRoot = await pki.issue("rsa-root", {
    subject: "/O=hsmkit test/CN=RSA Root",
    ext: CA_EXT,
    notBefore: longAgo,
    notAfter: new Date(Date.now() + 3650 * DAY),
  });
  const rsaInter = await pki.issue("rsa-inter", {
    subject: "/O=hsmkit test/CN=RSA Intermediate",
    issuer: rsaRoot,
    ext: [...CA_EXT.slice(1), "basicConstraints=critical,CA:TRUE,pathlen:0"],
    notBefore: longAgo,
  });
  const rsaLeaf = await pki.issue("rsa-leaf", {
    subject: "/CN=www.example.com",
    issuer: rsaInter,
    ext: serverExt("DNS:www.example.com,DNS:*.apps.example.com,IP:10.0.0.5,IP:2001:db8::5"),
  });
  const ecRoot = await pki.issue("ec-root", {
    subject: "/O=hsmkit test/CN=EC Root",
    key: "ec-p384",
    md: "sha384",
    ext: CA_EXT,
  });
  const ecInter = await pki.issue("ec-inter", {
    subject: "/O=hsmkit test/CN=EC Intermediate",
    key: "ec-p256",
    issuer: ecRoot,
    md: "sha384",
    ext: CA_EXT,
  });
  const ecLeaf = await pki.issue("ec-leaf", {
    subject: "/CN=ec.example.com",
    key: "ec-p256",
    issuer: ecInter,
    ext: serverExt("DNS:ec.example.com,IP:127.0.0.1"),
  });
  const clientLeaf = await pki.issue("client-leaf", {
    subject: "/CN=alice",
    key: "ec-p256",
    issuer: rsaInter,
    ext: [
      ...serverExt("DNS:alice.example.com", "clientAuth").filter((l) => !l.startsWith("keyUsage")),
      "keyUsage=critical,digitalSignature",
    ],
  });
  const pssLeaf = await pki.issue("pss-leaf", {
    subject: "/CN=pss.example.com",
    issuer: rsaInter,
    ext: serverExt("DNS:pss.example.com"),
    sigopt: ["rsa_padding_mode:pss", "rsa_pss_saltlen:32"],
  });
  return { pki, rsaRoot, rsaInter, rsaLeaf, ecRoot, ecInter, ecLeaf, clientLeaf, pssLeaf };
}

/** Options for the RSA chain: its root trusted, its intermediate supplied. */
export function rsaOptions(base: BaseChains, extra: Partial<VerifyOptions> = {}): VerifyOptions {
  return { roots: [base.rsaRoot.cert], intermediates: [base.rsaInter.cert], ...extra };
}

/** Asserts acceptance with exactly this chain (by subject). */
export function assertOk(result: VerifyResult, expectedChain: Issued[]): void {
  assert.ok(result.ok, result.ok ? "" : `refused: ${result.code}: ${result.reason}`);
  assert.deepEqual(
    result.chain.map((c) => c.subject),
    expectedChain.map((c) => c.cert.subject),
  );
}

/** Asserts refusal with this code and a one-line reason matching `reason`. */
export function assertRefused(result: VerifyResult, code: VerifyErrorCode, reason: RegExp): void {
  assert.equal(result.ok, false, "chain was accepted");
  if (result.ok) return;
  assert.equal(result.code, code, `wrong code; reason was: ${result.reason}`);
  assert.match(result.reason, reason);
  assert.doesNotMatch(result.reason, /\n/, "reason must be one line");
}
