/**
 * CA benchmark (issue 3): how fast hsmkit's CA signs certificates when its key is in a file
 * and when it is in SoftHSM2, against @peculiar/x509 signing with a native WebCrypto key
 * (the library's own path, no key handle in between) and the `openssl x509 -req` command a
 * shell-script CA runs per certificate. Then the time to issue 1,000 client certificates
 * through a CA directory (lock, index, key generated and written, files staged), with the
 * CA key in a file and in SoftHSM2.
 *
 *   node --import tsx bench/ca.ts [--count 1000] [--sign-iterations 300] [--openssl-iterations 40]
 */
import { execFileSync } from "node:child_process";
import { webcrypto } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import * as x509 from "@peculiar/x509";
import { generateKey, type KeyGenType, type PrivateKeyHandle } from "../src/keys/index.ts";
import {
  type CaSignatureScheme,
  defaultSchemeFor,
  initCa,
  issueCertificate,
  planValidity,
  randomSerial,
  signCertificate,
  subjectName,
} from "../src/pki/index.ts";
import { createToken, softHsm } from "../test/helpers/softhsm.ts";
import { cpuMs, fmt, fmtRatio, formatTable, measureSequential, type SequentialResult } from "./lib.ts";

const { values: args } = parseArgs({
  options: {
    count: { type: "string", default: "1000" },
    "sign-iterations": { type: "string", default: "300" },
    "openssl-iterations": { type: "string", default: "40" },
  },
});
const COUNT = Number(args.count);
const SIGN_ITERATIONS = Number(args["sign-iterations"]);
const OPENSSL_ITERATIONS = Number(args["openssl-iterations"]);
/** In-flight signatures for the parallel column (the PKCS#11 session pool holds 8). */
const PARALLEL = 8;

