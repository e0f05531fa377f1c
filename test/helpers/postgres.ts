/**
 * A real PostgreSQL server for tests (Debian's `postgresql` package): `initdb` on a temporary
 * directory, then `postgres` in the foreground on a free port of 127.0.0.1 with its socket in
 * that directory, trust authentication for local connections only. When the tests run as root
 * the server runs as the unprivileged `postgres` user (PostgreSQL refuses root). One cluster
 * per test file (initdb costs seconds); {@link PostgresServer.createDatabase} gives each test
 * case a fresh database. `stop()` (also run when the test process exits) ends it even when a
 * test failed; `restart()` stops and starts it again on the same port, for failure tests.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort, waitForOutput } from "./net.ts";
import { ManagedProcess, runChecked, waitUntil } from "./process.ts";

/** Where Debian installs the server binaries. */
export const POSTGRES_BIN = "/usr/lib/postgresql/15/bin";

const SUPERUSER = "postgres";

/** True when the PostgreSQL server binaries are installed (scripts/setup.sh installs them). */
export function postgresAvailable(): boolean {
  return existsSync(join(POSTGRES_BIN, "postgres")) && existsSync(join(POSTGRES_BIN, "initdb"));
}

/** The command prefix that runs a server binary as the unprivileged user when we are root. */
function asServerUser(binary: string, args: readonly string[]): [string, string[]] {
  const path = join(POSTGRES_BIN, binary);
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", path, ...args]] : [path, [...args]];
}

/** A running PostgreSQL cluster owned by the test. */
export class PostgresServer {
  private proc: ManagedProcess | undefined;
  private databases = 0;

  private constructor(
    readonly root: string,
    readonly port: number,
  ) {}

  /** Creates a cluster in a new temporary directory and starts it. */
  static async start(): Promise<PostgresServer> {
    const root = mkdtempSync(join(tmpdir(), "hsmkit-pg-"));
    chmodSync(root, 0o755);
    const data = join(root, "data");
    const sockets = join(root, "sockets");
    for (const dir of [data, sockets]) {
      mkdirSync(dir, { mode: 0o700 });
      if (process.getuid?.() === 0) {
        const [uid, gid] = [idOf("-u"), idOf("-g")];
        chownSync(dir, uid, gid);
      }
    }
    const [cmd, args] = asServerUser("initdb", [
      "-D",
      data,
      "-U",
      SUPERUSER,
      "--auth=trust",
      "--no-sync",
      "--encoding=UTF8",
      "--locale=C",
    ]);
    await runChecked(cmd, args, { timeoutMs: 120_000 });
    const server = new PostgresServer(root, await freePort());
    try {
      await server.launch();
    } catch (err) {
      rmSync(root, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  /** The server's process id, which is also the process group of its backends. */
  get pid(): number {
    if (!this.proc) throw new Error("the PostgreSQL server is not running");
    return this.proc.pid;
  }

  /** `postgres://postgres@127.0.0.1:PORT/DATABASE`. */
  url(database: string): string {
    return `postgres://${SUPERUSER}@127.0.0.1:${this.port}/${database}`;
  }

  /** Creates an empty database with a new name; returns its URL. */
  async createDatabase(prefix = "kms"): Promise<string> {
    const name = `${prefix}_${process.pid}_${++this.databases}`;
    const client = new pg.Client({ connectionString: this.url("postgres") });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  /** Runs one statement on `database` (as the superuser) and returns its rows. */
  async query<Row>(url: string, sql: string, params: unknown[] = []): Promise<Row[]> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as Row[];
    } finally {
      await client.end();
    }
  }

  /** Stops the server (fast shutdown: open connections are cut), keeping its data. */
  async halt(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc?.running()) return;
    try {
      process.kill(-proc.pid, "SIGINT");
    } catch {
      // already gone
    }
    // Whatever is left after 10 s (it should not be) gets SIGTERM, then SIGKILL.
    await waitUntil(() => !proc.running(), 10_000);
    await proc.stop();
  }

  /** Starts the stopped server again on the same port. */
  async launch(): Promise<void> {
    const [cmd, args] = asServerUser("postgres", [
      "-D",
      join(this.root, "data"),
      "-p",
      String(this.port),
      "-k",
      join(this.root, "sockets"),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "max_connections=100",
    ]);
    this.proc = await ManagedProcess.start(cmd, args);
    await waitForOutput(this.proc, /database system is ready to accept connections/, 60_000);
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    await this.halt();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** The uid (`-u`) or gid (`-g`) of the postgres user. */
function idOf(flag: "-u" | "-g"): number {
  return Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
}
