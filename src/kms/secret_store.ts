/**
 * Where secrets live: a small asynchronous repository interface and its implementation in
 * the KMS's store (SQLite or PostgreSQL, the same portable SQL; the tables are migration 10).
 * Values are stored sealed (secrets.ts seals them); this file never sees a plaintext. The
 * reads GetSecretValue makes are memoised on the store's change counter, like keys and access
 * points: every write here bumps it, so a change on any node reaches every node's next request.
 */
import type { Memo } from "./read_cache.ts";
import type { SqlExecutor } from "./store/driver.ts";
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

/**
 * Secret storage. Every write is atomic; given `tx` (a transaction that bumps the change
 * counter, such as AuditLog.appendWith's), a write runs in it, so it commits with its audit
 * entry or not at all.
 */
export interface SecretRepository {
  /** Stores a new secret with its first value (ACSCurrent); false if the name is taken. */
  create(secret: SecretRecord, first: SecretVersionRecord, tx?: SqlExecutor): Promise<boolean>;
  /**
   * Adds a value that becomes ACSCurrent; the former current becomes ACSPrevious and the
   * former previous keeps its data but no stage. False if the version id is taken. With
   * `previous` (a version id, or null for none) the stage rows are rewritten from it instead
   * of shifted: the caller knows the former current from the audit log, and rows a writer
   * edited are put right.
   */
  putVersion(version: SecretVersionRecord, tx?: SqlExecutor, previous?: string | null): Promise<boolean>;
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
  delete(name: string, tx?: SqlExecutor): Promise<boolean>;
}

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
}

const SECRET_COLUMNS = "name, key_id, data_type, description, created_at";
const VERSION_COLUMNS = "secret_name, version_id, created_at, key_version_id, iv, sealed";

const toSecret = (r: SecretRow): SecretRecord => ({
  name: r.name,
  keyId: r.key_id,
  dataType: r.data_type === "binary" ? "binary" : "text",
  description: r.description,
  createdAt: r.created_at,
});

/** The repository in the KMS's store. */
export class StoreSecretRepository implements SecretRepository {
  private readonly secrets: Memo<SecretRecord>;
  private readonly versionMemo: Memo<SecretVersionRecord>;

  constructor(private readonly store: Store) {
    this.secrets = store.memo();
    this.versionMemo = store.memo();
  }

  async create(secret: SecretRecord, first: SecretVersionRecord, inTx?: SqlExecutor): Promise<boolean> {
    return this.run(inTx, async (tx) => {
      const inserted = await tx.exec(
        `INSERT INTO secrets (${SECRET_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING`,
        [secret.name, secret.keyId, secret.dataType, secret.description, secret.createdAt],
      );
      if (inserted !== 1) return false;
      await insertCurrent(tx, first);
      return true;
    });
  }

  async putVersion(
    version: SecretVersionRecord,
    inTx?: SqlExecutor,
    previous?: string | null,
  ): Promise<boolean> {
    const name = version.secretName;
    return this.run(inTx, async (tx) => {
      const taken = await tx.query(
        "SELECT 1 AS one FROM secret_versions WHERE secret_name = $1 AND version_id = $2",
        [name, version.versionId],
      );
      if (taken.length > 0) return false;
      if (previous === undefined) await shiftStages(tx, name);
      else await tx.exec("DELETE FROM secret_stages WHERE secret_name = $1", [name]);
      await insertCurrent(tx, version);
      // Only onto a version row that exists (one a writer deleted gets no stage, not an error).
      if (typeof previous === "string")
        await tx.exec(
          "INSERT INTO secret_stages (secret_name, stage, version_id) SELECT secret_name, $3, version_id FROM secret_versions WHERE secret_name = $1 AND version_id = $2",
          [name, previous, PREVIOUS_STAGE],
        );
      return true;
    });
  }

