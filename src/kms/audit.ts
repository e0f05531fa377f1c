/**
 * The append-only audit log. Each entry records time, who asked (access point or admin),
 * from where, the operation, the key, the outcome and the request id, and is chained to the
 * previous entry by hash. Each hash is also authenticated with an HMAC under a key only the
 * master key can unwrap, and the chain head is kept (MAC'd) in the metadata from the moment
 * the log exists (an empty log has a head at entry 0), so someone who can write the database
 * can neither edit, drop, reorder, truncate nor wipe entries without `audit verify`
 * noticing, even if they recompute the hashes.
 *
 * Appends take the audit lock in the database for their transaction (store/driver.ts), so
 * every process and every node appends to one chain, in commit order, without gaps or forks;
 * each process still commits all the entries queued in one turn of its event loop together.
 *
 * What the database alone cannot show is a rollback to an older copy of itself: that copy is
 * consistent. The anchor file (optional, kept where the database's attacker cannot write)
 * holds the newest head this log reached, MAC'd; verify then fails on any log that ends
 * before the anchor or differs from it at the anchored entry.
 */
import { createSecretKey, hkdfSync, type KeyObject, randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import {
  AUDIT_COLUMNS,
  type AuditEntry,
  type AuditEvent,
  type AuditRow,
  type AuditVerdict,
  auditableEvent,
  auditMac,
  entryHash,
  GENESIS,
  makeHead,
  readHead,
  storedHash,
  toEntry,
} from "./audit_chain.ts";
import { entryIsOurs, HEAD, verifyLog } from "./audit_verify.ts";
import { AuditGapError, AuditWalk, ourStoredHead } from "./audit_walk.ts";
import type { MasterKey } from "./master_key.ts";
import { LOCKS, type SqlExecutor, type SqlValue } from "./store/driver.ts";
import type { Store } from "./store.ts";

export type { AuditEntry, AuditEvent, AuditVerdict } from "./audit_chain.ts";

const KEY = "audit.key";
/**
 * The audit key's wrapping label, which also records what the database's writers did. "v2"
 * marks a log whose head always exists; "v3" also marks a database whose access point rows
 * all carry a MAC (access_point_mac.ts). A key under an older label comes from an older
 * version and is rewrapped once the upgrade is done ({@link AuditLog.finishUpgrade}). Only the
 * master key can wrap, so a database cannot be passed off as older than it is (short of
 * putting back the key record of an older copy, which is why the verified log, not this
 * label, decides whether access point rows were sealed: see access_point_upgrade.ts).
 */
const KEY_AAD = "audit-mac-key v3";
/** The labels of older versions, newest first: v2 (head rule), then the first (neither). */
const OLD_KEY_AADS = ["audit-mac-key v2", "audit-mac-key"] as const;
const FIRST_KEY_AAD = "audit-mac-key";
/** Entries per INSERT statement (12 parameters each; SQLite allows 32766 per statement). */
const INSERT_CHUNK = 64;
const AUDIT_PLACEHOLDERS = Array.from({ length: 12 }, (_, i) => i + 1);

/** Why the audit log could not be opened. */
export class AuditLogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuditLogError";
  }
}

/** Options of {@link AuditLog.open}. */
export interface AuditLogOptions {
  /** The instance is being created: a missing audit key is made, not a sign of tampering. */
  readonly creating: boolean;
  /** A file to keep the newest head in after every append, and to check on verify. */
  readonly anchorPath?: string;
}

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: (seq: number) => void;
  readonly reject: (err: unknown) => void;
}

/** Writes and checks the audit chain of one store. */
export class AuditLog {
  private pending: Pending[] = [];
  private flushing = false;
  private scheduled = false;

  /** The request path's incremental proof that the log is whole. */
  private readonly walker: AuditWalk;

  private constructor(
    private readonly store: Store,
    private readonly macKey: KeyObject,
    private readonly anchorPath: string | undefined,
    /** The key as read at open and rewrapped under the current label, while an upgrade is due. */
    private upgrade: { readonly stored: Buffer; readonly rewrapped: Buffer } | undefined,
  ) {
    this.walker = new AuditWalk(store, macKey, anchorPath);
  }

  /**
   * Opens the log of a store: unwraps its MAC key (creating it, with a head at entry 0, for a
   * new instance) and migrates a log from before the head rule. An existing instance whose
   * audit key is gone has had its log wiped: that is refused, never silently restarted.
   */
  static async open(store: Store, master: MasterKey, options: AuditLogOptions): Promise<AuditLog> {
    let blob = await store.getMeta(KEY);
    if (!blob) {
      if (!options.creating) {
        throw new AuditLogError(
          "the audit log's key is missing from the database: the audit log was wiped or replaced",
        );
      }
      blob = await store.initMeta(KEY, await master.wrap(randomBytes(32), KEY_AAD));
    }
    const { raw, label } = await unwrapAnyLabel(master, blob);
    const upgrade =
      label === KEY_AAD ? undefined : { stored: blob, rewrapped: await master.wrap(raw, KEY_AAD) };
    const log = new AuditLog(store, createSecretKey(raw), options.anchorPath, upgrade);
    raw.fill(0);
    // Only a new log, or an unused one from before the head rule, may be given a head here:
    // for any other, a missing head means a wipe, which verify must report. (An old-label key
    // copied back from a backup must not make a wiped log of a used instance look unused.)
    if (options.creating || (label === FIRST_KEY_AAD && (await store.holdsNothing()))) await log.adoptEmpty();
    return log;
  }

