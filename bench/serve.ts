/**
 * Server-side cost of full mutual-TLS handshakes and bulk throughput, in one run on this
 * machine: `hsmkit serve` (key in a file; key in SoftHSM2) against Node's native tls
 * server and nginx (key in a file; key in SoftHSM2 through the pkcs11 engine), all on
 * TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 with RSA-2048 server and client keys.
 *
 * Server CPU is read from /proc (utime + stime of every process in the server's process
 * group), so it counts only the server, not the load-generating client in this process.
 *
 *   node --import tsx bench/serve.ts [HANDSHAKES] [CONCURRENCY]
 */

import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import tls from "node:tls";
import { HSMKIT_BIN, tokenIdentity } from "../test/helpers/hsmkit.ts";
import { waitForOutput } from "../test/helpers/net.ts";
import { nginxServer } from "../test/helpers/peers.ts";
import { makePki } from "../test/helpers/pki.ts";
import { groupMembers, ManagedProcess } from "../test/helpers/process.ts";
import { softHsm } from "../test/helpers/softhsm.ts";

const hsm = softHsm();
const HANDSHAKES = Number(process.argv[2] ?? 300);
const CONCURRENCY = Number(process.argv[3] ?? 8);
const CIPHER = "ECDHE-RSA-AES128-GCM-SHA256";
const BULK_BYTES = 64 * 1024 * 1024;
const TICKS = 100; // USER_HZ on Linux

interface Target {
  name: string;
  port: number;
  /** Process group whose CPU is the server's. */
  pgid: number;
  stop(): Promise<void>;
}

interface Result {
  name: string;
  cpuMsPerHandshake: number;
  handshakesPerSecond: number;
  bulkMBps: number;
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
await import("node:fs/promises").then((fs) => fs.mkdir(bulkDir, { recursive: true }));
await writeFile(path.join(bulkDir, "big.bin"), Buffer.alloc(BULK_BYTES, 7));
await writeFile(path.join(bulkDir, "index.html"), "ok\n");

function clientOptions(port: number): tls.ConnectionOptions {
  return {
    host: "127.0.0.1",
    port,
    servername: "localhost",
    ca: pki.root.certPem,
    cert: pki.client.chainPem,
    key: pki.client.keyPem,
    maxVersion: "TLSv1.2",
    ciphers: CIPHER,
  };
}

function handshakeOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(clientOptions(port), () => {
      s.destroy();
      resolve();
    });
    s.on("error", reject);
  });
}

async function handshakes(port: number, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < count) await handshakeOnce(port);
    }),
  );
}

function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    https
      .get({ ...clientOptions(port), path: "/big.bin", agent: false }, (res) => {
        let bytes = 0;
        res.on("data", (d: Buffer) => {
          bytes += d.length;
        });
        res.on("end", () => {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          if (bytes !== BULK_BYTES) reject(new Error(`got ${bytes} bytes, status ${res.statusCode}`));
          else resolve(bytes / 1e6 / seconds);
        });
      })
      .on("error", reject);
  });
}

async function measure(target: Target): Promise<Result> {
  await handshakes(target.port, 20); // warm-up (JIT, token sessions)
  const cpu0 = groupCpuMs(target.pgid);
  const t0 = process.hrtime.bigint();
  await handshakes(target.port, HANDSHAKES);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = groupCpuMs(target.pgid) - cpu0;
  const bulk = Math.max(await download(target.port), await download(target.port));
  return {
    name: target.name,
    cpuMsPerHandshake: cpu / HANDSHAKES,
    handshakesPerSecond: HANDSHAKES / seconds,
    bulkMBps: bulk,
  };
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
    ],
    { env: hsm.env },
  );
  const port = Number((await waitForOutput(proc, /listening on 127\.0\.0\.1:(\d+)/, 30_000))[1]);
  return { name, port, pgid: proc.pid, stop: () => proc.stop() };
}

async function nodeNative(): Promise<Target> {
  const script = path.join(pki.dir, "bench-native.mjs");
  await writeFile(
    script,
    `import https from "node:https"; import fs from "node:fs";
const s = https.createServer({ key: fs.readFileSync(${JSON.stringify(pki.server.keyPath)}),
  cert: fs.readFileSync(${JSON.stringify(pki.server.chainPath)}), ca: fs.readFileSync(${JSON.stringify(pki.caFile)}),
  requestCert: true, rejectUnauthorized: true, maxVersion: "TLSv1.2" },
  (req, res) => fs.createReadStream(${JSON.stringify(bulkDir)} + (req.url === "/big.bin" ? "/big.bin" : "/index.html")).pipe(res));
s.listen(0, "127.0.0.1", () => console.log("listening on 127.0.0.1:" + s.address().port));
process.on("SIGTERM", () => process.exit(0));`,
  );
  const proc = await ManagedProcess.start(process.execPath, [script]);
  const port = Number((await waitForOutput(proc, /listening on 127\.0\.0\.1:(\d+)/, 30_000))[1]);
  return { name: "node tls (file key)", port, pgid: proc.pid, stop: () => proc.stop() };
}

async function nginx(name: string, engine: boolean): Promise<Target> {
  const peer = await nginxServer({
    cert: engine ? token.cert.chainPath : pki.server.chainPath,
    key: engine ? undefined : pki.server.keyPath,
    clientCa: pki.caFile,
    protocols: ["1.2"],
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

const results: Result[] = [];
for (const start of plan) {
  let target: Target | undefined;
  try {
    target = await start();
    results.push(await measure(target));
    process.stderr.write(`measured ${target.name}\n`);
  } catch (err) {
    process.stderr.write(
      `skipped a target: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}\n`,
    );
  } finally {
    await target?.stop();
  }
}
await token.handle.close();

const native = results.find((r) => r.name.startsWith("node"));
const nginxToken = results.find((r) => r.name.startsWith("nginx (SoftHSM2"));
console.log(
  `TLS 1.2 ${CIPHER}, mutual TLS, RSA-2048; ${HANDSHAKES} full handshakes at concurrency ${CONCURRENCY}; bulk ${BULK_BYTES / 1048576} MiB over one connection`,
);
console.log(
  "server                                   CPU ms/hs  handshakes/s   bulk MB/s   CPU vs node  hs/s vs node  bulk vs node",
);
for (const r of results) {
  const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : "-");
  console.log(
    `${r.name.padEnd(40)} ${r.cpuMsPerHandshake.toFixed(2).padStart(9)}  ${r.handshakesPerSecond.toFixed(0).padStart(12)}  ${r.bulkMBps.toFixed(0).padStart(10)}  ${ratio(r.cpuMsPerHandshake, native?.cpuMsPerHandshake).padStart(11)}  ${ratio(r.handshakesPerSecond, native?.handshakesPerSecond).padStart(12)}  ${ratio(r.bulkMBps, native?.bulkMBps).padStart(12)}`,
  );
}
const hsmkitToken = results.find((r) => r.name === "hsmkit serve (SoftHSM2 key)");
if (hsmkitToken && nginxToken) {
  console.log(
    `key in SoftHSM2: hsmkit ${hsmkitToken.handshakesPerSecond.toFixed(0)} handshakes/s vs nginx ${nginxToken.handshakesPerSecond.toFixed(0)} (ratio ${(hsmkitToken.handshakesPerSecond / nginxToken.handshakesPerSecond).toFixed(2)})`,
  );
}
