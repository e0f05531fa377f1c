/**
 * Request signing against fixed vectors. The vectors in vectors/auth-vectors.json were
 * computed once, independently of this code: the canonical strings written out with printf
 * and signed with `openssl dgst -sha256 -sign access-point-test-key.pem` (RSA PKCS#1 v1.5 is
 * deterministic, so the signatures must match byte for byte).
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  ACCESS_KEY_HEADER,
  authorizationFor,
  contentSha256,
  formatHttpDate,
  parseAuthorization,
  parseHttpDate,
  stringToSign,
  verifyAuthorization,
} from "../../src/kms/auth.ts";

interface Vector {
  apiName: string;
  bodyHex: string;
  date: string;
  extraHeader: string;
  contentSha256: string;
  stringToSign: string;
  authorization: string;
}

const here = new URL("./vectors/", import.meta.url);
const vectors = JSON.parse(readFileSync(new URL("auth-vectors.json", here), "utf8")) as Vector[];
const key = createPrivateKey(readFileSync(new URL("access-point-test-key.pem", here)));

function headersOf(v: Vector): Record<string, string> {
  const h: Record<string, string> = {
    accept: "application/x-protobuf",
    date: v.date,
    "x-kms-apiversion": "dkms-gcs-0.2",
    "x-kms-apiname": v.apiName,
    "x-kms-signaturemethod": "RSA_PKCS1_SHA_256",
    [ACCESS_KEY_HEADER]: "KAAP.7f0e1b1c-6a7d-4a57-9f1b-2f5a1e3c9d10",
    "content-type": "application/x-protobuf",
    "content-sha256": contentSha256(Buffer.from(v.bodyHex, "hex")),
    "user-agent": "not signed",
  };
  // Values are trimmed before signing: pad the extra header to prove it.
  if (v.extraHeader) h["x-kms-extra"] = `  ${v.extraHeader}  `;
  return h;
}

describe("KMS request signing", () => {
  for (const v of vectors) {
    it(`matches the openssl-made vector for ${v.apiName}`, () => {
      assert.equal(contentSha256(Buffer.from(v.bodyHex, "hex")), v.contentSha256);
      const canonical = stringToSign("POST", headersOf(v));
      assert.equal(canonical, v.stringToSign);
      assert.equal(authorizationFor(canonical, key), v.authorization);
      const sig = parseAuthorization(v.authorization);
      assert.ok(sig && verifyAuthorization(canonical, sig, createPublicKey(key)));
      assert.equal(verifyAuthorization(`${canonical} `, sig, createPublicKey(key)), false);
    });
  }

  it("hashes the body as upper-case hex", () => {
    assert.match(contentSha256(Buffer.from("x")), /^[0-9A-F]{64}$/);
  });

  it("accepts Bearer and TOKEN authorization, nothing else", () => {
    const b64 = Buffer.from("signature bytes").toString("base64");
    assert.deepEqual(parseAuthorization(`Bearer ${b64}`), Buffer.from("signature bytes"));
    assert.deepEqual(parseAuthorization(`TOKEN ${b64}`), Buffer.from("signature bytes"));
    for (const bad of [
      undefined,
      "",
      "Bearer",
      `Basic ${b64}`,
      `Bearer ${b64}!`,
      "Bearer QQ",
      "Bearer QQ=x=",
    ]) {
      assert.equal(parseAuthorization(bad), undefined, String(bad));
    }
  });

  it("parses RFC 1123 dates strictly", () => {
    const d = parseHttpDate("Tue, 07 Jan 2025 10:11:12 GMT");
    assert.equal(d?.toISOString(), "2025-01-07T10:11:12.000Z");
    assert.equal(formatHttpDate(d as Date), "Tue, 07 Jan 2025 10:11:12 GMT");
    for (const bad of [
      "",
      "Tue, 07 Jan 2025 10:11:12",
      "Tue, 7 Jan 2025 10:11:12 GMT",
      "2025-01-07T10:11:12Z",
      "Tue, 31 Feb 2025 10:11:12 GMT",
      "Tue, 07 Jan 2025 24:00:00 GMT",
      "Tue, 07 Foo 2025 10:11:12 GMT",
      "Tue, 07 Jan 2025 10:11:12 GMT trailing",
      "x".repeat(10_000),
    ]) {
      assert.equal(parseHttpDate(bad), undefined, bad.slice(0, 40));
    }
  });
});
