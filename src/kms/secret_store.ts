/**
 * Where secrets live: a small asynchronous repository interface (so the storage can move to
 * another database without touching its callers) and its SQLite implementation over the
 * KMS's store. Values are stored sealed (secrets.ts seals them); this file never sees a
 * plaintext. The reads GetSecretValue makes are memoised until the database changes, in this
 * process or another (read_cache.ts), so a read costs no SELECT while nothing changes.
 */
import { ChangeWatch, Memo } from "./read_cache.ts";
import type { Store } from "./store.ts";

/** The stage the newest value carries. */
export const CURRENT_STAGE = "ACSCurrent";
/** The stage the value before it carries. */
export const PREVIOUS_STAGE = "ACSPrevious";

/** A secret as listed: no value. */
export interface SecretRecord {
  readonly name: string;
  /** The AES KMS key that seals its values, or null for the instance's own secrets key. */
  readonly keyId: string | null;
  /** `text` (UTF-8) or `binary` (returned base64). */
  readonly dataType: "text" | "binary";
  readonly description: string;
  readonly createdAt: string;
}

/** One stored value of a secret, sealed. */
export interface SecretVersionRecord {
  readonly secretName: string;
  readonly versionId: string;
  readonly createdAt: string;
  /** The KMS key version that sealed it (null with the instance's secrets key). */
  readonly keyVersionId: string | null;
  readonly iv: Buffer;
  /** AES-256-GCM ciphertext || tag. */
  readonly sealed: Buffer;
  /** Version stages it carries (ACSCurrent, ACSPrevious), maybe none. */
  readonly stages: readonly string[];
}