  /**
   * Gives a log without a head one at entry 0 when it has no entries (an old or new empty
   * log). A log with entries but no head is left alone for verify to report.
   */
  private async adoptEmpty(): Promise<void> {
    await this.store.driver.transaction(LOCKS.audit, async (tx) => {
      const empty = (await tx.query("SELECT seq FROM audit LIMIT 1")).length === 0;
      if (empty && !(await this.store.getMeta(HEAD, tx)))
        await this.store.setMeta(HEAD, Buffer.from(JSON.stringify(makeHead(this.macKey, 0, GENESIS))), tx);
    });
  }

  /**
   * A key for another MAC, derived from the audit key with HKDF-SHA256 and `info` naming its
   * use: only the master key reaches it (through the audit key), it is independent of the
   * audit key and of keys derived for other uses, and it needs no record of its own that
   * someone could delete or replace.
   */
  deriveKey(info: string): KeyObject {
    const derived = Buffer.from(hkdfSync("sha256", this.macKey, Buffer.alloc(0), info, 32));
    const key = createSecretKey(derived);
    derived.fill(0);
    return key;
  }

  /**
   * Completes the upgrade from an older version in one transaction under the audit lock:
   * the log is verified, `work` runs with the verdict (it may write other tables), the events
   * it returns are appended, and, when it says it is done, the audit key is stored under the
   * current label, so the upgrade happens once, whole or not
   * at all. Does nothing when another process upgraded meanwhile (the stored key record is no
   * longer the one read at open) or no upgrade is due.
   */
  async finishUpgrade(
    work: (
      tx: SqlExecutor,
      verdict: AuditVerdict,
    ) => Promise<{
      readonly events: readonly AuditEvent[];
      readonly done: boolean;
      readonly notice?: string;
    }>,
  ): Promise<string | undefined> {
    const upgrade = this.upgrade;
    if (!upgrade) return undefined;
    let appended = false;
    let notice: string | undefined;
    await this.store.driver.transaction(LOCKS.audit, async (tx) => {
      if (!(await this.store.getMeta(KEY, tx))?.equals(upgrade.stored)) return;
      // Verified inside the transaction (under the audit lock): what `work` trusts is the log
      // as it is when it acts on it. A missing anchor file is no anchor yet: the first run
      // with a new --audit-anchor path is often this one, and its append creates the file.
      const outcome = await work(tx, await this.verify(tx, true));
      const { events, done } = outcome;
      notice = outcome.notice;
      if (events.length > 0) await this.appendInTransaction(tx, events, new Date());
      appended = events.length > 0;
      // Not done (the log failed to verify): the old label stays, so a later open tries again.
      if (done) await this.store.setMeta(KEY, upgrade.rewrapped, tx);
    });
    this.upgrade = undefined;
    if (appended && this.anchorPath !== undefined) await this.anchorCommittedHead(this.anchorPath);
    return notice;
  }

  /**
   * Runs a write to the cached tables and appends the events it returns in one transaction
   * (under the audit lock, counter bumped): the change and its entry commit together or not
   * at all, so the log never lacks a change that happened (a revocation the request path and
   * verify rely on). `work` may throw to write nothing.
   */
  async appendWith<T>(
    work: (tx: SqlExecutor) => Promise<{ readonly result: T; readonly events: readonly AuditEvent[] }>,
  ): Promise<T> {
    const result = await this.store.write(async (tx) => {
      const done = await work(tx);
      await this.appendInTransaction(tx, done.events, new Date());
      return done.result;
    }, LOCKS.audit);
    if (this.anchorPath !== undefined) await this.anchorCommittedHead(this.anchorPath);
    return result;
  }

  /** Appends one event in its own transaction (serialised across processes); returns its number. */
  async append(event: AuditEvent, when = new Date()): Promise<number> {
    return (await this.appendAll([event], when))[0] as number;
  }

