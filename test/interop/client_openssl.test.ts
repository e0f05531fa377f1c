/**
 * hsmkit's TLS client against `openssl s_server` requiring a client certificate: every seed
 * suite on its version, with the client key in a SoftHSM2 token and in a file, plus TLS 1.3,
 * the ECDHE suites, an EC token key, and a HelloRetryRequest.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { fetchVia, type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import {
  opensslClientVerifications,
  opensslServer,
  type TlsVersion,
  waitForVerifications,
} from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

interface Case {
  suite: string;
  tls: TlsVersion;
  /** s_server -cipher (<= 1.2) or -ciphersuites (1.3). */
  openssl: string;
  ec?: boolean;
}

const SEED_SUITES: Case[] = [
  { suite: "TLS_RSA_WITH_AES_128_CBC_SHA256", tls: "1.2", openssl: "AES128-SHA256" },
  { suite: "TLS_RSA_WITH_AES_256_CBC_SHA256", tls: "1.2", openssl: "AES256-SHA256" },
  { suite: "TLS_RSA_WITH_AES_128_CBC_SHA", tls: "1.1", openssl: "AES128-SHA" },
  { suite: "TLS_RSA_WITH_AES_256_CBC_SHA", tls: "1.1", openssl: "AES256-SHA" },
  // RSA key exchange with AES-GCM, all many older servers offer (issue 9).
  { suite: "TLS_RSA_WITH_AES_128_GCM_SHA256", tls: "1.2", openssl: "AES128-GCM-SHA256" },
  { suite: "TLS_RSA_WITH_AES_256_GCM_SHA384", tls: "1.2", openssl: "AES256-GCM-SHA384" },
];

const MODERN_SUITES: Case[] = [
  { suite: "TLS_AES_128_GCM_SHA256", tls: "1.3", openssl: "TLS_AES_128_GCM_SHA256" },
  { suite: "TLS_AES_256_GCM_SHA384", tls: "1.3", openssl: "TLS_AES_256_GCM_SHA384" },
  { suite: "TLS_CHACHA20_POLY1305_SHA256", tls: "1.3", openssl: "TLS_CHACHA20_POLY1305_SHA256" },
  { suite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", tls: "1.2", openssl: "ECDHE-RSA-AES128-GCM-SHA256" },
  { suite: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", tls: "1.2", openssl: "ECDHE-RSA-AES256-GCM-SHA384" },
  {
    suite: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    tls: "1.2",
    openssl: "ECDHE-RSA-CHACHA20-POLY1305",
  },
  { suite: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", tls: "1.2", openssl: "ECDHE-RSA-AES128-SHA256" },
  { suite: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", tls: "1.2", openssl: "ECDHE-RSA-AES256-SHA384" },
  { suite: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", tls: "1.1", openssl: "ECDHE-RSA-AES128-SHA" },
  {
    suite: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    tls: "1.2",
    openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
    ec: true,
  },
  {
    suite: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    tls: "1.2",
    openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
    ec: true,
  },
  {
    suite: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    tls: "1.2",
    openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
    ec: true,
  },
  { suite: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", tls: "1.2", openssl: "ECDHE-ECDSA-AES256-SHA", ec: true },
];

let pki: Pki;
let rsaToken: TokenIdentity;
let ecToken: TokenIdentity;
let fileKey: PrivateKeyHandle;

before(async () => {
  pki = await makePki();
  rsaToken = await tokenIdentity(pki, "rsa2048", "hsmkit-token-client-rsa");
  ecToken = await tokenIdentity(pki, "ec-p256", "hsmkit-token-client-ec");
  fileKey = await openKey(pki.client.keyPath);
});

after(async () => {
  await rsaToken?.handle.close();
  await ecToken?.handle.close();
  await fileKey?.close();
});

/** Runs one mutual-TLS GET against a fresh s_server and checks both sides' view of it. */
async function mutualTls(
  c: Case,
  key: PrivateKeyHandle,
  certChain: string,
  subject: string,
  extra: string[] = [],
) {
  const server = c.ec ? pki.serverEc : pki.server;
  const peer = await opensslServer({
    cert: server.certPath,
    key: server.keyPath,
    chain: pki.intermediate.certPath,
    caFile: pki.caFile,
    verifyClient: true,
    tls: c.tls,
    ...(c.tls === "1.3" ? { ciphersuites: c.openssl } : { ciphers: c.openssl }),
    www: true,
    extraArgs: extra,
  });
  try {
    const res = await fetchVia({
      url: `https://localhost:${peer.port}/`,
      ca: readFileSync(pki.caFile, "utf8"),
      cert: certChain,
      key,
      ciphers: c.suite,
      minVersion: "1.1",
      maxVersion: "1.3",
    });
    assert.equal(res.status, 200);
    assert.equal(res.protocol, `TLSv${c.tls}`);
    assert.equal(res.cipher, c.suite);
    assert.match(res.body, /Client certificate/, "s_server saw a client certificate");
    const verified = await waitForVerifications(peer, opensslClientVerifications, 1);
    assert.ok(
      verified.some((v) => v.ok && v.subject.includes(subject)),
      `s_server verified ${subject}: ${JSON.stringify(verified)}`,
    );
  } finally {
    await peer.stop();
  }
}

describe("seed suites with mutual TLS against openssl s_server", () => {
  for (const c of SEED_SUITES) {
    test(`${c.suite} (TLS ${c.tls}), client key in SoftHSM2`, () =>
      mutualTls(c, rsaToken.handle, rsaToken.cert.chainPem, "hsmkit-token-client-rsa"));
    test(`${c.suite} (TLS ${c.tls}), client key in a file`, () =>
      mutualTls(c, fileKey, pki.client.chainPem, "hsmkit-test-client-rsa"));
  }
});

describe("TLS 1.3 and ECDHE suites with mutual TLS against openssl s_server", () => {
  for (const c of MODERN_SUITES) {
    test(`${c.suite} (TLS ${c.tls}), RSA client key in SoftHSM2`, () =>
      mutualTls(c, rsaToken.handle, rsaToken.cert.chainPem, "hsmkit-token-client-rsa"));
  }
  test("EC P-256 client key in SoftHSM2 on TLS 1.2 (ecdsa_secp256r1_sha256)", () =>
    mutualTls(MODERN_SUITES[3]!, ecToken.handle, ecToken.cert.chainPem, "hsmkit-token-client-ec", [
      "-client_sigalgs",
      "ECDSA+SHA256",
    ]));
  test("EC P-256 client key in SoftHSM2 on TLS 1.3", () =>
    mutualTls(MODERN_SUITES[0]!, ecToken.handle, ecToken.cert.chainPem, "hsmkit-token-client-ec"));
  test("HelloRetryRequest: the server accepts only P-256, we lead with X25519", () =>
    mutualTls(MODERN_SUITES[0]!, rsaToken.handle, rsaToken.cert.chainPem, "hsmkit-token-client-rsa", [
      "-groups",
      "P-256",
    ]));
  test("RSA-PSS and PKCS#1 client signatures on TLS 1.2 as the server restricts them", async () => {
    await mutualTls(MODERN_SUITES[3]!, rsaToken.handle, rsaToken.cert.chainPem, "hsmkit-token-client-rsa", [
      "-client_sigalgs",
      "RSA+SHA384",
    ]);
    await mutualTls(MODERN_SUITES[3]!, rsaToken.handle, rsaToken.cert.chainPem, "hsmkit-token-client-rsa", [
      "-client_sigalgs",
      "RSA-PSS+SHA512",
    ]);
  });
});