/** Secret storage. Every write is atomic. */
export interface SecretRepository {
  /** Stores a new secret with its first value (ACSCurrent); false if the name is taken. */
  create(secret: SecretRecord, first: SecretVersionRecord): Promise<boolean>;
  /**
   * Adds a value that becomes ACSCurrent; the former current becomes ACSPrevious and the
   * former previous keeps its data but no stage. False if the version id is taken.
   */
  putVersion(version: SecretVersionRecord): Promise<boolean>;
  /** A secret by name. */
  find(name: string): Promise<SecretRecord | undefined>;
  /** A value by version id, or by the stage it carries. */
  version(
    name: string,
    by: { versionId: string } | { stage: string },
  ): Promise<SecretVersionRecord | undefined>;
  /** A secret's values, newest first. */
  versions(name: string): Promise<SecretVersionRecord[]>;
  /** All secrets by name. */
  list(): Promise<SecretRecord[]>;
  /** Deletes a secret and every value; false if there was none. */
  delete(name: string): Promise<boolean>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS secrets (
  name TEXT PRIMARY KEY, key_id TEXT, data_type TEXT NOT NULL, description TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secret_versions (
  secret_name TEXT NOT NULL REFERENCES secrets(name) ON DELETE CASCADE, version_id TEXT NOT NULL,
  created_at TEXT NOT NULL, key_version_id TEXT, iv BLOB NOT NULL, sealed BLOB NOT NULL,
  PRIMARY KEY (secret_name, version_id));
CREATE TABLE IF NOT EXISTS secret_stages (
  secret_name TEXT NOT NULL, stage TEXT NOT NULL, version_id TEXT NOT NULL,
  PRIMARY KEY (secret_name, stage),
  FOREIGN KEY (secret_name, version_id) REFERENCES secret_versions(secret_name, version_id) ON DELETE CASCADE);
`;

interface SecretRow {
  name: string;
  key_id: string | null;
  data_type: string;
  description: string;
  created_at: string;
}
interface VersionRow {
  secret_name: string;
  version_id: string;
  created_at: string;
  key_version_id: string | null;
  iv: Buffer;
  sealed: Buffer;
  stages: string | null;
}

const toSecret = (r: SecretRow): SecretRecord => ({
  name: r.name,
  keyId: r.key_id,
  dataType: r.data_type === "binary" ? "binary" : "text",
  description: r.description,
  createdAt: r.created_at,
});
const toVersion = (r: VersionRow): SecretVersionRecord => ({
  secretName: r.secret_name,
  versionId: r.version_id,
  createdAt: r.created_at,
  keyVersionId: r.key_version_id,
  iv: r.iv,
  sealed: r.sealed,
  stages: r.stages ? r.stages.split(",").sort() : [],
});

const VERSION_SELECT = `SELECT v.*, (SELECT group_concat(stage) FROM secret_stages s
  WHERE s.secret_name = v.secret_name AND s.version_id = v.version_id) AS stages FROM secret_versions v`;

/** The repository in the KMS's SQLite file. */
export class SqliteSecretRepository implements SecretRepository {
  private readonly watch: ChangeWatch;
  private readonly secrets: Memo<SecretRecord>;
  private readonly versionMemo: Memo<SecretVersionRecord>;

  constructor(private readonly store: Store) {
    store.db.exec(SCHEMA);
    this.watch = new ChangeWatch(store.db);
    this.secrets = new Memo(this.watch);
    this.versionMemo = new Memo(this.watch);
  }

  async create(secret: SecretRecord, first: SecretVersionRecord): Promise<boolean> {
    const created = this.store.db
      .transaction(() => {
        const inserted = this.store
          .statement("INSERT OR IGNORE INTO secrets VALUES (?, ?, ?, ?, ?)")
          .run(secret.name, secret.keyId, secret.dataType, secret.description, secret.createdAt).changes;
        if (inserted !== 1) return false;
        this.insertCurrent(first);
        return true;
      })
      .immediate();
    this.watch.localWrite();
    return created;
  }

  async putVersion(version: SecretVersionRecord): Promise<boolean> {
    const added = this.store.db
      .transaction(() => {
        const taken = this.store
          .statement("SELECT 1 FROM secret_versions WHERE secret_name = ? AND version_id = ?")
          .get(version.secretName, version.versionId);
        if (taken !== undefined) return false;
        const name = version.secretName;
        this.store
          .statement("DELETE FROM secret_stages WHERE secret_name = ? AND stage = ?")
          .run(name, PREVIOUS_STAGE);
        this.store
          .statement("UPDATE secret_stages SET stage = ? WHERE secret_name = ? AND stage = ?")
          .run(PREVIOUS_STAGE, name, CURRENT_STAGE);
        this.insertCurrent(version);
        return true;
      })
      .immediate();
    this.watch.localWrite();
    return added;
  }

  private insertCurrent(v: SecretVersionRecord): void {
    this.store
      .statement("INSERT INTO secret_versions VALUES (?, ?, ?, ?, ?, ?)")
      .run(v.secretName, v.versionId, v.createdAt, v.keyVersionId, v.iv, v.sealed);
    this.store
      .statement("INSERT INTO secret_stages (secret_name, stage, version_id) VALUES (?, ?, ?)")
      .run(v.secretName, CURRENT_STAGE, v.versionId);
  }

  async find(name: string): Promise<SecretRecord | undefined> {
    return this.secrets.get(name, () => {
      const row = this.store.statement("SELECT * FROM secrets WHERE name = ?").get(name) as
        | SecretRow
        | undefined;
      return row ? toSecret(row) : undefined;
    });
  }

  async version(
    name: string,
    by: { versionId: string } | { stage: string },
  ): Promise<SecretVersionRecord | undefined> {
    const memoKey = "versionId" in by ? `id\0${name}\0${by.versionId}` : `stage\0${name}\0${by.stage}`;
    return this.versionMemo.get(memoKey, () => {
      const row = (
        "versionId" in by
          ? this.store
              .statement(`${VERSION_SELECT} WHERE v.secret_name = ? AND v.version_id = ?`)
              .get(name, by.versionId)
          : this.store
              .statement(
                `${VERSION_SELECT} JOIN secret_stages t ON t.secret_name = v.secret_name AND t.version_id = v.version_id WHERE t.secret_name = ? AND t.stage = ?`,
              )
              .get(name, by.stage)
      ) as VersionRow | undefined;
      return row ? toVersion(row) : undefined;
    });
  }

  async versions(name: string): Promise<SecretVersionRecord[]> {
    return (
      this.store
        .statement(`${VERSION_SELECT} WHERE v.secret_name = ? ORDER BY v.created_at DESC, v.rowid DESC`)
        .all(name) as VersionRow[]
    ).map(toVersion);
  }

  async list(): Promise<SecretRecord[]> {
    return (this.store.statement("SELECT * FROM secrets ORDER BY name").all() as SecretRow[]).map(toSecret);
  }

  async delete(name: string): Promise<boolean> {
    const changes = this.store.statement("DELETE FROM secrets WHERE name = ?").run(name).changes;
    this.watch.localWrite();
    return changes === 1;
  }
}
