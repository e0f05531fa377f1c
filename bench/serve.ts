/**
 * Server-side cost of full mutual-TLS handshakes and bulk throughput (issue 5), in one run on
 * this machine: `hsmkit serve` (key in a file; key in SoftHSM2) against Node's native tls
 * server and nginx (key in a file; key in SoftHSM2 through the pkcs11 engine), each on
 * TLS 1.3 TLS_AES_128_GCM_SHA256 and TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256, with RSA-2048
 * server and client keys. Every server enables both versions; the client picks one.
 *
 * Each connection is one full handshake (no resumption), confirmed by the server (TLS 1.3: its
 * first session ticket, which it sends only after accepting the client's certificate), then
 * dropped, as the TLS 1.2-only version of this benchmark did. Server CPU is read from /proc (utime +
 * stime of every process in the server's process group), so it counts only the server, not the
 * load-generating client in this process. All servers run at once and are measured in
 * interleaved rounds, so load from other processes on this shared machine hits all alike.
 *
 *   node --import tsx bench/serve.ts [HANDSHAKES] [CONCURRENCY] [ROUNDS] [WARMUP]
 *
 * HANDSHAKES (default 300) per server and protocol, split over ROUNDS (default 3) rounds, from
 * CONCURRENCY (default 8) connections in flight, after WARMUP (default 1000) unmeasured ones. The run takes 40 s to 1.5 minutes on 2 cores.
 */

import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { HSMKIT_BIN, tokenIdentity } from "../test/helpers/hsmkit.ts";
import { waitForOutput } from "../test/helpers/net.ts";
import { nginxServer } from "../test/helpers/peers.ts";
import { makePki } from "../test/helpers/pki.ts";
import { groupMembers, ManagedProcess, runChecked } from "../test/helpers/process.ts";
import { softHsm } from "../test/helpers/softhsm.ts";
import {
  type Column,
  fmt,
  fmtRatio,
  formatTable,
  formatTargetSummary,
  pinProcess,
  type RatioTarget,
  type TargetLine,
  twoAllowedCpus,
} from "./lib.ts";

const hsm = softHsm();
const HANDSHAKES = Number(process.argv[2] ?? 300);
const CONCURRENCY = Number(process.argv[3] ?? 8);
const ROUNDS = Number(process.argv[4] ?? 3);
/**
 * Unmeasured handshakes per server and protocol first. A JavaScript server compiles its hot
 * paths over the first several hundred connections (V8's optimizing compiler runs on helper
 * threads whose CPU /proc counts); 20 warm-up handshakes measured mostly that one-off cost.
 */
const WARMUP = Number(process.argv[5] ?? 1000);
const BULK_BYTES = 64 * 1024 * 1024;
/**
 * Unmeasured downloads per case before the measured ones: a server's bulk path compiles over its
 * first downloads (Node's own server went from 330 to 800 MB/s over its first six here).
 */
const BULK_WARMUP = countSetting("BENCH_BULK_WARMUP", 3, 0);
/** Measured downloads per case, in interleaved rounds; the best counts. */
const BULK_TRIES = countSetting("BENCH_BULK_TRIES", 5, 1);
/**
 * During bulk, every server runs on the first CPU this process may use and curl on the second
 * (`taskset`), so one connection's figure does not depend on where the scheduler put the two
 * ends: unpinned, the same server's CPU per MiB moved by 1.8x between identical runs.
 * BENCH_NO_PIN=1 turns it off; without taskset or a second CPU it is off.
 */
const PIN_CPUS = process.env.BENCH_NO_PIN === "1" ? undefined : twoAllowedCpus();
/** Whether the bulk phase runs pinned: set once every server is (a failed pin unpins them all). */
let pinned = false;
const TICKS = 100; // USER_HZ on Linux

/** A whole-number setting from the environment, at least `least`; anything else stops the run. */
function countSetting(name: string, fallback: number, least: number): number {
  const text = process.env[name];
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(value) || value < least)
    throw new Error(`${name} must be a whole number >= ${least}`);
  return value;
}

