/**
 * What a database writer without the master key can do to a KMS data directory's SQLite file,
 * for the tests that attack access point and audit integrity: run SQL on the live file, read
 * rows, and put the audit key back under a label an earlier hsmkit used.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { KmsInstance } from "../../src/kms/instance.ts";

/** The audit table's no-delete trigger, as the migrations create it. */
const NO_DELETE_TRIGGER =
  "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'x'); END;";

/** Deletes the audit entries `where` selects (SQL over the audit table), the no-delete trigger set aside meanwhile. */
export function deleteAuditEntries(dataDir: string, where: string): void {
  tamper(dataDir, `DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE ${where}; ${NO_DELETE_TRIGGER}`);
}

/** Replaces the audit row numbered `row.seq` with `row` (every column given). */
export function putAuditRow(dataDir: string, row: Record<string, unknown>): void {
  const columns = ["seq", "time", "actor", "source", "operation", "key_id", "outcome", "request_id"];
  const all = [...columns, "detail", "prev_hash", "hash", "mac"];
  deleteAuditEntries(dataDir, `seq = ${Number(row.seq)}`);
  tamper(
    dataDir,
    `INSERT INTO audit (${all.join(", ")}) VALUES (${all.map(() => "?").join(", ")})`,
    ...all.map((c) => row[c]),
  );
}

/** Puts an access point row back as `before` was (state, revocation time, MAC): a replay. */
export function putBackAccessPointRow(dataDir: string, before: Record<string, unknown>): void {
  tamper(
    dataDir,
    "UPDATE access_points SET state = ?, revoked_at = ?, mac = ? WHERE id = ?",
    before.state,
    before.revoked_at,
    before.mac,
    before.id,
  );
}

/**
 * Runs SQL on the data directory's live database, then bumps the change counter as the writer
 * would so that running nodes look again. Text with several statements and no parameters runs
 * as a script.
 */
export function tamper(dataDir: string, sql: string, ...params: unknown[]): void {
  const db = new Database(join(dataDir, "kms.db"));
  try {
    if (params.length === 0 && sql.includes(";")) db.exec(sql);
    else db.prepare(sql).run(...params);
    db.prepare("UPDATE changes SET counter = counter + 1 WHERE id = 1").run();
  } finally {
    db.close();
  }
}

/** The first row a query returns from the data directory's database (an empty object when none). */
export function readRow(dataDir: string, sql: string, ...params: unknown[]): Record<string, unknown> {
  const db = new Database(join(dataDir, "kms.db"));
  try {
    return (db.prepare(sql).get(...params) as Record<string, unknown> | undefined) ?? {};
  } finally {
    db.close();
  }
}

/** A row of `access_points` by id, as stored. */
export const accessPointRow = (dataDir: string, id: string) =>
  readRow(dataDir, "SELECT * FROM access_points WHERE id = ?", id);

/**
 * Stores the audit key wrapped under `label` (an earlier version's) instead of today's, as that
 * version left it; returns the new key record. The instance is opened and closed for this.
 */
export async function rewrapAuditKey(dataDir: string, passphrase: string, label: string): Promise<Buffer> {
  const instance = await KmsInstance.open({ dataDir, passphrase });
  try {
    const raw = await instance.master.unwrap(
      (await instance.store.getMeta("audit.key")) as Buffer,
      "audit-mac-key v3",
    );
    const record = await instance.master.wrap(raw, label);
    raw.fill(0);
    await instance.store.setMeta("audit.key", record);
    return record;
  } finally {
    await instance.close();
  }
}

/**
 * Turns `dataDir` into what the version before access point MACs left: no mac column, migrations
 * 11 and up not run, the audit key under its former label. Returns that former key record.
 */
export async function makePreMacStore(dataDir: string, passphrase: string): Promise<Buffer> {
  const oldKey = await rewrapAuditKey(dataDir, passphrase, "audit-mac-key v2");
  tamper(dataDir, "ALTER TABLE access_points DROP COLUMN mac");
  tamper(dataDir, "DROP INDEX audit_operation_seq");
  tamper(dataDir, "DROP INDEX audit_key_seq");
  tamper(dataDir, "DELETE FROM schema_migrations WHERE version >= 11");
  return oldKey;
}