  /**
   * Appends an event together with the others queued meanwhile: one transaction (group
   * commit) for all of them, one transaction in flight per process. Resolves once the entry is
   * committed, which is what a server waits for before it acknowledges a request.
   */
  appendSoon(event: AuditEvent): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled || this.pending.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    const batch = this.pending.splice(0);
    try {
      const seqs = await this.appendAll(batch.map((p) => p.event));
      for (const [i, p] of batch.entries()) p.resolve(seqs[i] as number);
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.flushing = false;
      this.schedule();
    }
  }

  private async appendAll(events: readonly AuditEvent[], when = new Date()): Promise<number[]> {
    const seqs = await this.store.driver.transaction(LOCKS.audit, (tx) =>
      this.appendInTransaction(tx, events, when),
    );
    if (this.anchorPath !== undefined) await this.anchorCommittedHead(this.anchorPath);
    return seqs;
  }

  private async appendInTransaction(
    tx: SqlExecutor,
    events: readonly AuditEvent[],
    when: Date,
  ): Promise<number[]> {
    const last = (
      await tx.query<{ seq: number; hash: Buffer }>("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
    )[0];
    let seq = last ? Number(last.seq) : 0;
    let prev: Buffer = last ? Buffer.from(last.hash) : GENESIS;
    // Appending to a log cut back, or put together with forged rows, would make a new head
    // that hides it: the last entry must be the one the MAC'd head names.
    const head = await ourStoredHead(this.store, this.macKey, tx);
    if (!head || head.seq !== seq || head.hash !== prev.toString("hex"))
      throw new AuditGapError(`its last entry (${seq}) is not its head: nothing more is appended`);
    const rows: SqlValue[][] = [];
    for (const event of events) {
      const entry: AuditEntry = { ...auditableEvent(event), seq: ++seq, time: when.toISOString() };
      const hash = entryHash(prev, entry);
      const mac = auditMac(this.macKey, "entry", hash);
      rows.push([
        entry.seq,
        entry.time,
        entry.actor,
        entry.source,
        entry.operation,
        entry.keyId,
        entry.outcome,
        entry.requestId,
        entry.detail,
        prev,
        hash,
        mac,
      ]);
      prev = hash;
    }
    // Several rows per statement: one round trip to PostgreSQL per chunk, not per entry.
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      const values = chunk.map((_, r) => `(${AUDIT_PLACEHOLDERS.map((n) => `$${r * 12 + n}`).join(", ")})`);
      await tx.exec(`INSERT INTO audit (${AUDIT_COLUMNS}) VALUES ${values.join(", ")}`, chunk.flat());
    }
    const seqs = rows.map((r) => r[0] as number);
    await this.store.setMeta(HEAD, Buffer.from(JSON.stringify(makeHead(this.macKey, seq, prev))), tx);
    return seqs;
  }

  /**
   * Copies the committed head to the anchor file (write, then rename: never half a file),
   * after the append's commit (an anchor ahead of the log would read as a rollback) and under
   * the audit lock again: every process anchoring to the file reads the newest head and
   * compares with the file one at a time, so the anchor neither moves back nor lags behind a
   * head whose appender anchored. It is never moved past an anchored entry this log does not
   * contain: appending to a rolled-back database must not erase the evidence verify reports.
   */
  private async anchorCommittedHead(path: string): Promise<void> {
    await this.store.driver.transaction(LOCKS.audit, async (tx) => {
      // Only a head the audit key made: a forged one must not become the anchor.
      const head = await ourStoredHead(this.store, this.macKey, tx);
      if (!head) return;
      const current = readHead(path);
      if (
        current &&
        (current.seq >= head.seq || (await storedHash(tx, current.seq))?.toString("hex") !== current.hash)
      )
        return;
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(head)}\n`, { mode: 0o600 });
      renameSync(tmp, path);
    });
  }

  /** Entries in order, optionally only the last `limit`. */
  async entries(limit?: number): Promise<AuditEntry[]> {
    const rows =
      limit === undefined
        ? await this.store.driver.query<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit ORDER BY seq`)
        : await this.store.driver.query<AuditRow>(
            `SELECT * FROM (SELECT ${AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT $1) AS newest ORDER BY seq`,
            [limit],
          );
    return rows.map(toEntry);
  }

  /**
   * Walks the whole chain, then checks the head and, with an anchor file, that the log
   * reaches the anchored entry unchanged (audit_verify.ts). The first problem found, or ok
   * with the count. `missingAnchorIsNone`: a missing anchor file is no anchor yet (the upgrade).
   */
  async verify(db: SqlExecutor = this.store.driver, missingAnchorIsNone = false): Promise<AuditVerdict> {
    return verifyLog({
      macKey: this.macKey,
      db,
      getHead: (tx) => this.store.getMeta(HEAD, tx),
      anchorPath: this.anchorPath,
      missingAnchorIsNone,
    });
  }

  /** True when `row` is an entry of this log, hash and MAC (not its place in the chain). */
  isOurs(row: AuditRow): boolean {
    return entryIsOurs(this.macKey, row);
  }

  /** Shows the log whole up to its newest entry (audit_walk.ts); throws AuditGapError. */
  walk(): Promise<void> {
    return this.walker.walk();
  }
}

/** Unwraps the audit key under the current label or, failing that, an older one. */
async function unwrapAnyLabel(master: MasterKey, blob: Buffer): Promise<{ raw: Buffer; label: string }> {
  const labels = [KEY_AAD, ...OLD_KEY_AADS];
  for (const [i, label] of labels.entries()) {
    try {
      return { raw: await master.unwrap(blob, label), label };
    } catch (err) {
      if (i === labels.length - 1) throw err;
    }
  }
  throw new AuditLogError("unreachable: no audit key label left to try");
}