/** A protocol the client asks for, and what it must negotiate. */
interface Protocol {
  label: string;
  version: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher string for the client (TLS 1.3 suites are accepted here too). */
  ciphers: string;
  /** IANA name the connection must end up with. */
  suite: string;
}

const PROTOCOLS: readonly Protocol[] = [
  {
    label: "TLS 1.3",
    version: "TLSv1.3",
    ciphers: "TLS_AES_128_GCM_SHA256",
    suite: "TLS_AES_128_GCM_SHA256",
  },
  {
    label: "TLS 1.2",
    version: "TLSv1.2",
    ciphers: "ECDHE-RSA-AES128-GCM-SHA256",
    suite: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  },
];

/** Issue 12's targets (issue 5's were looser: token rate >= 1x nginx, CPU <= 1.5x, bulk >= 0.5x node). */
const TARGETS = {
  /** Handshakes/s with the key in SoftHSM2, hsmkit over nginx with the pkcs11 engine. */
  tokenRate: { kind: "at-least", limit: 0.9 } satisfies RatioTarget,
  /** Server CPU per handshake with a file key, hsmkit over Node native. */
  fileCpu: { kind: "at-most", limit: 1.1 } satisfies RatioTarget,
  /** Bulk MB/s, hsmkit (file key) over Node native. */
  bulk: { kind: "at-least", limit: 1.0 } satisfies RatioTarget,
  /** Bulk MB/s, hsmkit (file key) over nginx (file key). */
  bulkNginx: { kind: "at-least", limit: 0.6 } satisfies RatioTarget,
} as const;

interface Target {
  name: string;
  port: number;
  /** Process group whose CPU is the server's. */
  pgid: number;
  stop(): Promise<void>;
  /** What the server printed, when it is ours: shown when it is dropped. */
  output?(): string;
}

/** Running totals for one server on one protocol, summed over rounds. */
interface Tally {
  cpuMs: number;
  seconds: number;
  handshakes: number;
  bulkMBps: number;
  /** Server CPU per MiB sent, the lowest of the bulk tries (steadier than MB/s on a shared machine). */
  bulkCpuMsPerMiB: number;
}

interface Result {
  name: string;
  cpuMsPerHandshake: number;
  handshakesPerSecond: number;
  bulkMBps: number;
  bulkCpuMsPerMiB: number;
}

function groupCpuMs(pgid: number): number {
  let ticks = 0;
  for (const pid of groupMembers(pgid)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended between listing and reading.
    }
  }
  return (ticks * 1000) / TICKS;
}

const pki = await makePki();
const token = await tokenIdentity(pki, "rsa2048", "bench-server", "server");
const bulkDir = path.join(pki.dir, "bench-www");
await mkdir(bulkDir, { recursive: true });
await writeFile(path.join(bulkDir, "big.bin"), Buffer.alloc(BULK_BYTES, 7));
await writeFile(path.join(bulkDir, "index.html"), "ok\n");

// One client context per protocol, made once: parsing the client key for every connection
// would spend this process's CPU (the other core) on work that is not the server's.
const clientContexts = new Map(
  PROTOCOLS.map((p) => [
    p,
    tls.createSecureContext({
      ca: pki.root.certPem,
      cert: pki.client.chainPem,
      key: pki.client.keyPem,
      minVersion: p.version,
      maxVersion: p.version,
      ciphers: p.ciphers,
    }),
  ]),
);

function clientOptions(port: number, protocol: Protocol): tls.ConnectionOptions {
  return {
    host: "127.0.0.1",
    port,
    servername: "localhost",
    secureContext: clientContexts.get(protocol),
    minVersion: protocol.version,
    maxVersion: protocol.version,
  };
}

/** Throws unless the connection negotiated exactly what the protocol asks for. */
function checkNegotiated(socket: tls.TLSSocket, protocol: Protocol): void {
  const version = socket.getProtocol();
  const suite = socket.getCipher()?.standardName;
  if (version !== protocol.version || suite !== protocol.suite) {
    throw new Error(`asked for ${protocol.version} ${protocol.suite}, got ${version} ${suite}`);
  }
}

