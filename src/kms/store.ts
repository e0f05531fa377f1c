/**
 * The KMS's persistent state: keys, their versions (material wrapped under the master key),
 * aliases, access points (their queries in access_point_store.ts), instance metadata and the
 * audit log, in SQLite (one file, the embedded default) or PostgreSQL (shared by several
 * `kms serve` nodes). The queries are written once against {@link SqlDriver}; the service
 * code does not know which database it has. Every write is a short transaction, committed before the server answers. The lookups a
 * request makes (key, alias, newest version, access point) are memoised until the database
 * changes, whichever process or node changes it (read_cache.ts).
 */
import { ChangeWatch, Memo } from "./read_cache.ts";
import type { KeySpec, KeyState, KeyUsage } from "./specs.ts";
import { LOCKS, type SqlDriver, type SqlExecutor, StoreError } from "./store/driver.ts";
import { migrate } from "./store/migrations.ts";
import { SqliteDriver } from "./store/sqlite.ts";

/** A key as listed: no material. */
export interface KeyRecord {
  readonly id: string;
  readonly spec: KeySpec;
  readonly usage: KeyUsage;
  readonly state: KeyState;
  readonly description: string;
  readonly createdAt: string;
  /** When a PendingDeletion key may be purged. */
  readonly deletionDate: string | null;
}

/** One version of a key: the wrapped material and, for asymmetric keys, the public key. */
export interface KeyVersionRecord {
  readonly id: string;
  readonly keyId: string;
  /** 1, 2, ... in creation order; the highest is the one new operations use. */
  readonly seq: number;
  readonly createdAt: string;
  readonly publicDer: Buffer | null;
  readonly wrapped: Buffer;
}

/** What an access point may do. */
export interface AccessPolicy {
  /** Key id or alias patterns; `*` matches any run of characters. */
  readonly keys: readonly string[];
  /** Operation (API) names allowed, or ["*"]. */
  readonly operations: readonly string[];
  /** Source addresses or CIDR blocks allowed; empty means any. */
  readonly sourceIps: readonly string[];
  /** Secret name patterns GetSecretValue may read; absent or empty means none. */
  readonly secrets?: readonly string[];
}

/**
 * An application access point: the server keeps only its public key and policy. Its rows are
 * read and written with their MAC through access_point_store.ts, never here.
 */
export interface AccessPointRecord {
  readonly id: string;
  readonly name: string;
  readonly publicDer: Buffer;
  readonly policy: AccessPolicy;
  readonly state: "Active" | "Revoked";
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

interface KeyRow {
  id: string;
  spec: string;
  usage: string;
  state: string;
  description: string;
  created_at: string;
  deletion_date: string | null;
}
interface VersionRow {
  id: string;
  key_id: string;
  seq: number;
  created_at: string;
  public_der: Buffer | null;
  wrapped: Buffer;
}
const toKey = (r: KeyRow): KeyRecord => ({
  id: r.id,
  spec: r.spec as KeySpec,
  usage: r.usage as KeyUsage,
  state: r.state as KeyState,
  description: r.description,
  createdAt: r.created_at,
  deletionDate: r.deletion_date,
});
const toVersion = (r: VersionRow): KeyVersionRecord => ({
  id: r.id,
  keyId: r.key_id,
  seq: r.seq,
  createdAt: r.created_at,
  publicDer: r.public_der,
  wrapped: r.wrapped,
});
/** Where a store lives: a SQLite file, or a PostgreSQL database given by URL. */
export type StoreLocation = { readonly sqlitePath: string } | { readonly postgresUrl: string };

const KEY_COLUMNS = "id, spec, usage, state, description, created_at, deletion_date";
const VERSION_COLUMNS = "id, key_id, seq, created_at, public_der, wrapped";

/** The store: async methods, each write one transaction. */
export class Store {
  private readonly watch: ChangeWatch;
  private readonly keysById: Memo<KeyRecord>;
  private readonly aliasTargets: Memo<string>;
  private readonly aliasLists: Memo<readonly string[]>;
  private readonly newestVersions: Memo<KeyVersionRecord>;

  /** A store over an open driver whose schema is current (see {@link Store.open}). */
  constructor(readonly driver: SqlDriver) {
    this.watch = new ChangeWatch(async () => {
      const rows = await driver.query<{ counter: number }>("SELECT counter FROM changes WHERE id = 1");
      return rows[0]?.counter ?? 0;
    });
    this.keysById = new Memo(this.watch);
    this.aliasTargets = new Memo(this.watch);
    this.aliasLists = new Memo(this.watch);
    this.newestVersions = new Memo(this.watch);
  }

