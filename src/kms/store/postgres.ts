/**
 * The PostgreSQL driver: a node-postgres pool. Every wait is bounded (connecting, each
 * statement on the server, each query on the client), so a node whose database is gone
 * fails its requests within seconds instead of hanging, and the pool replaces broken
 * connections by itself once the database is back. Transactions take a transaction-scoped
 * advisory lock named by the caller, released by COMMIT or ROLLBACK (or the connection's end).
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { type SqlDriver, type SqlExecutor, type SqlValue, StoreError } from "./driver.ts";

/** Options of {@link PostgresDriver}, read from the store URL's query (seconds). */
export interface PostgresTimeouts {
  /** Seconds to open a connection; default 5. */
  readonly connectTimeout: number;
  /** Seconds any statement (lock waits included) may run; default 10. */
  readonly statementTimeout: number;
}

const INT8_OID = 20;

/** BIGINT columns (counts, sequence numbers) as numbers: every value we store is far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

/** The advisory lock key of a lock name: 64 bits of its SHA-256, as PostgreSQL's bigint. */
function lockKey(name: string): string {
  return createHash("sha256").update(name).digest().readBigInt64BE(0).toString();
}

const statementNames = new Map<string, string>();

/**
 * A named statement: each connection parses and plans it once, then only binds and runs it.
 * The store's SQL is a small fixed set, so the per-connection statement cache stays small.
 */
function prepared(text: string, params: readonly SqlValue[]): pg.QueryConfig<SqlValue[]> {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `hsmkit_${createHash("sha256").update(text).digest("hex").slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return { name, text, values: params as SqlValue[] };
}

/** Splits `postgres://...?connect_timeout=S&statement_timeout=S` into the pg URL and the timeouts. */
export function parsePostgresUrl(url: string): { connectionString: string; timeouts: PostgresTimeouts } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreError("the store is postgres://USER@HOST:PORT/DATABASE");
  }
  const seconds = (name: string, fallback: number): number => {
    const text = parsed.searchParams.get(name);
    parsed.searchParams.delete(name);
    if (text === null) return fallback;
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0 || n > 3600)
      throw new StoreError(`the store's ${name} is seconds, 0 < S <= 3600, got "${text}"`);
    return n;
  };
  const timeouts = {
    connectTimeout: seconds("connect_timeout", 5),
    statementTimeout: seconds("statement_timeout", 10),
  };
  return { connectionString: parsed.toString(), timeouts };
}

/** Where a postgres URL points, without its password. */
function describe(url: string): string {
  const u = new URL(url);
  u.password = "";
  u.search = "";
  return u.toString();
}

/** The PostgreSQL implementation of {@link SqlDriver}. */
export class PostgresDriver implements SqlDriver {
  readonly dialect = "postgres" as const;
  readonly description: string;
  private readonly pool: pg.Pool;

  /** A pool of at most `maxConnections` connections to the database at `url`. */
  constructor(url: string, maxConnections = 10) {
    const { connectionString, timeouts } = parsePostgresUrl(url);
    this.description = describe(connectionString);
    const statementMs = Math.round(timeouts.statementTimeout * 1000);
    this.pool = new pg.Pool({
      connectionString,
      max: maxConnections,
      connectionTimeoutMillis: Math.round(timeouts.connectTimeout * 1000),
      statement_timeout: statementMs,
      // The client-side bound also covers a server that stopped answering altogether.
      query_timeout: statementMs + 2000,
      idleTimeoutMillis: 30_000,
      types,
    });
    // An idle connection the server dropped reports here; the pool discards it and the next
    // query opens a new one. Without a listener the error would end the process.
    this.pool.on("error", () => undefined);
  }

  async query<Row>(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return (await this.pool.query(prepared(sql, params))).rows as Row[];
  }

  async exec(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await this.pool.query(prepared(sql, params))).rowCount ?? 0;
  }

  async script(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(lock: string, work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    const tx: SqlExecutor = {
      query: async <Row>(sql: string, params: readonly SqlValue[] = []) =>
        (await client.query(prepared(sql, params))).rows as Row[],
      exec: async (sql: string, params: readonly SqlValue[] = []) =>
        (await client.query(prepared(sql, params))).rowCount ?? 0,
      script: async (sql: string) => {
        await client.query(sql);
      },
    };
    let broken: Error | undefined;
    // The pool stops listening for a checked-out connection's errors; a connection lost
    // between two statements would otherwise end the process. The next statement fails.
    const lost = (err: Error): void => {
      broken = err;
    };
    client.on("error", lost);
    try {
      // One round trip: the key is our own decimal number, never caller input.
      await client.query(`BEGIN; SELECT pg_advisory_xact_lock(${lockKey(lock)})`);
      const result = await work(tx);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = err as Error; // the connection is unusable: the pool must not hand it out again
      }
      throw err;
    } finally {
      client.removeListener("error", lost);
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
