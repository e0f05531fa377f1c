/**
 * Client benchmark (issue 2): hsmkit's TypeScript TLS client against Node's native tls client
 * and node-forge, all talking to the same native mutual-TLS server (Node tls, requestCert +
 * rejectUnauthorized) running in a child process, so only client CPU is counted here.
 *
 *   handshakes: client CPU ms per full mutual-TLS handshake (+ one ping round trip proving the
 *               server verified the client certificate) and handshakes/s, sequentially;
 *   bulk:       MB/s over one connection, receiving and sending.
 *
 * Every figure is also printed as a ratio to the native client on the same version and suite,
 * next to the issue's targets. Options: --iterations N, --warmup N, --bulk-mib N, --no-bulk,
 * --no-handshakes, --only SUBSTR[,SUBSTR] (case ids such as tls13/hsmkit-file), --json FILE,
 * --v8-default (leave V8's concurrent ArrayBuffer sweeping on; by default this process runs with
 * the settings the `hsmkit` command sets for itself, src/cli/node_tuning.ts, which apply to the
 * native client measured here as much as to hsmkit's).
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { tuneNodeForTls } from "../src/cli/node_tuning.ts";
import { openKey, publicKeyPem } from "../src/keys/index.ts";
import { parsePemBundle } from "../src/tls/x509/certificate.ts";
import { issueCert, makePki } from "../test/helpers/pki.ts";
import { createToken, softHsm, tokenKey } from "../test/helpers/softhsm.ts";
import {
  download,
  forgeCredentials,
  forgeHandshakeAndPing,
  hsmkitOpener,
  measureRecordFloor,
  type Negotiated,
  nativeOpener,
  type Opener,
  ping,
  upload,
} from "./client_lib.ts";
import {
  type Column,
  fmt,
  fmtRatio,
  fmtTarget,
  formatTable,
  formatTargetSummary,
  measureInterleaved,
  measureOnce,
  megabytesPerSecond,
  type RatioTarget,
  type SequentialResult,
  startPeer,
  type TargetLine,
  targetMet,
} from "./lib.ts";
import type { ListenerConfig, NativeServerReady, NativeServerStats } from "./peers/native_tls_server.ts";

const { values: args } = parseArgs({
  options: {
    iterations: { type: "string", default: "200" },
    warmup: { type: "string", default: "20" },
    "bulk-mib": { type: "string", default: "64" },
    "no-bulk": { type: "boolean", default: false },
    "no-handshakes": { type: "boolean", default: false },
    only: { type: "string" },
    json: { type: "string" },
    "v8-default": { type: "boolean", default: false },
  },
});
if (!args["v8-default"]) tuneNodeForTls();
const ITERATIONS = Number(args.iterations);
const WARMUP = Number(args.warmup);
const BULK_BYTES = Number(args["bulk-mib"]) * 1024 * 1024;
const ONLY = args.only?.split(",").filter((s) => s !== "");
/** Handshake cases run interleaved in this many rounds. */
const ROUNDS = 4;
/** A slow client (forge) stops early after this much measuring. */
const CASE_BUDGET_MS = 8_000;
/** Bulk transfers are repeated this many times each; the best counts. */
const BULK_ROUNDS = 3;
/** The whole run is killed after this long, whatever happens. */
const WATCHDOG_MS = 10 * 60_000;

/** The issues' targets, as ratios to native: handshake CPU (issue 2), bulk MB/s (issue 12; issue 2 asked 0.5x). */
const HANDSHAKE_TARGET: RatioTarget = { kind: "at-most", limit: 1.5 };
const BULK_TARGET: RatioTarget = { kind: "at-least", limit: 0.8 };

type Version = "1.1" | "1.2" | "1.3";
type ClientId = "native" | "hsmkit-file" | "hsmkit-softhsm" | "forge";
type BulkClient = "native" | "hsmkit-file";

