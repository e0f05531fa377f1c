/**
 * Memoised reads of the tables a request consults but rarely changes (keys, versions,
 * aliases, access points). Every request used to run four or five SELECTs and re-parse the
 * access point's policy; now each lookup costs one `PRAGMA data_version`, and a cached answer
 * is only used while the database is provably unchanged:
 *
 * - `PRAGMA data_version` changes whenever *another* connection commits (the admin CLI in
 *   another process disabling a key, revoking an access point, rotating), so the server
 *   notices such a change on its very next lookup, not after a time-to-live;
 * - writes through *this* connection do not change it, so the store calls
 *   {@link ChangeWatch.localWrite} after each of its own writes.
 *
 * Any change empties every memo (changes are rare; being precise is not worth the risk).
 */
import type Database from "better-sqlite3";

/** Tells memos when the database may have changed since they last looked. */
export class ChangeWatch {
  private readonly dataVersion: Database.Statement;
  private lastSeen: unknown;
  private generation = 0;

  constructor(private readonly db: Database.Database) {
    this.dataVersion = db.prepare("PRAGMA data_version").pluck();
    this.lastSeen = this.dataVersion.get();
  }

  /** A number that differs from any earlier one whenever the cached tables may have changed. */
  current(): number {
    const seen = this.dataVersion.get();
    if (seen !== this.lastSeen) {
      this.lastSeen = seen;
      this.generation++;
    }
    return this.generation;
  }

  /** True inside a transaction, whose reads may be rolled back and so must not be remembered. */
  get inTransaction(): boolean {
    return this.db.inTransaction;
  }

  /** Records a write made through this connection (SQLite's counter does not count those). */
  localWrite(): void {
    this.generation++;
  }
}

/** One memo table: values by string key, dropped as a whole when the watch reports a change. */
export class Memo<T> {
  private readonly entries = new Map<string, T>();
  private generation = -1;

  /** `maxEntries` bounds the entries kept (found values only; misses are never kept). */
  constructor(
    private readonly watch: ChangeWatch,
    private readonly maxEntries = 4096,
  ) {}

  /**
   * The memoised value for `key`, or `load()`'s, remembered until the next change when it
   * found something: a name that does not exist is looked up again each time, so callers
   * asking for endless made-up names cannot fill memory or push out real entries.
   */
  get<R extends T | undefined>(key: string, load: () => R): R {
    const generation = this.watch.current();
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
    }
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit as R;
    const value = load();
    if (value === undefined || this.watch.inTransaction) return value;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, value as T);
    return value;
  }
}
