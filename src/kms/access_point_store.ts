/**
 * Access point rows, read and written with their MAC (access_point_mac.ts). Every write puts
 * the MAC in the same statement as the values it covers; every read checks it, and a row
 * whose MAC is missing or wrong is treated as absent, with the reporter told (once per row
 * until the database changes, so a caller repeating a request cannot flood log or audit).
 * The report is not awaited: a refusal for an edited row takes the time one for an unknown
 * id takes, and {@link AccessPointStore.settled} lets the instance finish it before closing.
 * Lookups by id are memoised on the store's change counter like keys and secrets, and only
 * verified rows ever enter the memo.
 */
import { type AccessPointSeal, AP_COLUMNS, type ApRow } from "./access_point_mac.ts";
import type { Memo } from "./read_cache.ts";
import type { AccessPointRecord, AccessPolicy, Store } from "./store.ts";

/** Told when a row fails its check; the id is the row's (untrusted) text. Never rejects. */
export type IntegrityReporter = (id: string) => Promise<void>;

/** The access points of one store. */
export class AccessPointStore {
  private readonly byId: Memo<AccessPointRecord>;
  private readonly reported: Memo<true>;
  private readonly reports = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    private readonly seal: AccessPointSeal,
    private readonly report: IntegrityReporter,
  ) {
    this.byId = store.memo();
    this.reported = store.memo();
  }

  /** Stores a new access point. */
  async create(ap: AccessPointRecord): Promise<void> {
    const row = toRow(ap);
    await this.store.write((tx) =>
      tx.exec(`INSERT INTO access_points (${AP_COLUMNS}, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
        row.id,
        row.name,
        row.public_der,
        row.policy,
        row.state,
        row.created_at,
        row.revoked_at,
        this.seal.mac(row),
      ]),
    );
  }

  /** An intact access point by id (what request authentication trusts). */
  async find(id: string): Promise<AccessPointRecord | undefined> {
    return this.byId.get(id, async () => {
      const rows = await this.store.driver.query<ApRow>(
        `SELECT ${AP_COLUMNS}, mac FROM access_points WHERE id = $1`,
        [id],
      );
      return (await this.intact(rows))[0];
    });
  }

  /** An intact access point by id or name. */
  async findByIdOrName(idOrName: string): Promise<AccessPointRecord | undefined> {
    const sql = `SELECT ${AP_COLUMNS}, mac FROM access_points WHERE id = $1 OR name = $1`;
    return (await this.intact(await this.store.driver.query<ApRow>(sql, [idOrName])))[0];
  }

  /** All intact access points, oldest first. */
  async list(): Promise<AccessPointRecord[]> {
    const sql = `SELECT ${AP_COLUMNS}, mac FROM access_points ORDER BY created_at, id`;
    return this.intact(await this.store.driver.query<ApRow>(sql));
  }

  /**
   * Revokes an access point for good; false if it did not exist, was already revoked, or its
   * row fails its check. The new state and its MAC are written in one statement, only over
   * the exact row that was checked (its old MAC in the WHERE clause).
   */
  async revoke(id: string, when: string): Promise<boolean> {
    const changed = await this.store.write(async (tx) => {
      const rows = await tx.query<ApRow>(`SELECT ${AP_COLUMNS}, mac FROM access_points WHERE id = $1`, [id]);
      const row = rows[0];
      if (row?.state !== "Active" || !this.seal.verify(row)) return 0;
      const revoked = { ...row, state: "Revoked", revoked_at: when };
      return tx.exec(
        "UPDATE access_points SET state = 'Revoked', revoked_at = $1, mac = $2 WHERE id = $3 AND state = 'Active' AND mac = $4",
        [when, this.seal.mac(revoked), id, row.mac],
      );
    });
    return changed === 1;
  }

  /** The records of the rows that verify; the others reported and left out. */
  private async intact(rows: readonly ApRow[]): Promise<AccessPointRecord[]> {
    const records: AccessPointRecord[] = [];
    for (const row of rows) {
      if (this.seal.verify(row)) records.push(toRecord(row));
      else this.reportOnce(row.id);
    }
    return records;
  }

  private reportOnce(id: string): void {
    void this.reported.get(id, async () => {
      const report = this.report(id).finally(() => this.reports.delete(report));
      this.reports.add(report);
      return true as const;
    });
  }

  /** Resolves once every integrity failure reported so far is logged and audited. */
  async settled(): Promise<void> {
    await Promise.all(this.reports);
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

function toRecord(r: ApRow): AccessPointRecord {
  return {
    id: r.id,
    name: r.name,
    publicDer: Buffer.from(r.public_der),
    policy: JSON.parse(r.policy) as AccessPolicy,
    state: r.state as "Active" | "Revoked",
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}
