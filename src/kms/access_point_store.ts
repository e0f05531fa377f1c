/**
 * Access point rows, read and written with their MAC (access_point_mac.ts). Every write puts
 * the MAC in the same statement as the values it covers; every read checks the column types
 * and the MAC, and a row failing either is treated as absent, with the failure reported
 * through {@link IntegrityReports} (rate-limited: the rows are the database writer's, and the
 * request path is open to anyone). The report is not awaited: a refusal for an edited row
 * takes the time one for an unknown id takes, and {@link AccessPointStore.settled} lets the
 * instance finish it before closing. Lookups by id are memoised on the store's change counter
 * like keys and secrets, and only verified rows ever enter the memo.
 *
 * A per-row MAC cannot tell an older copy of a row from the current one, so a revoked row put
 * back as it was before its revocation would verify. Revocations are also in the audit log
 * (admin.ts appends the entry in the revoking transaction): an id the log revokes is treated
 * as Revoked whatever its row says, and reported. The set is read from the audit table
 * incrementally (entries after the newest one read), once per change, and only from entries
 * whose hash and MAC the audit key made.
 */
import { type AccessPointSeal, AP_COLUMNS, type ApRow, rowValues } from "./access_point_mac.ts";
import { REVOKE_OPERATION } from "./access_point_upgrade.ts";
import { AuditTail, adminEntries, type VerifiedLog } from "./audit_tail.ts";
import type { IntegrityReports } from "./integrity_reports.ts";
import type { Memo } from "./read_cache.ts";
import type { SqlExecutor } from "./store/driver.ts";
import type { AccessPointRecord, AccessPolicy, Store } from "./store.ts";

const TAMPERED =
  "failed its integrity check (row edited in the database, copied from another instance, or unsealed): refused as unknown";
const UNREVOKED =
  "is revoked in the audit log but Active in its row (an older copy of the row put back?): refused as revoked";
/** The policy of a row `kms ap revoke` rewrites: it grants nothing. */
const EMPTY_POLICY: AccessPolicy = { keys: [], operations: [], sourceIps: [] };

/** The access points of one store. */
export class AccessPointStore {
  private readonly byId: Memo<AccessPointRecord>;
  private readonly revocations: AuditTail<Set<string>>;

  /** `log`: the audit log (AuditLog), which tells its entries from a writer's. */
  constructor(
    private readonly store: Store,
    private readonly seal: AccessPointSeal,
    private readonly reports: IntegrityReports,
    private readonly log: VerifiedLog,
  ) {
    this.byId = store.memo();
    // Revocations only accumulate: a rebuild (entries deleted down to the marker) starts from
    // the same set, so an id this process has seen revoked stays revoked until it restarts.
    const revoked = new Set<string>();
    this.revocations = new AuditTail(store, log, {
      operations: [REVOKE_OPERATION],
      empty: () => revoked,
      apply: (ids, entry) => ids.add(entry.detail),
    });
  }

