/**
 * The store's schema, as numbered migrations that hsmkit runs itself when a store is opened:
 * under the schema lock (one node migrates, the others wait and then find nothing to do), each
 * in the same transaction as the row recording it, so a crash leaves a migration either
 * applied and recorded or neither. A node refuses a store whose schema is newer than the
 * newest migration it knows: it would not know what the newer columns mean.
 *
 * To add a table or a column: append a {@link Migration} with a version above every other
 * (never edit one that has shipped; {@link migrate} runs only versions above the store's
 * newest, so a free number below it would never run on a store in use) whose SQL is
 * portable, or give `sqlite` and `postgres` their own text where the dialects differ (BLOB vs
 * BYTEA, triggers, INTEGER vs BIGINT for counts that may pass 2^31). Then write the queries in store.ts (or a repository beside it) with `$1`
 * placeholders. Version 10 is the secrets tables (issue 11 §2 reserved 10 and up for them),
 * 11 the access point MACs, 12 the index the request path reads revocations by, 13 the index a
 * secret write finds its secret's newest entry by.
 */
import { type Dialect, LOCKS, type SqlDriver, StoreError } from "./driver.ts";

/** One schema step. */
export interface Migration {
  readonly version: number;
  readonly description: string;
  /** Portable SQL, or one text per dialect. Several statements separated by `;`. */
  readonly sql: string | Readonly<Record<Dialect, string>>;
}

const SQLITE_BASE = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY, spec TEXT NOT NULL, usage TEXT NOT NULL, state TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, deletion_date TEXT);
CREATE TABLE IF NOT EXISTS key_versions (
  id TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES keys(id), seq INTEGER NOT NULL,
  created_at TEXT NOT NULL, public_der BLOB, wrapped BLOB NOT NULL, UNIQUE (key_id, seq));
CREATE TABLE IF NOT EXISTS aliases (name TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES keys(id));
CREATE TABLE IF NOT EXISTS access_points (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, public_der BLOB NOT NULL, policy TEXT NOT NULL,
  state TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL,
  operation TEXT NOT NULL, key_id TEXT NOT NULL, outcome TEXT NOT NULL, request_id TEXT NOT NULL,
  detail TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL, mac BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`;

const POSTGRES_BASE = `
CREATE TABLE meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE keys (
  id TEXT PRIMARY KEY, spec TEXT NOT NULL, usage TEXT NOT NULL, state TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, deletion_date TEXT);
CREATE TABLE key_versions (
  id TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES keys(id), seq INTEGER NOT NULL,
  created_at TEXT NOT NULL, public_der BYTEA, wrapped BYTEA NOT NULL, UNIQUE (key_id, seq));
CREATE TABLE aliases (name TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES keys(id));
CREATE TABLE access_points (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, public_der BYTEA NOT NULL, policy TEXT NOT NULL,
  state TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE audit (
  seq BIGINT PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL,
  operation TEXT NOT NULL, key_id TEXT NOT NULL, outcome TEXT NOT NULL, request_id TEXT NOT NULL,
  detail TEXT NOT NULL, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL, mac BYTEA NOT NULL);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
`;

/** Every migration, oldest first. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "keys, versions, aliases, access points, metadata, the audit log",
    // IF NOT EXISTS on SQLite: data directories from before migrations already have these.
    sql: { sqlite: SQLITE_BASE, postgres: POSTGRES_BASE },
  },
  {
    version: 2,
    description: "a change counter for the cached tables, bumped by every write to them",
    sql: `CREATE TABLE changes (id INTEGER PRIMARY KEY, counter BIGINT NOT NULL);
INSERT INTO changes (id, counter) VALUES (1, 0);`,
  },
  {
    version: 10,
    description: "secrets, their sealed versions and version stages",
    sql: { sqlite: secretTables("BLOB"), postgres: secretTables("BYTEA") },
  },
  {
    // 11, not a free number below 10: stores in use are at 10 and would never run a lower one.
    version: 11,
    description: "a MAC over each access point row (NULL in rows written before it: sealed once on open)",
    sql: {
      sqlite: "ALTER TABLE access_points ADD COLUMN mac BLOB",
      postgres: "ALTER TABLE access_points ADD COLUMN mac BYTEA",
    },
  },
  {
    // The request path reads the revocations after a point (access_point_store.ts) on every
    // change: without it, each such read scans the whole log.
    version: 12,
    description: "an index of the audit log by operation and number",
    sql: "CREATE INDEX audit_operation_seq ON audit (operation, seq)",
  },
  {
    // A secret write reads the newest entry of that secret under the audit lock (secret_log.ts).
    // It also moves the schema past what nodes that audited secret writes in a second step
    // know, so they refuse the store instead of writing unaudited values next to newer nodes.
    version: 13,
    description: "an index of the audit log by key (or secret) and number",
    sql: "CREATE INDEX audit_key_seq ON audit (key_id, seq)",
  },
];

/** The secrets tables; only the binary column type differs between the dialects. */
function secretTables(binary: "BLOB" | "BYTEA"): string {
  return `
CREATE TABLE secrets (
  name TEXT PRIMARY KEY, key_id TEXT, data_type TEXT NOT NULL, description TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE secret_versions (
  secret_name TEXT NOT NULL REFERENCES secrets(name) ON DELETE CASCADE, version_id TEXT NOT NULL,
  created_at TEXT NOT NULL, key_version_id TEXT, iv ${binary} NOT NULL, sealed ${binary} NOT NULL,
  PRIMARY KEY (secret_name, version_id));
CREATE TABLE secret_stages (
  secret_name TEXT NOT NULL, stage TEXT NOT NULL, version_id TEXT NOT NULL,
  PRIMARY KEY (secret_name, stage),
  FOREIGN KEY (secret_name, version_id) REFERENCES secret_versions (secret_name, version_id) ON DELETE CASCADE);
`;
}

const LEDGER = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)`;

/** Brings the schema up to `migrations`' newest version, or refuses a newer one. */
export async function migrate(
  driver: SqlDriver,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<void> {
  const known = Math.max(...migrations.map((m) => m.version));
  await driver.transaction(LOCKS.schema, async (tx) => {
    await tx.script(LEDGER);
    const rows = await tx.query<{ top: number | null }>("SELECT MAX(version) AS top FROM schema_migrations");
    const current = rows[0]?.top ?? 0;
    if (current > known) {
      throw new StoreError(
        `the store's schema is version ${current}, newer than this hsmkit knows (${known}): upgrade hsmkit`,
      );
    }
    for (const m of migrations) {
      if (m.version <= current) continue;
      await tx.script(typeof m.sql === "string" ? m.sql : m.sql[driver.dialect]);
      await tx.exec("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)", [
        m.version,
        m.description,
        new Date().toISOString(),
      ]);
    }
  });
}