  /** Opens a store and brings its schema up to date (or refuses a newer one). */
  static async open(location: StoreLocation): Promise<Store> {
    // pg is loaded only by those who use it: SQLite users (and CLI start-up) do not pay for it.
    const driver =
      "postgresUrl" in location
        ? new (await import("./store/postgres.ts")).PostgresDriver(location.postgresUrl)
        : new SqliteDriver(location.sqlitePath);
    try {
      await migrate(driver);
    } catch (err) {
      await driver.close();
      throw err;
    }
    return new Store(driver);
  }

  /** Closes the database. */
  async close(): Promise<void> {
    await this.driver.close();
  }

  /**
   * Reads the change counter, so that memoised lookups made after this see every change
   * committed before it (the server calls this at the start of each request).
   */
  async checkForChanges(): Promise<void> {
    await this.watch.refresh();
  }

  /**
   * A memo table over the store's change counter, for repositories beside the store
   * (secret_store.ts): emptied whenever any cached table changes, on any node.
   */
  memo<T>(maxEntries?: number): Memo<T> {
    return new Memo<T>(this.watch, maxEntries);
  }

  /**
   * Runs `work` as one write to the cached tables: counter bumped in the same transaction,
   * under `lock` (the data lock; the audit lock when the write appends to the log as well).
   * Public for repositories beside the store, whose tables are memoised the same way.
   */
  async write<T>(work: (tx: SqlExecutor) => Promise<T>, lock: string = LOCKS.data): Promise<T> {
    try {
      return await this.driver.transaction(lock, async (tx) => {
        const result = await work(tx);
        // Exactly one row, or every node's memos would outlive this write: a counter row
        // deleted, or a trigger that cancels the update (RAISE(IGNORE)), is tampering, and the
        // write is rolled back. A trigger that lets the update count and then sets the counter
        // back is not seen here: memos then outlive the change by at most MEMO_MAX_AGE_MS.
        if ((await tx.exec("UPDATE changes SET counter = counter + 1 WHERE id = 1")) !== 1) {
          throw new StoreError(
            "the change counter did not advance (its row is missing or a trigger blocks it): the database was tampered with; nothing was written",
          );
        }
        return result;
      });
    } finally {
      this.watch.localWrite();
    }
  }

  /**
   * True when the database holds no keys, access points or audit entries: a database whose
   * creation was interrupted, with nothing a missing record could hide. Anything else with a
   * record missing has been tampered with.
   */
  async holdsNothing(): Promise<boolean> {
    for (const table of ["keys", "access_points", "audit"]) {
      if ((await this.driver.query(`SELECT 1 AS one FROM ${table} LIMIT 1`)).length > 0) return false;
    }
    return true;
  }

  /** Reads an instance metadata value. */
  async getMeta(name: string, tx: SqlExecutor = this.driver): Promise<Buffer | undefined> {
    const rows = await tx.query<{ value: Buffer }>("SELECT value FROM meta WHERE name = $1", [name]);
    return rows[0] ? Buffer.from(rows[0].value) : undefined;
  }

  /** Writes a metadata value only if absent; returns the value that is stored afterwards. */
  async initMeta(name: string, value: Buffer): Promise<Buffer> {
    await this.driver.exec("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [
      name,
      value,
    ]);
    return (await this.getMeta(name)) as Buffer;
  }

  /** Overwrites a metadata value. */
  async setMeta(name: string, value: Buffer, tx: SqlExecutor = this.driver): Promise<void> {
    await tx.exec(
      "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      [name, value],
    );
  }