  /** Stores a new access point (in `tx` when given: the caller's, counter bumped). */
  async create(ap: AccessPointRecord, tx?: SqlExecutor): Promise<void> {
    const row = toRow(ap);
    const insert = (tx: SqlExecutor) =>
      tx.exec(`INSERT INTO access_points (${AP_COLUMNS}, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
        ...rowValues(row),
        this.seal.mac(row),
      ]);
    await (tx ? insert(tx) : this.store.write(insert));
  }

  /** An intact access point by id (what request authentication trusts). */
  async find(id: string): Promise<AccessPointRecord | undefined> {
    return this.byId.get(id, async () => {
      const rows = await this.store.driver.query<ApRow>(
        `SELECT ${AP_COLUMNS}, mac FROM access_points WHERE id = $1`,
        [id],
      );
      const { records, bad } = await this.intact(rows);
      for (const [badId, what] of bad) this.reports.one(badId, what);
      return records[0];
    });
  }

  /** An intact access point by id or name. */
  async findByIdOrName(idOrName: string): Promise<AccessPointRecord | undefined> {
    const sql = `SELECT ${AP_COLUMNS}, mac FROM access_points WHERE id = $1 OR name = $1`;
    return (await this.listed(await this.store.driver.query<ApRow>(sql, [idOrName])))[0];
  }

  /** All intact access points, oldest first; the failing rows reported in one entry. */
  async list(): Promise<AccessPointRecord[]> {
    const sql = `SELECT ${AP_COLUMNS}, mac FROM access_points ORDER BY created_at, id`;
    return this.listed(await this.store.driver.query<ApRow>(sql));
  }

  /**
   * Revokes an access point for good in `tx`; false if it did not exist, was already revoked,
   * or its row fails its check. The new state and its MAC are written in one statement, only
   * over the exact row that was checked (its old MAC in the WHERE clause).
   */
  async revokeIn(tx: SqlExecutor, id: string, when: string): Promise<boolean> {
    const rows = await tx.query<ApRow>(`SELECT ${AP_COLUMNS}, mac FROM access_points WHERE id = $1`, [id]);
    const row = rows[0];
    if (row?.state !== "Active" || !this.seal.verify(row)) return false;
    const revoked = { ...row, state: "Revoked", revoked_at: when };
    const changed = await tx.exec(
      "UPDATE access_points SET state = 'Revoked', revoked_at = $1, mac = $2 WHERE id = $3 AND state = 'Active' AND mac = $4",
      [when, this.seal.mac(revoked), id, row.mac],
    );
    return changed === 1;
  }

  /**
   * Revokes a row that fails its check, by id or name, in `tx`: overwritten with a sealed
   * Revoked row that keeps its id and (text) name, grants nothing, and is revoked `when`.
   * Otherwise a writer could keep an admin from revoking by breaking a MAC for a moment and
   * putting it back afterwards. Returns the id, or undefined when no such row fails its check.
   */
  async revokeTampered(tx: SqlExecutor, idOrName: string, when: string): Promise<string | undefined> {
    const rows = await tx.query<ApRow>(
      `SELECT ${AP_COLUMNS}, mac FROM access_points WHERE id = $1 OR name = $1`,
      [idOrName],
    );
    const row = rows.find((r) => typeof r.id === "string" && !this.seal.verify(r));
    if (!row) return undefined;
    const text = (v: unknown, fallback: string) => (typeof v === "string" ? v : fallback);
    const sealed = {
      id: row.id,
      name: text(row.name, ""),
      public_der: Buffer.isBuffer(row.public_der) ? row.public_der : Buffer.alloc(0),
      policy: JSON.stringify(EMPTY_POLICY),
      state: "Revoked",
      created_at: text(row.created_at, when),
      revoked_at: when,
    };
    await tx.exec(
      "UPDATE access_points SET name = $1, public_der = $2, policy = $3, state = $4, created_at = $5, revoked_at = $6, mac = $7 WHERE id = $8",
      [...rowValues(sealed).slice(1), this.seal.mac(sealed), row.id],
    );
    return row.id;
  }

  /** The ids the audit log revokes (an admin's RevokeAccessPoint entries), read through an AuditTail. */
  async revokedInLog(): Promise<ReadonlySet<string>> {
    return this.revocations.read();
  }

  /**
   * The first revocation in the log whose row is not Revoked (absent rows are fine: nothing
   * to authorise), for `audit verify`: with the log verified, this is the replay of an older
   * copy of the row that a per-row MAC cannot see.
   */
  async unrevoked(): Promise<{ seq: number; id: string; state: string } | undefined> {
    const entries = await adminEntries(this.store.driver, [REVOKE_OPERATION], 0, false);
    const revocations = entries.filter((r) => this.log.isOurs(r));
    for (const r of revocations) {
      const rows = await this.store.driver.query<{ state: unknown }>(
        "SELECT state FROM access_points WHERE id = $1",
        [r.detail],
      );
      const state = rows[0]?.state;
      if (rows[0] && state !== "Revoked") return { seq: Number(r.seq), id: r.detail, state: String(state) };
    }
    return undefined;
  }

  private async listed(rows: readonly ApRow[]): Promise<AccessPointRecord[]> {
    const { records, bad } = await this.intact(rows);
    for (const what of [TAMPERED, UNREVOKED]) {
      this.reports.many(
        bad.filter(([, w]) => w === what).map(([id]) => id),
        what,
      );
    }
    return records;
  }

  /** The records of the rows that verify; the others, with what failed, apart. */
  private async intact(
    rows: readonly ApRow[],
  ): Promise<{ records: AccessPointRecord[]; bad: [id: string, what: string][] }> {
    const records: AccessPointRecord[] = [];
    const bad: [string, string][] = [];
    const revoked = rows.length > 0 ? await this.revokedInLog() : new Set<string>();
    for (const row of rows) {
      const record = this.seal.verify(row) ? toRecord(row) : undefined;
      if (!record) bad.push([String(row.id), TAMPERED]);
      else if (record.state === "Active" && revoked.has(record.id)) {
        bad.push([record.id, UNREVOKED]);
        records.push({ ...record, state: "Revoked" });
      } else records.push(record);
    }
    return { records, bad };
  }

  /** Resolves once every integrity failure reported so far is logged and audited. */
  async settled(): Promise<void> {
    await this.reports.settled();
  }

  /** At shutdown: also the count the rate limits still hold back is logged and audited. */
  async finish(): Promise<void> {
    await this.reports.finish();
  }
}

function toRow(ap: AccessPointRecord): Omit<ApRow, "mac"> {
  return {
    id: ap.id,
    name: ap.name,
    public_der: ap.publicDer,
    policy: JSON.stringify(ap.policy),
    state: ap.state,
    created_at: ap.createdAt,
    revoked_at: ap.revokedAt,
  };
}

/** The record of a verified row; undefined when its state or policy is not one this code writes. */
function toRecord(r: ApRow): AccessPointRecord | undefined {
  let policy: AccessPolicy;
  try {
    policy = JSON.parse(r.policy) as AccessPolicy;
  } catch {
    return undefined;
  }
  if (r.state !== "Active" && r.state !== "Revoked") return undefined;
  return {
    id: r.id,
    name: r.name,
    publicDer: Buffer.from(r.public_der),
    policy,
    state: r.state,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}