/**
 * One full handshake, confirmed by the server, then the connection is dropped. In TLS 1.2 the
 * client's handshake ends with the server's Finished, sent after the server checked the client
 * certificate. In TLS 1.3 the client finishes first, so wait for the server's first
 * NewSessionTicket: it is sent only after the server accepted the client's Certificate,
 * CertificateVerify and Finished (a server that refuses them sends an alert instead).
 */
function handshakeOnce(port: number, protocol: Protocol): Promise<void> {
  return new Promise((resolve, reject) => {
    let connected = false;
    let ticket = protocol.version === "TLSv1.2";
    const finish = (): void => {
      if (!connected || !ticket) return;
      s.destroy();
      resolve();
    };
    const s = tls.connect(clientOptions(port, protocol), () => {
      try {
        checkNegotiated(s, protocol);
      } catch (err) {
        s.destroy(err as Error);
        return;
      }
      connected = true;
      finish();
    });
    if (!ticket) {
      s.once("session", () => {
        ticket = true;
        finish();
      });
    }
    s.setTimeout(15_000, () => s.destroy(new Error("handshake not confirmed within 15 s")));
    s.on("error", reject);
  });
}

async function handshakes(port: number, protocol: Protocol, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, count) }, async () => {
      while (next++ < count) await handshakeOnce(port, protocol);
    }),
  );
}

/**
 * The bulk client: curl (OpenSSL), a new process for each download. One connection's MB/s is
 * limited by the slower side; a Node https client in this process was that side (its CPU per
 * MiB tripled after the handshake rounds filled its heap, and even fresh it stays under
 * 300 MB/s), so every server looked alike. curl receives faster than any server here sends, so
 * the figure is the server's.
 */
async function download(port: number, protocol: Protocol): Promise<number> {
  const versionFlags =
    protocol.version === "TLSv1.3"
      ? ["--tlsv1.3", "--tls-max", "1.3", "--tls13-ciphers", protocol.ciphers]
      : ["--tlsv1.2", "--tls-max", "1.2", "--ciphers", protocol.ciphers];
  const result = await runChecked(
    pinned ? "taskset" : "curl",
    [
      ...(pinned && PIN_CPUS ? ["-c", String(PIN_CPUS[1]), "curl"] : []),
      "-sS",
      "-v",
      "--fail",
      "-o",
      "/dev/null",
      ...versionFlags,
      "--cacert",
      pki.root.certPath,
      "--cert",
      pki.client.chainPath,
      "--key",
      pki.client.keyPath,
      "--resolve",
      `localhost:${port}:127.0.0.1`,
      "-w",
      "%{size_download} %{time_starttransfer} %{time_total}",
      `https://localhost:${port}/big.bin`,
    ],
    { timeoutMs: 120_000 },
  );
  const negotiated = /SSL connection using (\S+) \/ (\S+)/.exec(result.stderr);
  const want = protocol.version === "TLSv1.3" ? protocol.suite : protocol.ciphers;
  if (negotiated?.[1] !== protocol.version || negotiated[2] !== want)
    throw new Error(`asked for ${protocol.version} ${want}, curl says ${negotiated?.[0] ?? "nothing"}`);
  const [bytes, firstByte, total] = result.stdout.trim().split(" ").map(Number) as [number, number, number];
  if (bytes !== BULK_BYTES) throw new Error(`got ${bytes} bytes`);
  // From the first byte of the body: the handshake is measured elsewhere.
  return bytes / 1e6 / (total - firstByte);
}

/** Binds every thread of every process in a process group to `cpus` (a taskset list). */
function pinGroup(pgid: number, cpus: string): void {
  for (const pid of groupMembers(pgid)) pinProcess(pid, cpus);
}

/**
 * Puts every server on the first CPU this process may use (curl goes on the second), or, when
 * any pin fails, gives them all back every allowed CPU and runs unpinned.
 */
