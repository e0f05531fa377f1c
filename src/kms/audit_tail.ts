/**
 * A state folded from an admin's successful audit entries of some operations (revocations of
 * access points, secret writes), read once per change of the store and incrementally: each
 * load reads the entries after a marker, which moves to the newest entry of ours the load saw,
 * so a load costs the new entries, not the log.
 *
 * Only entries whose hash and MAC the audit key made count, and the marker stands only on such
 * an entry: a forged entry with a high seq, read and then deleted, would otherwise move it past
 * real entries appended after it. Appends number entries under the audit lock in commit order,
 * so one statement's snapshot holds every entry up to its newest; an entry appended later gets a
 * higher number, unless entries were deleted down to the marker, which is why the marker's own
 * entry is read back each time and, when gone or changed, the state is rebuilt from the start
 * (into a new state: one already handed out is never emptied).
 *
 * Each load first has the log walked (audit_walk.ts): every entry up to the newest is the log's
 * own and chained to the one before, and the log reaches its MAC'd head and anchor. A log with
 * an entry deleted, replaced or cut off fails with AuditGapError instead of being folded.
 *
 * Loads run one at a time, whatever store generation asked for them: two loads from the same
 * marker would otherwise both apply their entries, or one would see the other's marker move,
 * take it for deleted entries and rebuild while a third moved the marker past the rebuild's
 * rows, losing them.
 */
import { AUDIT_COLUMNS, type AuditRow } from "./audit_chain.ts";
import type { Memo } from "./read_cache.ts";
import type { SqlExecutor } from "./store/driver.ts";
import type { Store } from "./store.ts";

/** An entry as a load reads it: one of the operations, the newest entry, or the marker's. */
export type TailRow = AuditRow & { readonly part: "entry" | "newest" | "marker" };

/** What a tail needs of the audit log (AuditLog is one). */
export interface VerifiedLog {
  /** True when the audit key made this entry's hash and MAC. */
  isOurs(row: AuditRow): boolean;
  /** Resolves once the log is shown whole up to its newest entry (audit_walk.ts). */
  walk(): Promise<void>;
}

/** How a state is made from entries. */
export interface TailFold<S> {
  /** The operations whose entries the state is folded from. */
  readonly operations: readonly string[];
  /** A state before any entry. */
  empty(): S;
  /** Applies one verified entry, in log order. */
  apply(state: S, entry: TailRow): void;
}

interface Marker {
  readonly seq: number;
  readonly hash: Buffer;
}

const START: Marker = { seq: 0, hash: Buffer.alloc(0) };

/** The folded state of a store's verified admin entries of some operations. */
export class AuditTail<S> {
  readonly #memo: Memo<S>;
  #state: S;
  #marker: Marker = START;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly log: VerifiedLog,
    private readonly fold: TailFold<S>,
  ) {
    this.#memo = store.memo();
    this.#state = fold.empty();
  }

  /** The state, as of the store's current generation. */
  read(): Promise<S> {
    return this.#memo.get("tail", () => {
      const load = this.#queue.then(() => this.#load());
      this.#queue = load.catch(() => undefined);
      return load;
    });
  }

  async #load(): Promise<S> {
    // First the whole log up to its newest entry: nothing deleted, replaced or cut off.
    await this.log.walk();
    const marker = this.#marker;
    const rows = await adminEntries(this.store.driver, this.fold.operations, marker.seq, true);
    const atMarker = rows.find((r) => r.part === "marker");
    const intact =
      marker.seq === 0 || (atMarker && this.log.isOurs(atMarker) && marker.hash.equals(atMarker.hash));
    if (!intact) {
      const state = this.fold.empty();
      const all = await adminEntries(this.store.driver, this.fold.operations, 0, true);
      this.#marker = this.#apply(state, START, all);
      this.#state = state;
    } else {
      this.#marker = this.#apply(this.#state, marker, rows);
    }
    return this.#state;
  }

  /** Folds the verified entries after `from` into `state`; returns the new marker. */
  #apply(state: S, from: Marker, rows: readonly TailRow[]): Marker {
    let marker = from;
    for (const r of rows) {
      if (Number(r.seq) <= marker.seq || !this.log.isOurs(r)) continue;
      if (r.part === "entry") this.fold.apply(state, r);
      marker = { seq: Number(r.seq), hash: Buffer.from(r.hash) };
    }
    return marker;
  }
}

/**
 * An admin's successful entries of `operations` after `after`, ordered by seq; with `bounds`,
 * in the same statement (one snapshot), the newest entry and the entry at `after`. The
 * (operation, seq) index makes this a range read per operation, not a scan of the log.
 */
export async function adminEntries(
  db: SqlExecutor,
  operations: readonly string[],
  after: number,
  bounds: boolean,
): Promise<TailRow[]> {
  const names = operations.map((_, i) => `$${i + 2}`).join(", ");
  const entries = `SELECT 'entry' AS part, ${AUDIT_COLUMNS} FROM audit WHERE operation IN (${names}) AND seq > $1 AND actor = 'admin' AND outcome = 'ok'`;
  const sql = bounds
    ? `${entries} UNION ALL SELECT 'newest' AS part, ${AUDIT_COLUMNS} FROM audit WHERE seq = (SELECT MAX(seq) FROM audit) UNION ALL SELECT 'marker' AS part, ${AUDIT_COLUMNS} FROM audit WHERE seq = $1`
    : entries;
  const rows = await db.query<TailRow>(sql, [after, ...operations]);
  return rows
    .filter((r) => r.part !== "entry" || (typeof r.detail === "string" && typeof r.key_id === "string"))
    .sort((a, b) => Number(a.seq) - Number(b.seq));
}
