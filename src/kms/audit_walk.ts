/**
 * The request path's proof that the audit log is whole: every entry after the last one this
 * process walked is the log's own (hash and MAC), numbered right after the one before and
 * chained to it (its prev_hash), and the log reaches the MAC'd head kept in the store and, with
 * an anchor file, the anchored head, at the very hashes those record. The readers of record
 * (audit_tail.ts: revocations, secret stages) walk before they trust what they read, so an
 * entry deleted, replaced by a forged row of the same number, or cut off the end, refuses the
 * requests that need the log instead of rolling back what it recorded.
 *
 * The walk is incremental and shared by every reader of one log: each entry is read and checked
 * once per process (one HMAC), the first walk after a start reads the whole log, as `kms audit
 * verify` does. The entry it stopped at is read back each time; when it is gone or changed, the
 * walk starts again from the first entry. What no walk can see is a whole database put back
 * together with its head: only an anchor kept elsewhere shows that.
 */
import type { KeyObject } from "node:crypto";
import {
  AUDIT_COLUMNS,
  type AuditRow,
  GENESIS,
  type Head,
  headIsOurs,
  parseHead,
  readHead,
  storedHash,
} from "./audit_chain.ts";
import { entryIsOurs, HEAD } from "./audit_verify.ts";
import type { SqlExecutor } from "./store/driver.ts";
import type { Store } from "./store.ts";

/** Entries read per page while walking. */
const WALK_PAGE = 2000;

/** The audit log is not whole: entries deleted, replaced or cut off. Requests that need it are refused. */
export class AuditGapError extends Error {
  constructor(message: string) {
    super(`the audit log is not whole: ${message} (edited in the database?)`);
    this.name = "AuditGapError";
  }
}

interface Walked {
  readonly seq: number;
  readonly hash: Buffer;
}

const START: Walked = { seq: 0, hash: GENESIS };

/** Walks one store's audit log forward, one walk at a time. */
export class AuditWalk {
  #walked: Walked = START;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly macKey: KeyObject,
    private readonly anchorPath: string | undefined,
  ) {}

  /** Resolves once the log is shown whole up to its newest entry; throws {@link AuditGapError}. */
  walk(): Promise<void> {
    const run = this.#queue.then(() => this.#walk());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #walk(): Promise<void> {
    // The heads first: entries appended after this read only extend the log past them.
    const heads = await this.#heads();
    let at = await this.#resume();
    for (;;) {
      const rows = await this.store.driver.query<AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT ${WALK_PAGE}`,
        [at.seq],
      );
      for (const row of rows) at = this.#step(at, row);
      this.#walked = at;
      if (rows.length < WALK_PAGE) break;
    }
    for (const [what, head] of heads) await this.#reaches(at, what, head);
  }

  /** Where to go on from: the last entry walked, when it is still there unchanged, else the start. */
  async #resume(): Promise<Walked> {
    const last = this.#walked;
    if (last.seq === 0) return START;
    const hash = await storedHash(this.store.driver, last.seq);
    return hash && last.hash.equals(hash) ? last : START;
  }

  /** The next entry after `at`, checked; returns it as the new position. */
  #step(at: Walked, row: AuditRow): Walked {
    const seq = Number(row.seq);
    if (seq !== at.seq + 1) throw new AuditGapError(`entry ${at.seq + 1} is missing`);
    if (!entryIsOurs(this.macKey, row)) throw new AuditGapError(`entry ${seq} is not the log's own`);
    if (!at.hash.equals(Buffer.from(row.prev_hash)))
      throw new AuditGapError(`entry ${seq} does not chain to entry ${at.seq}`);
    return { seq, hash: Buffer.from(row.hash) };
  }

  /** The MAC'd head in the store (which must exist and be ours) and the anchored one, if any. */
  async #heads(): Promise<Array<[string, Head]>> {
    const head = await ourStoredHead(this.store, this.macKey);
    if (!head) throw new AuditGapError("its head is missing or not the log's");
    const heads: Array<[string, Head]> = [["head", head]];
    const anchored = this.anchorPath === undefined ? undefined : readHead(this.anchorPath);
    if (anchored && !headIsOurs(this.macKey, anchored))
      throw new AuditGapError("the anchored head is not the log's");
    if (anchored) heads.push(["anchored entry", anchored]);
    return heads;
  }

  /** The walked log must hold `head`'s entry with `head`'s hash. */
  async #reaches(at: Walked, what: string, head: Head): Promise<void> {
    if (head.seq > at.seq)
      throw new AuditGapError(`it ends at entry ${at.seq}, before its ${what} ${head.seq}`);
    if ((await storedHash(this.store.driver, head.seq))?.toString("hex") !== head.hash)
      throw new AuditGapError(`entry ${head.seq} differs from its ${what}`);
  }
}

/** The head kept in the store, when there is one and the audit key made it (else undefined). */
export async function ourStoredHead(
  store: Store,
  macKey: KeyObject,
  tx?: SqlExecutor,
): Promise<Head | undefined> {
  const raw = await store.getMeta(HEAD, tx);
  const head = raw ? parseHead(raw.toString()) : undefined;
  return head && headIsOurs(macKey, head) ? head : undefined;
}