function pinServers(): void {
  if (!PIN_CPUS) return;
  try {
    for (const target of targets) pinGroup(target.pgid, String(PIN_CPUS[0]));
    pinned = true;
  } catch (err) {
    process.stderr.write(`bulk runs unpinned: ${errorLine(err)}\n`);
    for (const target of targets) {
      try {
        pinGroup(target.pgid, PIN_CPUS.join(","));
      } catch {
        // Best effort: that server runs where the scheduler puts it.
      }
    }
  }
}

/** Measures `count` handshakes against one server on one protocol into its tally. */
async function measureRound(target: Target, protocol: Protocol, count: number, tally: Tally): Promise<void> {
  const cpu0 = groupCpuMs(target.pgid);
  const t0 = process.hrtime.bigint();
  await handshakes(target.port, protocol, count);
  tally.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
  tally.cpuMs += groupCpuMs(target.pgid) - cpu0;
  tally.handshakes += count;
}

async function hsmkitServe(name: string, keyRef: string, cert: string): Promise<Target> {
  const proc = await ManagedProcess.start(
    HSMKIT_BIN,
    [
      "serve",
      "--cert",
      cert,
      "--key",
      keyRef,
      "--client-ca",
      pki.caFile,
      "--root",
      bulkDir,
      "--listen",
      "127.0.0.1:0",
      "--tls-min",
      "1.2",
      "--tls-max",
      "1.3",
    ],
    { env: hsm.env },
  );
  const port = Number((await waitForOutput(proc, /listening on 127\.0\.0\.1:(\d+)/, 30_000))[1]);
  return { name, port, pgid: proc.pid, stop: () => proc.stop(), output: () => proc.output() };
}

const NATIVE_FLAGS = (process.env.BENCH_NATIVE_FLAGS ?? "").split(" ").filter(Boolean);
async function nodeNative(): Promise<Target> {
  const script = path.join(pki.dir, "bench-native.mjs");
  await writeFile(
    script,
    `import https from "node:https"; import fs from "node:fs";
const s = https.createServer({ key: fs.readFileSync(${JSON.stringify(pki.server.keyPath)}),
  cert: fs.readFileSync(${JSON.stringify(pki.server.chainPath)}), ca: fs.readFileSync(${JSON.stringify(pki.caFile)}),
  requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2", maxVersion: "TLSv1.3" },
  (req, res) => fs.createReadStream(${JSON.stringify(bulkDir)} + (req.url === "/big.bin" ? "/big.bin" : "/index.html")).pipe(res));
s.listen(0, "127.0.0.1", () => console.log("listening on 127.0.0.1:" + s.address().port));
process.on("SIGTERM", () => process.exit(0));`,
  );
  const proc = await ManagedProcess.start(process.execPath, [...NATIVE_FLAGS, script]);
  const port = Number((await waitForOutput(proc, /listening on 127\.0\.0\.1:(\d+)/, 30_000))[1]);
  return { name: "node tls (file key)", port, pgid: proc.pid, stop: () => proc.stop() };
}

async function nginx(name: string, engine: boolean): Promise<Target> {
  const peer = await nginxServer({
    cert: engine ? token.cert.chainPath : pki.server.chainPath,
    key: engine ? undefined : pki.server.keyPath,
    clientCa: pki.caFile,
    protocols: ["1.2", "1.3"],
    root: bulkDir,
    engineKey: engine
      ? {
          uri: `pkcs11:token=${token.token.label};object=bench-server;type=private`,
          modulePath: token.token.module,
          pin: token.token.pin,
          env: { SOFTHSM2_CONF: hsm.conf },
        }
      : undefined,
  });
  return { name, port: peer.port, pgid: peer.pid, stop: () => peer.stop() };
}

const plan: Array<() => Promise<Target>> = [
  () => nodeNative(),
  () => hsmkitServe("hsmkit serve (file key)", pki.server.keyPath, pki.server.chainPath),
  () => hsmkitServe("hsmkit serve (SoftHSM2 key)", token.ref, token.cert.chainPath),
  () => nginx("nginx (file key)", false),
  () => nginx("nginx (SoftHSM2 key, pkcs11 engine)", true),
];

