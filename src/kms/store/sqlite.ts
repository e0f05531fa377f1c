/**
 * The SQLite driver: one better-sqlite3 connection in WAL mode. better-sqlite3 is
 * synchronous; the driver gives it the async {@link SqlDriver} shape and keeps a transaction
 * to itself: statements and transactions take the connection in turn, first come first
 * served, so while a transaction is open (its statements interleave with other work at each
 * await) nothing else runs on the connection and none sees its uncommitted writes.
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
  /** Settles when the last user of the connection queued so far is done with it. */
  private tail: Promise<void> = Promise.resolve();

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

  query<Row>(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return this.exclusive(() => this.all<Row>(sql, params));
  }

  exec(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.exclusive(() => this.run(sql, params));
  }

  /** SQLite has one write lock per database: every lock name takes it (BEGIN IMMEDIATE). */
  transaction<T>(_lock: string, work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.exclusive(() => this.inTransaction(work));
  }

  close(): Promise<void> {
    return this.exclusive(() => {
      if (this.db.open) this.db.close();
    });
  }

  /**
   * Runs `work` once every earlier caller is done with the connection, and holds it until
   * `work` settles. The turn is taken synchronously, when the call is made, so two callers
   * can never both find the connection free.
   */
  private async exclusive<T>(work: () => T | Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await previous;
      return await work();
    } finally {
      release();
    }
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

  script(sql: string): Promise<void> {
    return this.exclusive(() => {
      this.db.exec(sql);
    });
  }
}