interface SuiteSpec {
  id: string;
  label: string;
  version: Version;
  listener: "modern" | "legacy";
  /** IANA name: what hsmkit is given and what every client must negotiate. */
  iana: string;
  /** The same suite in OpenSSL's cipher-string syntax for the native client. */
  openssl: string;
  clients: readonly ClientId[];
  bulk: boolean;
}

const SUITES: readonly SuiteSpec[] = [
  {
    id: "tls12-ecdhe-gcm",
    label: "TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256",
    version: "1.2",
    listener: "modern",
    iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    openssl: "ECDHE-RSA-AES128-GCM-SHA256",
    clients: ["native", "hsmkit-file", "hsmkit-softhsm"],
    bulk: true,
  },
  {
    id: "tls12-rsa-cbc",
    label: "TLS 1.2 AES128-SHA256 (RSA kx, CBC)",
    version: "1.2",
    listener: "modern",
    iana: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    openssl: "AES128-SHA256",
    clients: ["native", "hsmkit-file", "hsmkit-softhsm"],
    bulk: true,
  },
  {
    id: "tls13-gcm",
    label: "TLS 1.3 AES_128_GCM_SHA256",
    version: "1.3",
    listener: "modern",
    iana: "TLS_AES_128_GCM_SHA256",
    openssl: "TLS_AES_128_GCM_SHA256",
    clients: ["native", "hsmkit-file", "hsmkit-softhsm"],
    bulk: true,
  },
  {
    id: "tls11-rsa-cbc",
    label: "TLS 1.1 AES128-SHA (RSA kx, CBC)",
    version: "1.1",
    listener: "legacy",
    iana: "TLS_RSA_WITH_AES_128_CBC_SHA",
    openssl: "AES128-SHA:@SECLEVEL=0",
    clients: ["native", "hsmkit-file", "hsmkit-softhsm", "forge"],
    bulk: false,
  },
];

const LISTENERS: ListenerConfig[] = [
  {
    name: "modern",
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
    ciphers: "TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA256",
  },
  // forge speaks TLS 1.1 with RSA key exchange only: OpenSSL 3 needs security level 0 for it.
  { name: "legacy", minVersion: "TLSv1.1", maxVersion: "TLSv1.1", ciphers: "AES128-SHA:@SECLEVEL=0" },
];

function selected(id: string): boolean {
  return !ONLY || ONLY.some((s) => id.includes(s));
}

function checkNegotiated(caseId: string, suite: SuiteSpec, got: Negotiated): void {
  const want = `TLSv${suite.version}`;
  if (got.protocol !== want || got.suite !== suite.iana) {
    throw new Error(`${caseId}: negotiated ${got.protocol} ${got.suite}, expected ${want} ${suite.iana}`);
  }
}

interface HandshakeRow {
  suite: SuiteSpec;
  client: ClientId;
  result: SequentialResult;
}

interface BulkRow {
  suite: SuiteSpec;
  client: BulkClient;
  direction: "receive" | "send";
  bytes: number;
  cpuMs: number;
  wallMs: number;
}