const errorLine = (err: unknown): string =>
  err instanceof Error ? err.message.split("\n")[0]! : String(err);
const loadAtStart = os.loadavg();
const started = Date.now();
const targets: Target[] = [];
const tallies = new Map<Target, Map<Protocol, Tally>>();
/** Servers that failed once are left out of the rest of the run (and of the table). */
const failed = new Set<Target>();

async function forEachCase(step: (target: Target, protocol: Protocol, tally: Tally) => Promise<void>) {
  for (const target of targets) {
    for (const protocol of PROTOCOLS) {
      if (failed.has(target)) continue;
      try {
        await step(target, protocol, tallies.get(target)!.get(protocol)!);
      } catch (err) {
        failed.add(target);
        process.stderr.write(`dropped ${target.name} (${protocol.label}): ${errorLine(err)}\n`);
        const said = target.output?.().trim().split("\n").slice(-10).join("\n  ");
        if (said) process.stderr.write(`  its last output:\n  ${said}\n`);
      }
    }
  }
}

try {
  for (const start of plan) {
    try {
      const target = await start();
      targets.push(target);
      const zero = (): Tally => ({
        cpuMs: 0,
        seconds: 0,
        handshakes: 0,
        bulkMBps: 0,
        bulkCpuMsPerMiB: Number.POSITIVE_INFINITY,
      });
      tallies.set(target, new Map(PROTOCOLS.map((p) => [p, zero()])));
    } catch (err) {
      process.stderr.write(`skipped a target: ${errorLine(err)}\n`);
    }
  }
  // Warm-up (JIT, token sessions), unmeasured.
  await forEachCase((target, protocol) => handshakes(target.port, protocol, WARMUP));
  const perRound = Math.max(1, Math.ceil(HANDSHAKES / ROUNDS));
  for (let round = 1; round <= ROUNDS; round++) {
    await forEachCase((target, protocol, tally) => measureRound(target, protocol, perRound, tally));
    process.stderr.write(`handshake round ${round}/${ROUNDS} done\n`);
  }
  pinServers();
  // Unmeasured downloads first, for the same reason as the handshake warm-up.
  for (let i = 0; i < BULK_WARMUP; i++) {
    await forEachCase(async (target, protocol) => {
      await download(target.port, protocol);
    });
  }
  for (let attempt = 1; attempt <= BULK_TRIES; attempt++) {
    await forEachCase(async (target, protocol, tally) => {
      const cpu0 = groupCpuMs(target.pgid);
      tally.bulkMBps = Math.max(tally.bulkMBps, await download(target.port, protocol));
      const cpuPerMiB = (groupCpuMs(target.pgid) - cpu0) / (BULK_BYTES / 1048576);
      tally.bulkCpuMsPerMiB = Math.min(tally.bulkCpuMsPerMiB, cpuPerMiB);
    });
    process.stderr.write(`bulk round ${attempt}/${BULK_TRIES} done\n`);
  }
} finally {
  for (const target of targets) {
    await target
      .stop()
      .catch((err: unknown) => process.stderr.write(`stopping ${target.name}: ${errorLine(err)}\n`));
  }
  await token.handle.close();
}

const columns: Column[] = [
  { title: "server" },
  { title: "CPU ms/hs", align: "right" },
  { title: "handshakes/s", align: "right" },
  { title: "bulk MB/s", align: "right" },
  { title: "bulk CPU ms/MiB", align: "right" },
  { title: "CPU vs node", align: "right" },
  { title: "hs/s vs node", align: "right" },
  { title: "bulk vs node", align: "right" },
  { title: "bulk CPU vs node", align: "right" },
];

