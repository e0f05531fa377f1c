/**
 * The SQLite driver: one better-sqlite3 connection in WAL mode. better-sqlite3 is
 * synchronous; the driver gives it the async {@link SqlDriver} shape and keeps a transaction
 * to itself: while one is open (its statements interleave with other work at each await),
 * other statements on the connection wait for it, so none sees its uncommitted writes.
 */
import { closeSync, existsSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import type { SqlDriver, SqlExecutor, SqlValue } from "./driver.ts";

/** A statement compiled once, with `$N` placeholders turned into SQLite's `?` in order. */
interface Compiled {
  readonly statement: Database.Statement;
  /** For each `?`, the index of the parameter it takes. */
  readonly order: readonly number[];
}

/** The SQLite implementation of {@link SqlDriver}. */
export class SqliteDriver implements SqlDriver {
  readonly dialect = "sqlite" as const;
  readonly description: string;
  private readonly db: Database.Database;
  private readonly compiled = new Map<string, Compiled>();
  private readonly direct: SqlExecutor = {
    query: async <Row>(sql: string, params: readonly SqlValue[] = []) => this.all<Row>(sql, params),
    exec: async (sql: string, params: readonly SqlValue[] = []) => this.run(sql, params),
    script: async (sql: string) => {
      this.db.exec(sql);
    },
  };
  private open?: Promise<unknown> | undefined;

  /** Opens (creating, mode 0600) the database file at `path`. */
  constructor(path: string) {
    // Create the file 0600 ourselves: SQLite would use the umask, and the WAL inherits the mode.
    if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
    this.description = path;
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    // NORMAL in WAL mode: a commit is in the WAL (OS cache) before we answer, so a killed
    // process loses nothing it acknowledged; only a power cut can lose the last commits.
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 10000");
    this.db.pragma("foreign_keys = ON");
  }

  async query<Row>(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    await this.idle();
    return this.all<Row>(sql, params);
  }

  async exec(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    await this.idle();
    return this.run(sql, params);
  }

  /** SQLite has one write lock per database: every lock name takes it (BEGIN IMMEDIATE). */
  async transaction<T>(_lock: string, work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    await this.idle();
    const running = this.inTransaction(work);
    this.open = running;
    try {
      return await running;
    } finally {
      if (this.open === running) this.open = undefined;
    }
  }

  async close(): Promise<void> {
    await this.idle();
    if (this.db.open) this.db.close();
  }

  private async inTransaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = await work(this.direct);
      this.db.exec("COMMIT");
      return result;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw err;
    }
  }

  /** Waits until no transaction is open (checked and taken in one synchronous step by callers). */
  private async idle(): Promise<void> {
    while (this.open) await this.open.catch(() => undefined);
  }

  private all<Row>(sql: string, params: readonly SqlValue[]): Row[] {
    const { statement, order } = this.compile(sql);
    const bound = order.map((i) => params[i]);
    if (!statement.reader) {
      statement.run(...bound);
      return [];
    }
    return statement.all(...bound) as Row[];
  }

  private run(sql: string, params: readonly SqlValue[]): number {
    const { statement, order } = this.compile(sql);
    return statement.run(...order.map((i) => params[i])).changes;
  }

  private compile(sql: string): Compiled {
    let hit = this.compiled.get(sql);
    if (!hit) {
      const order: number[] = [];
      const text = sql.replace(/\$(\d+)/g, (_, n: string) => {
        order.push(Number(n) - 1);
        return "?";
      });
      hit = { statement: this.db.prepare(text), order };
      this.compiled.set(sql, hit);
    }
    return hit;
  }

  async script(sql: string): Promise<void> {
    await this.idle();
    this.db.exec(sql);
  }
}
