/**
 * The KMS on PostgreSQL (issue 11 §3): one, two and three `hsmkit kms serve` nodes on one
 * PostgreSQL server against one node on SQLite (and one on PostgreSQL), Sign with RSA-2048 PSS
 * and EC P-256 and GetSecretValue at concurrency 1, 16 and 64, the client spreading requests over the nodes in
 * turn (a load balancer's round robin): ops/s, p50/p99, CPU ms per operation of the nodes and
 * of the database server. Then a node is killed (SIGKILL) halfway through a run at concurrency
 * 16 whose client retries a failed request on the next node: failed requests are counted.
 * Everything shares this machine's cores: the client (which also signs every request, the
 * protocol's authentication), the nodes and PostgreSQL.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { adminCreateAccessPoint, adminCreateKey, adminCreateSecret } from "../src/kms/admin.ts";
import { KmsClient, KmsRequestError } from "../src/kms/client.ts";
import { KmsInstance } from "../src/kms/instance.ts";
import { PostgresServer } from "../test/helpers/postgres.ts";
import {
  type KmsNode,
  load,
  processCpuSeconds,
  startKmsNode,
  stopKmsNode,
  treeCpuSeconds,
} from "./kms_lib.ts";
import { fmt, formatTable } from "./lib.ts";

interface Setup {
  readonly label: string;
  readonly nodes: number;
  readonly postgres: boolean;
}

const SETUPS: readonly Setup[] = [
  { label: "SQLite, 1 node", nodes: 1, postgres: false },
  { label: "PostgreSQL, 1 node", nodes: 1, postgres: true },
  { label: "PostgreSQL, 2 nodes", nodes: 2, postgres: true },
  { label: "PostgreSQL, 3 nodes", nodes: 3, postgres: true },
];

const CONCURRENCY = [1, 16, 64];
const message = Buffer.alloc(1024, 7);

/** A running setup: nodes, one client per node, the keys. */
interface Running {
  readonly nodes: KmsNode[];
  readonly clients: KmsClient[];
  readonly keys: { readonly rsa: string; readonly ec: string };
}

async function startSetup(
  setup: Setup,
  dir: string,
  pg: PostgresServer,
  passphrase: string,
): Promise<Running> {
  const base = join(dir, setup.label.replace(/[^A-Za-z0-9]+/g, "-"));
  const nodeDirs = Array.from({ length: setup.nodes }, (_, i) => join(base, `node${i}`));
  for (const d of nodeDirs) mkdirSync(d, { recursive: true });
  const url = setup.postgres ? await pg.createDatabase("bench") : undefined;
  const where = url === undefined ? {} : { store: url };
  const instance = await KmsInstance.open({
    dataDir: nodeDirs[0] as string,
    ...where,
    create: true,
    passphrase,
  });
  const rsa = (await adminCreateKey(instance, "RSA_2048", "SIGN/VERIFY")).id;
  const ec = (await adminCreateKey(instance, "EC_P256", "SIGN/VERIFY")).id;
  await adminCreateSecret(instance, { name: "db-password", value: Buffer.from("correct horse battery") });
  const ap = await adminCreateAccessPoint(instance, {
    name: "bench",
    keys: "*",
    secrets: "*",
    outDir: join(base, "ap"),
  });
  await instance.close();
  const storeArgs = url === undefined ? [] : ["--store", url];
  const nodes = await Promise.all(
    nodeDirs.map((d) => startKmsNode(["--data", d, ...storeArgs], { HSMKIT_KMS_PASSPHRASE: passphrase })),
  );
  const clients = nodes.map(
    (node, i) =>
      new KmsClient({
        endpoint: node.endpoint,
        clientKeyFile: ap.clientKeyFile,
        passwordFile: ap.passwordFile,
        caFilePath: join(nodeDirs[i] as string, "ca.pem"),
        maxSockets: 64,
        maxAttempts: 1,
      }),
  );
  return { nodes, clients, keys: { rsa, ec } };
}

/** One request of a measured operation, made through the given node's client. */
type Call = (client: KmsClient) => Promise<unknown>;

/** The operations measured on every setup. */
function operations(keys: Running["keys"]): [string, Call][] {
  return [
    ["RSA-2048 PSS", (c) => c.sign({ keyId: keys.rsa, algorithm: "RSA_PSS_SHA_256", message })],
    ["EC P-256", (c) => c.sign({ keyId: keys.ec, algorithm: "ECDSA_SHA_256", message })],
    ["GetSecretValue", (c) => c.getSecretValue({ secretName: "db-password" })],
  ];
}

/** Calls through the nodes in turn; a request that fails for want of a node is retried on the next one. */
function roundRobin(clients: readonly KmsClient[], call: Call) {
  let next = 0;
  return async () => {
    const first = next++;
    let lastError: unknown;
    for (let k = 0; k < clients.length; k++) {
      try {
        return await call(clients[(first + k) % clients.length] as KmsClient);
      } catch (err) {
        if (err instanceof KmsRequestError && !err.retryable) throw err;
        lastError = err;
      }
    }
    throw lastError;
  };
}