console.log(
  `mutual TLS, RSA-2048 server and client keys; ${HANDSHAKES} full handshakes per server ` +
    `and protocol at concurrency ${CONCURRENCY}, in ${ROUNDS} interleaved rounds; bulk ${BULK_BYTES / 1048576} MiB ` +
    `over one connection, best of ${BULK_TRIES} after ${BULK_WARMUP} unmeasured` +
    (pinned && PIN_CPUS ? ` (servers on CPU ${PIN_CPUS[0]}, curl on CPU ${PIN_CPUS[1]})` : " (unpinned)"),
);
console.log(
  `load average ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} at start, ` +
    `${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} at end; ${os.cpus().length} CPUs; run took ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
const targetLines: TargetLine[] = [];
for (const protocol of PROTOCOLS) {
  const results: Result[] = targets
    .filter((t) => !failed.has(t))
    .map((t) => {
      const tally = tallies.get(t)!.get(protocol)!;
      return {
        name: t.name,
        cpuMsPerHandshake: tally.cpuMs / tally.handshakes,
        handshakesPerSecond: tally.handshakes / tally.seconds,
        bulkMBps: tally.bulkMBps,
        bulkCpuMsPerMiB: tally.bulkCpuMsPerMiB,
      };
    });
  const byName = (prefix: string) => results.find((r) => r.name.startsWith(prefix));
  const native = byName("node tls");
  const rows = results.map((r) => [
    r.name,
    fmt(r.cpuMsPerHandshake),
    r.handshakesPerSecond.toFixed(0),
    r.bulkMBps.toFixed(0),
    fmt(r.bulkCpuMsPerMiB),
    fmtRatio(r.cpuMsPerHandshake, native?.cpuMsPerHandshake ?? Number.NaN),
    fmtRatio(r.handshakesPerSecond, native?.handshakesPerSecond ?? Number.NaN),
    fmtRatio(r.bulkMBps, native?.bulkMBps ?? Number.NaN),
    fmtRatio(r.bulkCpuMsPerMiB, native?.bulkCpuMsPerMiB ?? Number.NaN),
  ]);
  console.log(`\n${protocol.label} ${protocol.suite}`);
  console.log(formatTable(columns, rows));

  // The targets; a missing server makes its target "not measured", which is not met.
  const hsmkitFile = byName("hsmkit serve (file");
  const hsmkitToken = byName("hsmkit serve (SoftHSM2");
  const nginxFile = byName("nginx (file");
  const nginxToken = byName("nginx (SoftHSM2");
  const line = (
    figure: string,
    value: (r: Result) => number,
    hsmkit: Result | undefined,
    reference: Result | undefined,
    target: RatioTarget,
    unit: string,
  ): TargetLine => ({
    figure: `${protocol.label}: ${figure}`,
    detail: `${fmt(hsmkit ? value(hsmkit) : Number.NaN)} vs ${fmt(reference ? value(reference) : Number.NaN)} ${unit}`,
    ratio: hsmkit && reference ? value(hsmkit) / value(reference) : undefined,
    target,
  });
  const bulk = (r: Result) => r.bulkMBps;
  targetLines.push(
    line("bulk, hsmkit serve (file key) vs node", bulk, hsmkitFile, native, TARGETS.bulk, "MB/s"),
    line(
      "bulk, hsmkit serve (file key) vs nginx (file key)",
      bulk,
      hsmkitFile,
      nginxFile,
      TARGETS.bulkNginx,
      "MB/s",
    ),
    line(
      "server CPU/handshake, file key, hsmkit vs node",
      (r) => r.cpuMsPerHandshake,
      hsmkitFile,
      native,
      TARGETS.fileCpu,
      "ms",
    ),
    line(
      "handshakes/s, key in SoftHSM2, hsmkit vs nginx + pkcs11 engine",
      (r) => r.handshakesPerSecond,
      hsmkitToken,
      nginxToken,
      TARGETS.tokenRate,
      "hs/s",
    ),
  );
}
const summary = formatTargetSummary("Issue 12 targets, hsmkit serve", targetLines);
console.log(summary.text);
console.log(`\nall targets met: ${summary.allMet ? "yes" : "no"}`);
