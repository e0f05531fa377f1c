/**
 * Every CA key type (RSA 2048/3072/4096, EC P-256/P-384) signing with every scheme it
 * allows (PKCS#1 v1.5 and PSS with SHA-256/384/512, ECDSA), in a file and in SoftHSM2,
 * through the library API; OpenSSL checks each certificate and CRL under -x509_strict.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { generateKey, type KeyGenType, type PrivateKeyHandle } from "../../src/keys/index.ts";
import {
  type CaSignatureScheme,
  planValidity,
  randomSerial,
  signCertificate,
  signCrl,
  subjectName,
} from "../../src/pki/index.ts";
import { parseSanList } from "../../src/pki/names.ts";
import { createToken, softHsm } from "../helpers/softhsm.ts";
import { openssl, tempDir } from "./helpers.ts";

softHsm();

const CA_TYPES: readonly KeyGenType[] = ["rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384"];

/** Schemes to try per CA key type, with the name `openssl x509 -text` gives them. */
function schemesFor(type: KeyGenType): [CaSignatureScheme, RegExp][] {
  if (type === "ec-p256")
    return [
      ["ecdsa_secp256r1_sha256", /ecdsa-with-SHA256/],
      ["ecdsa_secp384r1_sha384", /ecdsa-with-SHA384/],
    ];
  if (type === "ec-p384")
    return [
      ["ecdsa_secp384r1_sha384", /ecdsa-with-SHA384/],
      ["ecdsa_secp521r1_sha512", /ecdsa-with-SHA512/],
    ];
  return [
    ["rsa_pkcs1_sha256", /sha256WithRSAEncryption/],
    ["rsa_pkcs1_sha384", /sha384WithRSAEncryption/],
    ["rsa_pss_rsae_sha256", /rsassaPss[\s\S]*Hash Algorithm: sha256[\s\S]*Salt Length: 0x20/],
    ["rsa_pss_rsae_sha512", /rsassaPss[\s\S]*Hash Algorithm: sha512[\s\S]*Salt Length: 0x40/],
  ];
}

/** Signs a root, a server leaf (of the next key type in the list) and a CRL with `ca`; OpenSSL judges them. */
async function checkCaKey(
  dir: string,
  label: string,
  ca: PrivateKeyHandle,
  leaf: PrivateKeyHandle,
  type: KeyGenType,
) {
  for (const [scheme, shown] of schemesFor(type)) {
    const root = await signCertificate(
      { certificate: undefined, key: ca, scheme },
      {
        profile: "root",
        subject: subjectName(`${label} ${scheme}`),
        serial: randomSerial(),
        validity: planValidity({ days: 30, defaultDays: 30 }),
        spki: ca.spki,
        keyType: ca.type,
      },
    );
    const server = await signCertificate(
      { certificate: root, key: ca, scheme },
      {
        profile: "server",
        subject: subjectName("localhost"),
        serial: randomSerial(),
        validity: planValidity({ days: 10, defaultDays: 10, issuer: root }),
        spki: leaf.spki,
        keyType: leaf.type,
        san: parseSanList("DNS:localhost,IP:127.0.0.1,IP:::1"),
      },
    );
    const now = new Date();
    const crl = await signCrl(
      { certificate: root, key: ca, scheme },
      {
        number: 7,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 86_400_000),
        entries: [{ serial: "80ff01", revokedAt: now, reason: 1 }],
      },
    );
    const base = join(dir, `${label}-${scheme}`);
    await writeFile(`${base}-root.pem`, root.toString("pem"));
    await writeFile(`${base}-server.pem`, server.toString("pem"));
    await writeFile(`${base}.crl`, crl.toString("pem").replace(/(BEGIN|END) CRL/g, "$1 X509 CRL"));
    const verified = await openssl([
      "verify",
      "-x509_strict",
      "-purpose",
      "sslserver",
      "-crl_check",
      "-CRLfile",
      `${base}.crl`,
      "-CAfile",
      `${base}-root.pem`,
      `${base}-server.pem`,
    ]);
    assert.equal(verified.exitCode, 0, `${label} ${scheme}: ${verified.output}`);
    const text = await openssl(["x509", "-in", `${base}-server.pem`, "-noout", "-text"]);
    assert.match(text.stdout, shown, `${label} ${scheme}`);
    const crlText = await openssl(["crl", "-in", `${base}.crl`, "-noout", "-text"]);
    assert.match(crlText.stdout, /Serial Number: 80FF01/);
    assert.match(crlText.stdout, /X509v3 CRL Number: \n\s+7/);
  }
}

test("CA keys of every type in files sign certificates and CRLs with every allowed scheme", async (t) => {
  const dir = await tempDir(t);
  const handles = await Promise.all(CA_TYPES.map((type) => generateKey(join(dir, `${type}.key`), type)));
  t.after(() => Promise.all(handles.map((h) => h.close())));
  for (const [i, type] of CA_TYPES.entries()) {
    const leaf = handles[(i + 1) % handles.length];
    assert.ok(handles[i] && leaf);
    await checkCaKey(dir, `file-${type}`, handles[i], leaf, type);
  }
});

test("CA keys of every type in SoftHSM2 sign certificates and CRLs with every allowed scheme", async (t) => {
  const dir = await tempDir(t);
  const token = await createToken();
  const handles: PrivateKeyHandle[] = [];
  t.after(() => Promise.all(handles.map((h) => h.close())));
  for (const type of CA_TYPES) handles.push(await generateKey(token.uri(`ca-${type}`), type));
  for (const [i, type] of CA_TYPES.entries()) {
    const leaf = handles[(i + 2) % handles.length];
    assert.ok(handles[i] && leaf);
    await checkCaKey(dir, `token-${type}`, handles[i], leaf, type);
  }
});