softHsm();
const work = mkdtempSync(join(tmpdir(), "hsmkit-bench-ca-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

/** One signing set-up: what a CA key of a type in a place is. */
interface SignCase {
  name: string;
  type: KeyGenType;
  sign: () => Promise<void>;
}

const root = { days: 30, defaultDays: 30 };

/** hsmkit's path: a template signed through a key handle. */
function handleCase(name: string, type: KeyGenType, key: PrivateKeyHandle, subject: Uint8Array): SignCase {
  const scheme: CaSignatureScheme = defaultSchemeFor(key);
  let issuer: x509.X509Certificate | undefined;
  return {
    name,
    type,
    async sign() {
      issuer ??= await signCertificate(
        { certificate: undefined, key, scheme },
        {
          profile: "root",
          subject: subjectName("bench root"),
          serial: randomSerial(),
          validity: planValidity(root),
          spki: key.spki,
          keyType: key.type,
        },
      );
      await signCertificate(
        { certificate: issuer, key, scheme },
        {
          profile: "client",
          subject: subjectName("bench client"),
          serial: randomSerial(),
          validity: planValidity({ days: 10, defaultDays: 10, issuer }),
          spki: subject,
          keyType: "ec",
        },
      );
    },
  };
}

/** The reference: @peculiar/x509 with a native WebCrypto key and the same extensions. */
async function webCryptoCase(type: KeyGenType, subject: Uint8Array): Promise<SignCase> {
  const algorithm =
    type === "ec-p256"
      ? { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" }
      : {
          name: "RSASSA-PKCS1-v1_5",
          modulusLength: 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: "SHA-256",
        };
  const keys = (await webcrypto.subtle.generateKey(algorithm, false, ["sign", "verify"])) as CryptoKeyPair;
  const crypto = webcrypto as unknown as Crypto;
  const issuerName = subjectName("bench root");
  const publicKey = new x509.PublicKey(Uint8Array.from(subject));
  const issuerKeyId = await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey, false, crypto);
  return {
    name: "webcrypto (reference)",
    type,
    async sign() {
      await x509.X509CertificateGenerator.create(
        {
          serialNumber: randomSerial(),
          subject: subjectName("bench client"),
          issuer: issuerName,
          notBefore: new Date(),
          notAfter: new Date(Date.now() + 864_000_000),
          publicKey,
          signingKey: keys.privateKey,
          signingAlgorithm: algorithm,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension(["1.3.6.1.5.5.7.3.2"]),
            await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
            issuerKeyId,
          ],
        },
        crypto,
      );
    },
  };
}

/** Runs `op` PARALLEL at a time until `total` are done; certificates per second. */
async function parallelRate(total: number, op: () => Promise<void>): Promise<number> {
  let started = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (started < total) {
      started++;
      await op();
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return total / ((performance.now() - t0) / 1000);
}

/** `openssl x509 -req` once per certificate, as a shell CA does; certificates per second. */
function opensslRate(type: KeyGenType): SequentialResult {
  const dir = mkdtempSync(join(work, "openssl-"));
  const key = join(dir, "ca.key");
  const ca = join(dir, "ca.crt");
  const csr = join(dir, "leaf.csr");
  const algo =
    type === "ec-p256" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", "rsa:2048"];
  execFileSync(
    "openssl",
    ["req", "-x509", ...algo, "-nodes", "-keyout", key, "-subj", "/CN=bench root", "-days", "30", "-out", ca],
    { stdio: "ignore" },
  );
  execFileSync(
    "openssl",
    [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      join(dir, "leaf.key"),
      "-subj",
      "/CN=bench client",
      "-out",
      csr,
    ],
    { stdio: "ignore" },
  );
  const cpu0 = cpuMs();
  const t0 = performance.now();
  for (let i = 0; i < OPENSSL_ITERATIONS; i++) {
    execFileSync(
      "openssl",
      [
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        key,
        "-set_serial",
        `0x${randomSerial()}`,
        "-days",
        "10",
        "-out",
        join(dir, "leaf.crt"),
      ],
      { stdio: "ignore" },
    );
  }
  const wall = performance.now() - t0;
  const cpu = cpuMs() - cpu0; // the parent's only: openssl's own CPU is in the children
  return {
    count: OPENSSL_ITERATIONS,
    cpuMsPerOp: cpu / OPENSSL_ITERATIONS,
    wallMsPerOp: wall / OPENSSL_ITERATIONS,
    opsPerSec: OPENSSL_ITERATIONS / (wall / 1000),
    cpuMs: cpu,
    wallMs: wall,
  };
}

async function signingTable(): Promise<void> {
  const subjectKey = await generateKey(join(work, "subject.key"), "ec-p256");
  const token = await createToken();
  const rows: string[][] = [];
  for (const type of ["ec-p256", "rsa2048"] as const) {
    const fileKey = await generateKey(join(work, `ca-${type}.key`), type);
    const tokenCaKey = await generateKey(token.uri(`ca-${type}`), type);
    const cases = [
      await webCryptoCase(type, subjectKey.spki),
      handleCase("hsmkit, CA key in a file", type, fileKey, subjectKey.spki),
      handleCase("hsmkit, CA key in SoftHSM2", type, tokenCaKey, subjectKey.spki),
    ];
    let reference = 0;
    for (const c of cases) {
      const seq = await measureSequential(
        { warmup: 20, iterations: SIGN_ITERATIONS, budgetMs: 20_000 },
        c.sign,
      );
      const par = await parallelRate(SIGN_ITERATIONS, c.sign);
      if (c.name.startsWith("webcrypto")) reference = seq.opsPerSec;
      rows.push([
        type,
        c.name,
        fmt(seq.opsPerSec, 0),
        fmtRatio(seq.opsPerSec, reference),
        fmt(seq.cpuMsPerOp),
        fmt(par, 0),
      ]);
    }
    const ossl = opensslRate(type);
    rows.push([
      type,
      "openssl x509 -req (one process per cert)",
      fmt(ossl.opsPerSec, 0),
      fmtRatio(ossl.opsPerSec, reference),
      "n/a",
      "n/a",
    ]);
    await fileKey.close();
    await tokenCaKey.close();
  }
  await subjectKey.close();
  console.log(`\nSigning one client certificate (EC P-256 subject key), ${SIGN_ITERATIONS} per case:\n`);
  console.log(
    formatTable(
      [
        { title: "CA key" },
        { title: "signer" },
        { title: "certs/s", align: "right" },
        { title: "vs webcrypto", align: "right" },
        { title: "CPU ms/cert", align: "right" },
        { title: `certs/s, ${PARALLEL} at once`, align: "right" },
      ],
      rows,
    ),
  );
}

async function directoryTable(): Promise<void> {
  const token = await createToken();
  const rows: string[][] = [];
  for (const [place, key] of [
    ["file", undefined],
    ["SoftHSM2", token.uri("dir-ca")],
  ] as const) {
    const dir = join(work, `ca-${place}`);
    await initCa({ dir, cn: `bench CA (${place})`, type: "ec-p256", ...(key ? { key } : {}) });
    const out = mkdtempSync(join(work, "leaves-"));
    const cpu0 = cpuMs();
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i++) {
      await issueCertificate({
        ca: dir,
        profile: "client",
        cn: `client ${i}`,
        type: "ec-p256",
        out: join(out, `c${i}`),
      });
    }
    const wall = performance.now() - t0;
    rows.push([
      place,
      String(COUNT),
      fmt(wall / 1000),
      fmt(COUNT / (wall / 1000), 0),
      fmt((cpuMs() - cpu0) / COUNT),
    ]);
    rmSync(out, { recursive: true, force: true });
  }
  console.log(
    `\nIssuing ${COUNT} client certificates through a CA directory (EC P-256 CA; each: lock, load and`,
  );
  console.log(
    "check the directory, generate the client key, sign, write PREFIX.pem + PREFIX.key + index, fsync):\n",
  );
  console.log(
    formatTable(
      [
        { title: "CA key in" },
        { title: "certificates", align: "right" },
        { title: "total s", align: "right" },
        { title: "certs/s", align: "right" },
        { title: "CPU ms/cert", align: "right" },
      ],
      rows,
    ),
  );
}

console.log("hsmkit CA benchmark");
await signingTable();
await directoryTable();