  /**
   * Inserts a key and its first version atomically. The writes below take `tx` to run in the
   * caller's transaction (AuditLog.appendWith: the change commits with its audit entry).
   */
  async createKey(key: KeyRecord, version: KeyVersionRecord, tx?: SqlExecutor): Promise<void> {
    await this.writeIn(tx, async (tx) => {
      await tx.exec(`INSERT INTO keys (${KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
        key.id,
        key.spec,
        key.usage,
        key.state,
        key.description,
        key.createdAt,
        key.deletionDate,
      ]);
      await insertVersion(tx, version);
    });
  }

  /** Adds a version with the next sequence number (rotation); returns it. */
  async addVersion(
    keyId: string,
    make: (seq: number) => KeyVersionRecord,
    tx?: SqlExecutor,
  ): Promise<KeyVersionRecord> {
    return this.writeIn(tx, async (tx) => {
      const rows = await tx.query<{ top: number | null }>(
        "SELECT MAX(seq) AS top FROM key_versions WHERE key_id = $1",
        [keyId],
      );
      const version = make((rows[0]?.top ?? 0) + 1);
      await insertVersion(tx, version);
      return version;
    });
  }

  /** A key by id or by alias (`alias/NAME`). */
  async findKey(idOrAlias: string): Promise<KeyRecord | undefined> {
    const id = idOrAlias.startsWith("alias/") ? await this.aliasTarget(idOrAlias) : idOrAlias;
    if (id === undefined) return undefined;
    return this.keysById.get(id, async () => {
      const rows = await this.driver.query<KeyRow>(`SELECT ${KEY_COLUMNS} FROM keys WHERE id = $1`, [id]);
      return rows[0] ? toKey(rows[0]) : undefined;
    });
  }

  /** All keys, oldest first. */
  async listKeys(): Promise<KeyRecord[]> {
    return (await this.driver.query<KeyRow>(`SELECT ${KEY_COLUMNS} FROM keys ORDER BY created_at, id`)).map(
      toKey,
    );
  }

  /** Changes a key's state (and its deletion date). Returns false if there is no such key. */
  async setKeyState(
    id: string,
    state: KeyState,
    deletionDate: string | null = null,
    tx?: SqlExecutor,
  ): Promise<boolean> {
    const changed = await this.writeIn(tx, (tx) =>
      tx.exec("UPDATE keys SET state = $1, deletion_date = $2 WHERE id = $3", [state, deletionDate, id]),
    );
    return changed === 1;
  }

  /** A key's versions, newest first. */
  async versions(keyId: string): Promise<KeyVersionRecord[]> {
    const sql = `SELECT ${VERSION_COLUMNS} FROM key_versions WHERE key_id = $1 ORDER BY seq DESC`;
    return (await this.driver.query<VersionRow>(sql, [keyId])).map(toVersion);
  }

  /** The newest version of a key. */
  async newestVersion(keyId: string): Promise<KeyVersionRecord | undefined> {
    return this.newestVersions.get(keyId, async () => {
      const sql = `SELECT ${VERSION_COLUMNS} FROM key_versions WHERE key_id = $1 ORDER BY seq DESC LIMIT 1`;
      const rows = await this.driver.query<VersionRow>(sql, [keyId]);
      return rows[0] ? toVersion(rows[0]) : undefined;
    });
  }

  /** One version by its id. */
  async version(versionId: string): Promise<KeyVersionRecord | undefined> {
    const sql = `SELECT ${VERSION_COLUMNS} FROM key_versions WHERE id = $1`;
    const rows = await this.driver.query<VersionRow>(sql, [versionId]);
    return rows[0] ? toVersion(rows[0]) : undefined;
  }

  /** The key an alias points at. */
  async aliasTarget(alias: string): Promise<string | undefined> {
    return this.aliasTargets.get(alias, async () => {
      const rows = await this.driver.query<{ key_id: string }>("SELECT key_id FROM aliases WHERE name = $1", [
        alias,
      ]);
      return rows[0]?.key_id;
    });
  }

  /** Creates or re-points an alias. */
  async setAlias(alias: string, keyId: string, tx?: SqlExecutor): Promise<void> {
    await this.writeIn(tx, (tx) =>
      tx.exec(
        "INSERT INTO aliases (name, key_id) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id",
        [alias, keyId],
      ),
    );
  }

  /** Creates an alias that does not exist yet; false (nothing written) when the name is taken. */
  async createAlias(alias: string, keyId: string, tx?: SqlExecutor): Promise<boolean> {
    const sql = "INSERT INTO aliases (name, key_id) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    return (await this.writeIn(tx, (tx) => tx.exec(sql, [alias, keyId]))) === 1;
  }

  /** Deletes an alias; the key it pointed at as it was deleted, undefined if there was none. */
  async deleteAlias(alias: string, tx?: SqlExecutor): Promise<string | undefined> {
    const rows = await this.writeIn(tx, (tx) =>
      tx.query<{ key_id: string }>("DELETE FROM aliases WHERE name = $1 RETURNING key_id", [alias]),
    );
    return rows[0]?.key_id;
  }

  /** `work` in the caller's transaction (which bumps the counter), else in a write of its own. */
  private writeIn<T>(tx: SqlExecutor | undefined, work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return tx ? work(tx) : this.write(work);
  }

  /** The aliases of a key (shared with later callers until a change: do not modify). */
  async aliasesOf(keyId: string): Promise<readonly string[]> {
    return this.aliasLists.get(keyId, async () =>
      (
        await this.driver.query<{ name: string }>(
          "SELECT name FROM aliases WHERE key_id = $1 ORDER BY name",
          [keyId],
        )
      ).map((r) => r.name),
    );
  }
}

async function insertVersion(tx: SqlExecutor, v: KeyVersionRecord): Promise<void> {
  await tx.exec(`INSERT INTO key_versions (${VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)`, [
    v.id,
    v.keyId,
    v.seq,
    v.createdAt,
    v.publicDer,
    v.wrapped,
  ]);
}