  async find(name: string): Promise<SecretRecord | undefined> {
    return this.secrets.get(name, async () => {
      const rows = await this.store.driver.query<SecretRow>(
        `SELECT ${SECRET_COLUMNS} FROM secrets WHERE name = $1`,
        [name],
      );
      return rows[0] ? toSecret(rows[0]) : undefined;
    });
  }

  async version(
    name: string,
    by: { versionId: string } | { stage: string },
  ): Promise<SecretVersionRecord | undefined> {
    const memoKey = "versionId" in by ? `id\0${name}\0${by.versionId}` : `stage\0${name}\0${by.stage}`;
    return this.versionMemo.get(memoKey, async () => {
      let versionId: string | undefined;
      if ("versionId" in by) versionId = by.versionId;
      else {
        const staged = await this.store.driver.query<{ version_id: string }>(
          "SELECT version_id FROM secret_stages WHERE secret_name = $1 AND stage = $2",
          [name, by.stage],
        );
        versionId = staged[0]?.version_id;
      }
      if (versionId === undefined) return undefined;
      const rows = await this.store.driver.query<VersionRow>(
        `SELECT ${VERSION_COLUMNS} FROM secret_versions WHERE secret_name = $1 AND version_id = $2`,
        [name, versionId],
      );
      return rows[0] ? this.withStages(rows[0]) : undefined;
    });
  }

  async versions(name: string): Promise<SecretVersionRecord[]> {
    const rows = await this.store.driver.query<VersionRow>(
      `SELECT ${VERSION_COLUMNS} FROM secret_versions WHERE secret_name = $1 ORDER BY created_at DESC, version_id`,
      [name],
    );
    return Promise.all(rows.map((r) => this.withStages(r)));
  }

  async list(): Promise<SecretRecord[]> {
    return (
      await this.store.driver.query<SecretRow>(`SELECT ${SECRET_COLUMNS} FROM secrets ORDER BY name`)
    ).map(toSecret);
  }

  async delete(name: string, inTx?: SqlExecutor): Promise<boolean> {
    return (await this.run(inTx, (tx) => tx.exec("DELETE FROM secrets WHERE name = $1", [name]))) === 1;
  }

  /** Runs `fn` in the caller's transaction, else in a write of its own (counter bumped). */
  private run<T>(tx: SqlExecutor | undefined, fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return tx ? fn(tx) : this.store.write(fn);
  }

  private async withStages(r: VersionRow): Promise<SecretVersionRecord> {
    const stages = await this.store.driver.query<{ stage: string }>(
      "SELECT stage FROM secret_stages WHERE secret_name = $1 AND version_id = $2 ORDER BY stage",
      [r.secret_name, r.version_id],
    );
    return {
      secretName: r.secret_name,
      versionId: r.version_id,
      createdAt: r.created_at,
      keyVersionId: r.key_version_id,
      iv: Buffer.from(r.iv),
      sealed: Buffer.from(r.sealed),
      stages: stages.map((s) => s.stage),
    };
  }
}

/** ACSCurrent becomes ACSPrevious; the former ACSPrevious loses its stage. */
async function shiftStages(tx: SqlExecutor, name: string): Promise<void> {
  await tx.exec("DELETE FROM secret_stages WHERE secret_name = $1 AND stage = $2", [name, PREVIOUS_STAGE]);
  await tx.exec("UPDATE secret_stages SET stage = $1 WHERE secret_name = $2 AND stage = $3", [
    PREVIOUS_STAGE,
    name,
    CURRENT_STAGE,
  ]);
}

async function insertCurrent(tx: SqlExecutor, v: SecretVersionRecord): Promise<void> {
  await tx.exec(`INSERT INTO secret_versions (${VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)`, [
    v.secretName,
    v.versionId,
    v.createdAt,
    v.keyVersionId,
    v.iv,
    v.sealed,
  ]);
  await tx.exec("INSERT INTO secret_stages (secret_name, stage, version_id) VALUES ($1, $2, $3)", [
    v.secretName,
    CURRENT_STAGE,
    v.versionId,
  ]);
}
