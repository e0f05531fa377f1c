/**
 * The small SQL interface the KMS store is written against, so that one set of repositories
 * (store.ts, audit.ts) runs on SQLite and on PostgreSQL. SQL is written once, portable, with
 * `$1, $2, ...` placeholders; each driver translates what differs (placeholders, BLOB/BYTEA,
 * integer types, how a transaction takes its lock). DDL that differs lives in the migrations,
 * which may give one statement per dialect (migrations.ts).
 */

/** The two databases a store can live in. */
export type Dialect = "sqlite" | "postgres";

/** A value bound to a placeholder or read from a column. */
export type SqlValue = string | number | Buffer | null;

/** Runs statements: a driver outside a transaction, or the transaction's own connection. */
export interface SqlExecutor {
  /** The rows of a SELECT (or of a statement with RETURNING). */
  query<Row>(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
  /** Runs a statement; resolves to the number of rows it changed. */
  exec(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** Runs several `;`-separated statements without parameters (migrations). */
  script(sql: string): Promise<void>;
}

/** One database connection (SQLite) or pool of them (PostgreSQL). */
export interface SqlDriver extends SqlExecutor {
  readonly dialect: Dialect;
  /**
   * Runs `work` in one transaction that holds the write lock named `lock` from its first
   * statement to its commit: on SQLite the database's write lock (BEGIN IMMEDIATE), on
   * PostgreSQL a transaction-scoped advisory lock. Transactions naming the same lock are
   * serialised across every process sharing the database. Rolled back if `work` throws.
   * `work` must only run statements: anything slow inside holds the lock for every node.
   */
  transaction<T>(lock: string, work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Where the data lives, without credentials (for messages). */
  readonly description: string;
  /** Closes the connection or pool. */
  close(): Promise<void>;
}

/** A store that cannot be opened or used: unreachable, unknown schema, bad location. */
export class StoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreError";
  }
}

/** The transaction locks the store takes (one name each, so they are easy to audit). */
export const LOCKS = {
  /** Schema migrations. */
  schema: "hsmkit.kms.schema",
  /** Every write other than the audit chain and the schema. */
  data: "hsmkit.kms.data",
  /** The audit chain head: one appender at a time across all nodes. */
  audit: "hsmkit.kms.audit",
} as const;
