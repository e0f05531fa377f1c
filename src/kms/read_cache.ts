/**
 * Memoised reads of the tables a request consults but rarely changes (keys, versions,
 * aliases, access points). Without them every request would run four or five SELECTs (each a
 * round trip to PostgreSQL) and re-parse the access point's policy; with them a request costs
 * one indexed read of the change counter, and a cached answer is used only while the counter
 * is provably unchanged:
 *
 * - every write to a cached table bumps the counter row in the same transaction (store.ts),
 *   whichever process or node makes it, so a node that reads the counter at the start of a
 *   request sees every change committed before it (an access point revoked on another node
 *   is refused on the very next request, not after a time-to-live);
 * - writes through this process also call {@link ChangeWatch.localWrite}, so its own later
 *   reads never wait for the next counter read.
 *
 * Any change empties every memo (changes are rare; being precise is not worth the risk). A
 * value loaded while a change was noticed is not kept: it may predate the change. Entries
 * also expire after {@link MEMO_MAX_AGE_MS}: the counter is a row in the database, and a
 * writer who freezes it (a trigger) must not keep a revoked access point cached for good.
 */

/** How long a memoised value is used at most, whatever the change counter says. */
export const MEMO_MAX_AGE_MS = 30_000;

/** Tells memos when the database may have changed since they last looked. */
export class ChangeWatch {
  private lastSeen: number | undefined;
  private current = 0;
  private reading: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  /** `readCounter` reads the database's change counter (one indexed read). */
  constructor(private readonly readCounter: () => Promise<number>) {}

  /** A number that differs from any earlier one whenever the cached tables may have changed. */
  get generation(): number {
    return this.current;
  }

  /**
   * Reads the change counter; a new value starts a new generation. Callers share reads: one
   * that arrives while a read is in flight (which may have started before its change was
   * committed) waits for the next read, which starts after it arrived; every caller arriving
   * meanwhile shares that one. Under load a node reads the counter once per round trip, not
   * once per request.
   */
  refresh(): Promise<void> {
    if (!this.reading) {
      this.reading = this.read().finally(() => {
        this.reading = undefined;
      });
      return this.reading;
    }
    this.next ??= this.reading
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.refresh();
      });
    return this.next;
  }

  private async read(): Promise<void> {
    const seen = await this.readCounter();
    if (seen !== this.lastSeen) {
      this.lastSeen = seen;
      this.current++;
    }
  }

  /** Records a write made through this process (before its reads can see a stale memo). */
  localWrite(): void {
    this.current++;
  }
}

/** One memo table: values by string key, dropped as a whole when the watch reports a change. */
export class Memo<T> {
  private readonly entries = new Map<string, { readonly value: T; readonly at: number }>();
  private generation = -1;
  private readonly loading = new Map<
    string,
    { readonly generation: number; readonly value: Promise<unknown> }
  >();

  /** `maxEntries` bounds the entries kept (found values only; misses are never kept). */
  constructor(
    private readonly watch: ChangeWatch,
    private readonly maxEntries = 4096,
  ) {}

  /**
   * The memoised value for `key`, or `load()`'s, remembered until the next change when it
   * found something: a name that does not exist is looked up again each time, so callers
   * asking for endless made-up names cannot fill memory or push out real entries. Callers
   * missing the same key in the same generation share one load (one query, not one each).
   */
  async get<R extends T | undefined>(key: string, load: () => Promise<R>): Promise<R> {
    const generation = this.watch.generation;
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
    }
    const hit = this.entries.get(key);
    const now = Date.now();
    if (hit !== undefined && now - hit.at < MEMO_MAX_AGE_MS && now >= hit.at) return hit.value as R;
    const inFlight = this.loading.get(key);
    if (inFlight?.generation === generation) return inFlight.value as Promise<R>;
    const value = this.load(key, generation, now, load).finally(() => {
      if (this.loading.get(key)?.value === value) this.loading.delete(key);
    });
    this.loading.set(key, { generation, value });
    return value;
  }

  private async load<R extends T | undefined>(
    key: string,
    generation: number,
    now: number,
    load: () => Promise<R>,
  ): Promise<R> {
    const value = await load();
    // A change noticed while loading may have come after the load read: do not keep it.
    if (value === undefined || this.watch.generation !== generation || this.generation !== generation)
      return value;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, { value: value as T, at: now });
    return value;
  }
}