const nodesCpu = (nodes: readonly KmsNode[]) =>
  nodes.reduce((t, n) => t + processCpuSeconds(n.child.pid ?? 0), 0);

/** Runs the cluster figures; prints one table and the targets. */
export async function clusterBenchmark(dir: string, seconds: number, passphrase: string): Promise<void> {
  const pg = await PostgresServer.start();
  const rows: string[][] = [];
  const rsaCpu = new Map<string, number>();
  const secretP99 = new Map<string, number>();
  let killRun: { failed: number; opsPerSec: number } | undefined;
  try {
    for (const setup of SETUPS) {
      const running = await startSetup(setup, dir, pg, passphrase);
      try {
        for (const [label, call] of operations(running.keys)) {
          for (const concurrency of CONCURRENCY) {
            const node0 = nodesCpu(running.nodes);
            const db0 = setup.postgres ? treeCpuSeconds(pg.pid) : 0;
            const stats = await load(concurrency, seconds, roundRobin(running.clients, call));
            const ops = stats.opsPerSec * seconds;
            const nodeMs = ((nodesCpu(running.nodes) - node0) * 1000) / ops;
            const dbMs = setup.postgres ? ((treeCpuSeconds(pg.pid) - db0) * 1000) / ops : 0;
            if (label === "RSA-2048 PSS" && concurrency === 16) rsaCpu.set(setup.label, nodeMs + dbMs);
            if (label === "GetSecretValue" && concurrency === 16) secretP99.set(setup.label, stats.p99);
            rows.push([
              setup.label,
              label,
              String(concurrency),
              fmt(stats.opsPerSec),
              fmt(stats.p50),
              fmt(stats.p99),
              fmt(nodeMs),
              setup.postgres ? fmt(dbMs) : "-",
              String(stats.failed),
            ]);
          }
        }
        if (setup.postgres && setup.nodes === 2) killRun = await nodeKillRun(running, seconds);
      } finally {
        for (const c of running.clients) c.close();
        await Promise.all(running.nodes.map(stopKmsNode));
      }
    }
  } finally {
    await pg.stop();
  }
  printResults(rows, rsaCpu, secretP99, killRun, seconds);
}

/** Concurrency 16 over two nodes, the first SIGKILLed halfway; the client retries on the other. */
async function nodeKillRun(
  running: Running,
  seconds: number,
): Promise<{ failed: number; opsPerSec: number }> {
  const victim = running.nodes[0] as KmsNode;
  const timer = setTimeout(() => victim.child.kill("SIGKILL"), 500 + (seconds * 1000) / 2);
  try {
    const stats = await load(
      16,
      seconds,
      roundRobin(running.clients, (c) =>
        c.sign({ keyId: running.keys.ec, algorithm: "ECDSA_SHA_256", message }),
      ),
    );
    return { failed: stats.failed, opsPerSec: stats.opsPerSec };
  } finally {
    clearTimeout(timer);
  }
}

function printResults(
  rows: string[][],
  rsaCpu: ReadonlyMap<string, number>,
  secretP99: ReadonlyMap<string, number>,
  killRun: { failed: number; opsPerSec: number } | undefined,
  seconds: number,
): void {
  console.log(
    `The KMS on PostgreSQL: Sign (1 KiB messages) and GetSecretValue through N nodes in turn, ${seconds} s per case`,
  );
  console.log(
    formatTable(
      [
        { title: "store" },
        { title: "key" },
        { title: "conc", align: "right" },
        { title: "ops/s", align: "right" },
        { title: "p50 ms", align: "right" },
        { title: "p99 ms", align: "right" },
        { title: "nodes CPU ms/op", align: "right" },
        { title: "db CPU ms/op", align: "right" },
        { title: "failed", align: "right" },
      ],
      rows,
    ),
  );
  const sqlite = rsaCpu.get("SQLite, 1 node") ?? NaN;
  const postgres = rsaCpu.get("PostgreSQL, 1 node") ?? NaN;
  const ratio = postgres / sqlite;
  console.log(
    `target: server CPU per RSA Sign (node + database, concurrency 16) on PostgreSQL <= 1.3x SQLite: ${fmt(postgres)} vs ${fmt(sqlite)} ms = ${fmt(ratio)}x ${ratio <= 1.3 ? "MET" : "NOT MET"}`,
  );
  if (killRun) {
    console.log(
      `target: zero failed requests while a node is SIGKILLed (concurrency 16, client retries on the other node): ${killRun.failed} failed, ${fmt(killRun.opsPerSec)} ops/s ${killRun.failed === 0 ? "MET" : "NOT MET"}`,
    );
  }
  for (const [setup, p99] of secretP99) {
    console.log(
      `target: GetSecretValue p99 <= 10 ms at concurrency 16, ${setup}: ${fmt(p99)} ms ${p99 <= 10 ? "MET" : "NOT MET"}`,
    );
  }
}
