/**
 * Start-up of the compiled `hsmkit` command (bin/hsmkit -> dist/), each case a whole process,
 * against what a user would otherwise run, in one run (issue 10):
 *   - `hsmkit --version` and `hsmkit --help` against `node -e 0`;
 *   - `hsmkit sign` of a 1 MB file with a file key against `openssl dgst -sha256 -sign`;
 *   - `hsmkit curl` of a small page over mutual TLS with a file key against curl, both
 *     fetching from Node's https server requiring client certificates (in this process).
 * Median wall and CPU time of BENCH_CLI_RUNS runs per case (default 21), interleaved in rounds so
 * load that comes and goes on this shared machine hits every case alike. Targets: --version and
 * --help <= 150 ms and <= 3x node; sign <= 250 ms; curl <= 350 ms.
 * Run `npm run build` first: this measures dist/, not the TypeScript sources.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { type MutualTlsServer, mutualTlsServer } from "../test/helpers/mtls-server.ts";
import { makePki } from "../test/helpers/pki.ts";
import { fmt, fmtRatio, formatTable } from "./lib.ts";

const HSMKIT = fileURLToPath(new URL("../bin/hsmkit", import.meta.url));
const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 21);

/** One command line to time, what it is compared with, and its absolute target if any. */
interface Case {
  name: string;
  argv: readonly string[];
  /** The case its ratio is taken against. */
  reference?: string;
  /** Median wall time it must stay under, ms. */
  targetMs?: number;
  /** Most times the reference's median it may take. */
  targetRatio?: number;
}

/** One run: wall time, and CPU time (user + system) when /usr/bin/time can report it. */
interface Timing {
  wallMs: number;
  cpuMs: number;
}

const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

/** Runs one process to its end; rejects unless it exits 0. */
function timeProcess(argv: readonly string[], cpuFile: string): Promise<Timing> {
  // GNU time writes the child's rusage to a file, so the command's own output stays apart.
  const full = TIME ? [TIME, "-f", "%U %S", "-o", cpuFile, ...argv] : argv;
  const [cmd, ...args] = full as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const wallMs = performance.now() - started;
      if (code !== 0) {
        reject(new Error(`${argv.join(" ")} exited ${code}: ${stderr.trim()}`));
        return;
      }
      const [user, sys] = TIME
        ? readFileSync(cpuFile, "utf8").trim().split(" ").map(Number)
        : [Number.NaN, 0];
      resolve({ wallMs, cpuMs: ((user ?? Number.NaN) + (sys ?? 0)) * 1000 });
    });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The cases, with a 1 MB file, a file key and a mutual-TLS server set up in `dir`. */
function cases(dir: string, pki: Awaited<ReturnType<typeof makePki>>, server: MutualTlsServer): Case[] {
  const file = join(dir, "1mb.bin");
  writeFileSync(file, Buffer.alloc(1_000_000, 7));
  const key = pki.client.keyPath;
  const url = `${server.url}/small`;
  const tls = ["--cacert", pki.caFile, "--cert", pki.client.chainPath, "--key", key];
  return [
    { name: "node -e 0", argv: [process.execPath, "-e", "0"] },
    {
      name: "hsmkit --version",
      argv: [HSMKIT, "--version"],
      reference: "node -e 0",
      targetMs: 150,
      targetRatio: 3,
    },
    {
      name: "hsmkit --help",
      argv: [HSMKIT, "--help"],
      reference: "node -e 0",
      targetMs: 150,
      targetRatio: 3,
    },
    {
      name: "openssl dgst -sign (1 MB)",
      argv: ["openssl", "dgst", "-sha256", "-sign", key, "-out", join(dir, "openssl.sig"), file],
    },
    {
      name: "hsmkit sign (1 MB, file key)",
      argv: [
        HSMKIT,
        "sign",
        "--key",
        key,
        "--alg",
        "RSA_PKCS1_SHA_256",
        "--in",
        file,
        "--out",
        join(dir, "h.sig"),
      ],
      reference: "openssl dgst -sign (1 MB)",
      targetMs: 250,
    },
    { name: "curl (mutual TLS)", argv: ["curl", "-sf", "-o", "/dev/null", ...tls, url] },
    {
      name: "hsmkit curl (mutual TLS, file key)",
      argv: [HSMKIT, "curl", "-o", "/dev/null", ...tls, url],
      reference: "curl (mutual TLS)",
      targetMs: 350,
    },
  ];
}

/** Medians per case: one warm-up run each, then RUNS rounds of every case in turn. */
async function measure(all: readonly Case[], cpuFile: string): Promise<Map<string, Timing>> {
  const times = new Map<string, Timing[]>(all.map((c) => [c.name, []]));
  for (const c of all) await timeProcess(c.argv, cpuFile);
  for (let round = 0; round < RUNS; round++) {
    for (const c of all) times.get(c.name)!.push(await timeProcess(c.argv, cpuFile));
  }
  return new Map(
    [...times].map(([name, t]) => [
      name,
      { wallMs: median(t.map((x) => x.wallMs)), cpuMs: median(t.map((x) => x.cpuMs)) },
    ]),
  );
}

/** "met" / "NOT met" for a case's targets. */
function verdict(c: Case, ms: number, ratio: number): string {
  if (c.targetMs === undefined) return "";
  const parts = [`<= ${c.targetMs} ms`];
  let met = ms <= c.targetMs;
  if (c.targetRatio !== undefined) {
    parts.push(`<= ${c.targetRatio}x`);
    met &&= ratio <= c.targetRatio;
  }
  return `${parts.join(", ")}: ${met ? "met" : "NOT met"}`;
}

if (!existsSync(fileURLToPath(new URL("../dist/cli/main.js", import.meta.url)))) {
  console.error("bench/cli.ts measures the compiled CLI: run 'npm run build' first");
  process.exit(2);
}
const pki = await makePki();
const server = await mutualTlsServer(pki);
try {
  const all = cases(pki.dir, pki, server);
  const medians = await measure(all, join(pki.dir, "cpu.txt"));
  const rows = all.map((c) => {
    const m = medians.get(c.name)!;
    const ref = c.reference === undefined ? undefined : medians.get(c.reference)!;
    return [
      c.name,
      fmt(m.wallMs, 1),
      ref === undefined ? "" : fmtRatio(m.wallMs, ref.wallMs),
      fmt(m.cpuMs, 1),
      ref === undefined ? "" : fmtRatio(m.cpuMs, ref.cpuMs),
      c.reference ?? "",
      verdict(c, m.wallMs, ref === undefined ? Number.NaN : m.wallMs / ref.wallMs),
    ];
  });
  console.log(`\nhsmkit start-up, whole processes, medians of ${RUNS} runs each (ms; CPU = user + system)\n`);
  console.log(
    formatTable(
      [
        { title: "command" },
        { title: "wall ms", align: "right" },
        { title: "ratio", align: "right" },
        { title: "CPU ms", align: "right" },
        { title: "ratio", align: "right" },
        { title: "against" },
        { title: "target (wall)" },
      ],
      rows,
    ),
  );
} finally {
  await server.close();
}
