/**
 * The KMS's persistent state in one SQLite file (better-sqlite3, WAL): keys, their versions
 * (material wrapped under the master key), aliases, access points, instance metadata and the
 * audit log. WAL lets `kms serve` and the admin commands use the same file at the same time;
 * every write is a short transaction, committed before the server answers. The lookups a
 * request makes (key, alias, newest version, access point) are memoised until the database
 * changes, whichever process changes it (read_cache.ts).
 */
import { closeSync, existsSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import { ChangeWatch, Memo } from "./read_cache.ts";
import type { KeySpec, KeyState, KeyUsage } from "./specs.ts";

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

/** An application access point: the server keeps only its public key and policy. */
export interface AccessPointRecord {
  readonly id: string;
  readonly name: string;
  readonly publicDer: Buffer;
  readonly policy: AccessPolicy;
  readonly state: "Active" | "Revoked";
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

const SCHEMA = `
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
interface ApRow {
  id: string;
  name: string;
  public_der: Buffer;
  policy: string;
  state: string;
  created_at: string;
  revoked_at: string | null;
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
const toAp = (r: ApRow): AccessPointRecord => ({
  id: r.id,
  name: r.name,
  publicDer: r.public_der,
  policy: JSON.parse(r.policy) as AccessPolicy,
  state: r.state as "Active" | "Revoked",
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});

/** The SQLite store. All methods are synchronous and each write is one transaction. */
export class Store {
  /** The open database (audit.ts appends through it). */
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly watch: ChangeWatch;
  private readonly keysById: Memo<KeyRecord>;
  private readonly aliasTargets: Memo<string>;
  private readonly aliasLists: Memo<string[]>;
  private readonly newestVersions: Memo<KeyVersionRecord>;
  private readonly accessPoints: Memo<AccessPointRecord>;

  constructor(path: string) {
    // Create the file 0600 ourselves: SQLite would use the umask, and the WAL inherits the mode.
    if (!existsSync(path)) closeSync(openSync(path, "a", 0o600));
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    // NORMAL in WAL mode: a commit is in the WAL (OS cache) before we answer, so a killed
    // process loses nothing it acknowledged; only a power cut can lose the last commits.
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 10000");
    this.db.pragma("foreign_keys = ON");
    this.db.exec(SCHEMA);
    this.watch = new ChangeWatch(this.db);
    this.keysById = new Memo(this.watch);
    this.aliasTargets = new Memo(this.watch);
    this.aliasLists = new Memo(this.watch);
    this.newestVersions = new Memo(this.watch);
    this.accessPoints = new Memo(this.watch);
  }

  /** A prepared statement, compiled once per connection (compiling costs more than running). */
  statement(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** Closes the database. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /**
   * True when the database holds no keys, access points or audit entries: a database whose
   * creation was interrupted, with nothing a missing record could hide. Anything else with a
   * record missing has been tampered with.
   */
  holdsNothing(): boolean {
    return ["keys", "access_points", "audit"].every(
      (table) => this.statement(`SELECT 1 FROM ${table} LIMIT 1`).get() === undefined,
    );
  }

  /** Reads an instance metadata value. */
  getMeta(name: string): Buffer | undefined {
    const row = this.statement("SELECT value FROM meta WHERE name = ?").get(name) as
      | { value: Buffer }
      | undefined;
    return row ? Buffer.from(row.value) : undefined;
  }

  /** Writes a metadata value only if absent; returns the value that is stored afterwards. */
  initMeta(name: string, value: Buffer): Buffer {
    this.statement("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)").run(name, value);
    return this.getMeta(name) as Buffer;
  }

  /** Overwrites a metadata value. */
  setMeta(name: string, value: Buffer): void {
    this.statement("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)").run(name, value);
  }

  /** Inserts a key and its first version atomically. */
  createKey(key: KeyRecord, version: KeyVersionRecord): void {
    this.db.transaction(() => {
      this.statement("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?)").run(
        key.id,
        key.spec,
        key.usage,
        key.state,
        key.description,
        key.createdAt,
        key.deletionDate,
      );
      this.insertVersion(version);
    })();
    this.watch.localWrite();
  }

  private insertVersion(v: KeyVersionRecord): void {
    this.statement("INSERT INTO key_versions VALUES (?, ?, ?, ?, ?, ?)").run(
      v.id,
      v.keyId,
      v.seq,
      v.createdAt,
      v.publicDer,
      v.wrapped,
    );
  }

  /** Adds a version with the next sequence number (rotation); returns its number. */
  addVersion(keyId: string, make: (seq: number) => KeyVersionRecord): KeyVersionRecord {
    const added = this.db
      .transaction(() => {
        const row = this.db
          .prepare("SELECT MAX(seq) AS top FROM key_versions WHERE key_id = ?")
          .get(keyId) as {
          top: number | null;
        };
        const version = make((row.top ?? 0) + 1);
        this.insertVersion(version);
        return version;
      })
      .immediate();
    // Rotation must reach the very next Sign: SQLite does not count this connection's writes.
    this.watch.localWrite();
    return added;
  }

  /** A key by id or by alias (`alias/NAME`). */
  findKey(idOrAlias: string): KeyRecord | undefined {
    const id = idOrAlias.startsWith("alias/") ? this.aliasTarget(idOrAlias) : idOrAlias;
    if (id === undefined) return undefined;
    return this.keysById.get(id, () => {
      const row = this.statement("SELECT * FROM keys WHERE id = ?").get(id) as KeyRow | undefined;
      return row ? toKey(row) : undefined;
    });
  }

  /** All keys, oldest first. */
  listKeys(): KeyRecord[] {
    return (this.statement("SELECT * FROM keys ORDER BY created_at, id").all() as KeyRow[]).map(toKey);
  }

  /** Changes a key's state (and its deletion date). Returns false if there is no such key. */
  setKeyState(id: string, state: KeyState, deletionDate: string | null = null): boolean {
    const changes = this.statement("UPDATE keys SET state = ?, deletion_date = ? WHERE id = ?").run(
      state,
      deletionDate,
      id,
    ).changes;
    this.watch.localWrite();
    return changes === 1;
  }

  /** A key's versions, newest first. */
  versions(keyId: string): KeyVersionRecord[] {
    return (
      this.statement("SELECT * FROM key_versions WHERE key_id = ? ORDER BY seq DESC").all(
        keyId,
      ) as VersionRow[]
    ).map(toVersion);
  }

  /** The newest version of a key. */
  newestVersion(keyId: string): KeyVersionRecord | undefined {
    return this.newestVersions.get(keyId, () => {
      const row = this.statement("SELECT * FROM key_versions WHERE key_id = ? ORDER BY seq DESC LIMIT 1").get(
        keyId,
      ) as VersionRow | undefined;
      return row ? toVersion(row) : undefined;
    });
  }

  /** One version by its id. */
  version(versionId: string): KeyVersionRecord | undefined {
    const row = this.statement("SELECT * FROM key_versions WHERE id = ?").get(versionId) as
      | VersionRow
      | undefined;
    return row ? toVersion(row) : undefined;
  }

  /** The key an alias points at. */
  aliasTarget(alias: string): string | undefined {
    return this.aliasTargets.get(alias, () => {
      const row = this.statement("SELECT key_id FROM aliases WHERE name = ?").get(alias) as
        | { key_id: string }
        | undefined;
      return row?.key_id;
    });
  }

  /** Creates or re-points an alias. */
  setAlias(alias: string, keyId: string): void {
    this.statement("INSERT OR REPLACE INTO aliases (name, key_id) VALUES (?, ?)").run(alias, keyId);
    this.watch.localWrite();
  }

  /** Deletes an alias; false if there was none. */
  deleteAlias(alias: string): boolean {
    const changes = this.statement("DELETE FROM aliases WHERE name = ?").run(alias).changes;
    this.watch.localWrite();
    return changes === 1;
  }

  /** The aliases of a key (shared with later callers until a change: do not modify). */
  aliasesOf(keyId: string): readonly string[] {
    return this.aliasLists.get(keyId, () =>
      (
        this.statement("SELECT name FROM aliases WHERE key_id = ? ORDER BY name").all(keyId) as {
          name: string;
        }[]
      ).map((r) => r.name),
    );
  }

  /** Stores a new access point. */
  createAccessPoint(ap: AccessPointRecord): void {
    this.statement("INSERT INTO access_points VALUES (?, ?, ?, ?, ?, ?, ?)").run(
      ap.id,
      ap.name,
      ap.publicDer,
      JSON.stringify(ap.policy),
      ap.state,
      ap.createdAt,
      ap.revokedAt,
    );
    this.watch.localWrite();
  }

  /** An access point by id. */
  findAccessPoint(id: string): AccessPointRecord | undefined {
    return this.accessPoints.get(id, () => {
      const row = this.statement("SELECT * FROM access_points WHERE id = ?").get(id) as ApRow | undefined;
      return row ? toAp(row) : undefined;
    });
  }

  /** An access point by id or name. */
  findAccessPointByIdOrName(idOrName: string): AccessPointRecord | undefined {
    const row = this.statement("SELECT * FROM access_points WHERE id = ? OR name = ?").get(
      idOrName,
      idOrName,
    ) as ApRow | undefined;
    return row ? toAp(row) : undefined;
  }

  /** All access points, oldest first. */
  listAccessPoints(): AccessPointRecord[] {
    return (this.statement("SELECT * FROM access_points ORDER BY created_at, id").all() as ApRow[]).map(toAp);
  }

  /** Revokes an access point for good; false if it did not exist or was already revoked. */
  revokeAccessPoint(id: string, when: string): boolean {
    const changes = this.statement(
      "UPDATE access_points SET state = 'Revoked', revoked_at = ? WHERE id = ? AND state = 'Active'",
    ).run(when, id).changes;
    this.watch.localWrite();
    return changes === 1;
  }
}