// A failure anywhere ends the run with one line (exit handlers still stop the peers).
process.once("uncaughtException", (err) => {
  console.error(`\nbench/client.ts failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});

const watchdog = setTimeout(() => {
  console.error(`bench/client.ts: still running after ${WATCHDOG_MS / 1000} s, giving up`);
  process.exit(2);
}, WATCHDOG_MS);
watchdog.unref();

// SoftHSM must be configured before anything loads a PKCS#11 module.
softHsm();
const pki = await makePki();
const token = await createToken();
const tokenHandle = await openKey(await tokenKey(token, "bench-client", "rsa2048"));
const tokenChain = await issueCert(pki, {
  name: "bench-token-client",
  profile: "client",
  commonName: "hsmkit-bench-token-client",
  publicKeyPem: publicKeyPem(tokenHandle),
});
const fileHandle = await openKey(pki.client.keyPath);
const caPem = readFileSync(pki.caFile, "utf8");
const roots = parsePemBundle(caPem);
const forgeCreds = forgeCredentials(caPem, pki.client.chainPem, pki.client.keyPem);

const server = await startPeer<NativeServerReady>(
  fileURLToPath(new URL("./peers/native_tls_server.ts", import.meta.url)),
  { certPath: pki.server.chainPath, keyPath: pki.server.keyPath, caPath: pki.caFile, listeners: LISTENERS },
);

function opener(suite: SuiteSpec, client: Exclude<ClientId, "forge">): Opener {
  if (client === "native") {
    return nativeOpener({
      ca: caPem,
      cert: pki.client.chainPem,
      key: pki.client.keyPem,
      ciphers: suite.openssl,
      version: `TLSv${suite.version}`,
    });
  }
  const token = client === "hsmkit-softhsm";
  return hsmkitOpener({
    ca: roots,
    cert: token ? tokenChain.chainPem : pki.client.chainPem,
    key: token ? tokenHandle : fileHandle,
    ciphers: suite.iana,
    version: suite.version,
  });
}

/** The operation one handshake case repeats: connect, full handshake, one ping round trip, close. */
function handshakeOp(suite: SuiteSpec, client: ClientId): () => Promise<void> {
  const port = server.ready[suite.listener]!;
  const caseId = `${suite.id}/${client}`;
  let first = true;
  const check = (n: Negotiated): void => {
    if (first) checkNegotiated(caseId, suite, n);
    first = false;
  };
  if (client === "forge") return async () => check(await forgeHandshakeAndPing(port, forgeCreds));
  const open = opener(suite, client);
  return async () => {
    const { socket, negotiated } = await open(port);
    try {
      check(negotiated);
      await ping(socket);
    } finally {
      socket.destroy();
    }
  };
}

/** All clients of one suite, interleaved in rounds so changing machine load hits them alike. */
async function handshakeSuite(suite: SuiteSpec): Promise<HandshakeRow[]> {
  const clients = suite.clients.filter((c) => selected(`${suite.id}/${c}`));
  if (clients.length === 0) return [];
  process.stderr.write(`handshakes ${suite.id}: ${clients.join(", ")} ... `);
  const results = await measureInterleaved(
    clients.map((client) => ({
      name: client,
      op: handshakeOp(suite, client),
      warmup: client === "forge" ? Math.min(WARMUP, 3) : WARMUP,
    })),
    { warmup: WARMUP, iterations: ITERATIONS, budgetMs: CASE_BUDGET_MS, rounds: ROUNDS },
  );
  const rows = clients.map((client) => ({ suite, client, result: results.get(client)! }));
  process.stderr.write(`${rows.map((r) => `${r.client} ${fmt(r.result.cpuMsPerOp)} ms`).join(", ")}\n`);
  return rows;
}

/**
 * Bulk transfers for one suite: one connection per client, warmed up, then ROUNDS rounds of
 * (receive, send) alternating between the clients; the best round of each counts.
 */
async function bulkSuite(suite: SuiteSpec): Promise<BulkRow[]> {
  const clients = (["native", "hsmkit-file"] as const).filter((c) => selected(`${suite.id}/${c}`));
  if (clients.length === 0) return [];
  process.stderr.write(`bulk ${suite.id}: ${clients.join(", ")} ... `);
  const sockets = new Map<BulkClient, Duplex>();
  try {
    for (const client of clients) {
      const { socket, negotiated } = await opener(suite, client)(server.ready[suite.listener]!);
      sockets.set(client, socket);
      checkNegotiated(`${suite.id}/${client}`, suite, negotiated);
      // Warm-up on the same connection: JIT, buffers and the kernel's socket windows settle.
      const warm = Math.min(BULK_BYTES, 8 * 1024 * 1024);
      await download(socket, warm);
      await upload(socket, warm);
    }
    const best = new Map<string, BulkRow>();
    for (let round = 0; round < BULK_ROUNDS; round++) {
      for (const direction of ["receive", "send"] as const) {
        for (const client of clients) {
          const socket = sockets.get(client)!;
          const m = await measureOnce(() =>
            direction === "receive" ? download(socket, BULK_BYTES) : upload(socket, BULK_BYTES),
          );
          const key = `${client}/${direction}`;
          const prev = best.get(key);
          if (!prev || m.wallMs < prev.wallMs)
            best.set(key, { suite, client, direction, bytes: BULK_BYTES, ...m });
        }
      }
    }
    const rows = [...best.values()];
    process.stderr.write(
      `${rows.map((r) => `${r.client} ${r.direction} ${fmt(megabytesPerSecond(r.bytes, r.wallMs))} MB/s`).join(", ")}\n`,
    );
    return rows;
  } finally {
    for (const s of sockets.values()) s.destroy();
  }
}

const handshakes: HandshakeRow[] = [];
const bulk: BulkRow[] = [];
const started = Date.now();
try {
  if (!args["no-handshakes"]) for (const suite of SUITES) handshakes.push(...(await handshakeSuite(suite)));
  if (!args["no-bulk"])
    for (const suite of SUITES.filter((s) => s.bulk)) bulk.push(...(await bulkSuite(suite)));
  const stats = await server.request<NativeServerStats>("stats");
  report(stats);
} finally {
  await server.stop();
  await tokenHandle.close();
  await fileHandle.close();
}

function nativeHs(s: SuiteSpec): number {
  return handshakes.find((h) => h.suite === s && h.client === "native")?.result.cpuMsPerOp ?? Number.NaN;
}

function nativeBulkRow(r: BulkRow): BulkRow | undefined {
  return bulk.find((b) => b.suite === r.suite && b.direction === r.direction && b.client === "native");
}

function cpuPerByte(r: BulkRow | undefined): number {
  return r ? r.cpuMs / r.bytes : Number.NaN;
}

function nativeMbpsOf(r: BulkRow): number {
  const n = nativeBulkRow(r);
  return n ? megabytesPerSecond(n.bytes, n.wallMs) : Number.NaN;
}

function report(stats: NativeServerStats): void {
  const cpuModel = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(
    `\nhsmkit client benchmark: Node ${process.version}, OpenSSL ${process.versions.openssl}, ` +
      `${os.cpus().length} x ${cpuModel}; ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(
    "Server: Node tls (OpenSSL) in a child process, requestCert + rejectUnauthorized, RSA-2048 " +
      "leaf + intermediate; client: RSA-2048 leaf + intermediate. CPU = this process only (user+sys, " +
      "libuv threads included: SoftHSM signs there).",
  );
  console.log(
    args["v8-default"]
      ? "V8: default settings (--v8-default)."
      : "V8: the hsmkit command's settings for this whole process, native client included (src/cli/node_tuning.ts).",
  );

  if (handshakes.length > 0) {
    const columns: Column[] = [
      { title: "suite" },
      { title: "client" },
      { title: "n", align: "right" },
      { title: "CPU ms/hs", align: "right" },
      { title: "hs/s", align: "right" },
      { title: "CPU vs native", align: "right" },
      { title: "target (file key)" },
    ];
    const rows = handshakes.map((h) => {
      const ref = nativeHs(h.suite);
      return [
        h.suite.label,
        h.client,
        String(h.result.count),
        fmt(h.result.cpuMsPerOp, 3),
        fmt(h.result.opsPerSec, 1),
        fmtRatio(h.result.cpuMsPerOp, ref),
        h.client === "hsmkit-file" ? fmtTarget(h.result.cpuMsPerOp / ref, HANDSHAKE_TARGET) : "",
      ];
    });
    console.log("\nFull mutual-TLS handshakes (sequential; each includes one ping round trip)\n");
    console.log(formatTable(columns, rows));
  }

  if (bulk.length > 0) {
    const columns: Column[] = [
      { title: "suite" },
      { title: "direction" },
      { title: "client" },
      { title: "MB/s", align: "right" },
      { title: "vs native", align: "right" },
      { title: "client CPU ms/MiB", align: "right" },
      { title: "CPU vs native", align: "right" },
      { title: "target (MB/s)" },
    ];
    const rows = bulk.map((r) => {
      const mbps = megabytesPerSecond(r.bytes, r.wallMs);
      return [
        r.suite.label,
        r.direction,
        r.client,
        fmt(mbps, 1),
        fmtRatio(mbps, nativeMbpsOf(r)),
        fmt(r.cpuMs / (r.bytes / 1048576), 3),
        fmtRatio(r.cpuMs / r.bytes, cpuPerByte(nativeBulkRow(r))),
        r.client === "hsmkit-file" ? fmtTarget(mbps / nativeMbpsOf(r), BULK_TARGET) : "",
      ];
    });
    console.log(
      `\nBulk transfer over one connection, ${BULK_BYTES / 1048576} MiB each way (MB = 10^6 bytes)\n`,
    );
    console.log(formatTable(columns, rows));
  }

  const hsVerdicts = handshakes
    .filter((h) => h.client === "hsmkit-file")
    .map((h) => targetMet(h.result.cpuMsPerOp / nativeHs(h.suite), HANDSHAKE_TARGET));
  console.log(
    `\nIssue 2 target: handshake CPU <= ${HANDSHAKE_TARGET.limit}x native (file key): met in ` +
      `${hsVerdicts.filter(Boolean).length} of ${hsVerdicts.length}.`,
  );
  const bulkLines: TargetLine[] = bulk
    .filter((b) => b.client === "hsmkit-file")
    .map((b) => {
      const mbps = megabytesPerSecond(b.bytes, b.wallMs);
      return {
        figure: `${b.suite.label}: hsmkit client ${b.direction} vs native`,
        detail: `${fmt(mbps, 0)} vs ${fmt(nativeMbpsOf(b), 0)} MB/s`,
        ratio: mbps / nativeMbpsOf(b),
        target: BULK_TARGET,
      };
    });
  if (bulkLines.length > 0) {
    console.log(formatTargetSummary("Issue 12 targets, hsmkit client bulk", bulkLines).text);
    const floor = measureRecordFloor();
    const perMiB = (micros: number) => fmt((micros * 64) / 1000, 2);
    console.log(
      `\nRecord floor (16 KiB AES-128-GCM records, CPU of this process): node:crypto seals one in ` +
        `${fmt(floor.sealMicros, 1)} us and opens one in ${fmt(floor.openMicros, 1)} us ` +
        `(${perMiB(floor.sealMicros)} / ${perMiB(floor.openMicros)} ms per MiB, before any socket work); ` +
        `OpenSSL encrypts one in ${floor.opensslMicros === undefined ? "n/a" : fmt(floor.opensslMicros, 1)} us ` +
        "in place (openssl speed). Compare the native client's whole CPU per MiB above.",
    );
  }
  const verifiedTotal = Object.values(stats.verified).reduce((a, b) => a + b, 0);
  console.log(
    `Server: ${verifiedTotal} client certificates verified, ${stats.clientErrors} failed handshakes` +
      (stats.errorSamples.length > 0 ? ` (${stats.errorSamples.join("; ")})` : "") +
      `, server CPU ${fmt(stats.cpuMs / 1000, 1)} s.`,
  );
  if (args.json) {
    writeFileSync(
      args.json,
      JSON.stringify(
        {
          node: process.version,
          openssl: process.versions.openssl,
          handshakes: handshakes.map((h) => ({ suite: h.suite.id, client: h.client, ...h.result })),
          bulk: bulk.map((b) => ({
            ...b,
            suite: b.suite.id,
            mbPerSec: megabytesPerSecond(b.bytes, b.wallMs),
          })),
          server: stats,
        },
        null,
        2,
      ),
    );
  }
}
