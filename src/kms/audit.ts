/**
 * The append-only audit log. Each entry records time, who asked (access point or admin),
 * from where, the operation, the key, the outcome and the request id, and is chained to the
 * previous entry by hash. Each hash is also authenticated with an HMAC under a key only the
 * master key can unwrap, and the chain head is kept (MAC'd) in the metadata from the moment
 * the log exists (an empty log has a head at entry 0), so someone who can write the database
 * file can neither edit, drop, reorder, truncate nor wipe entries without `audit verify`
 * noticing, even if they recompute the hashes.
 *
 * What the database alone cannot show is a rollback to an older copy of itself: that copy is
 * consistent. The anchor file (optional, kept where the database's attacker cannot write)
 * holds the newest head this log reached, MAC'd; verify then fails on any log that ends
 * before the anchor or differs from it at the anchored entry.
 */
import {
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import type Database from "better-sqlite3";
import type { MasterKey } from "./master_key.ts";
import type { Store } from "./store.ts";

/** One audited event (what the caller supplies). */
export interface AuditEvent {
  /** Access point id, or `admin:<command>` for the CLI. */
  readonly actor: string;
  /** Client address, or `local`. */
  readonly source: string;
  readonly operation: string;
  /** Key id (or alias as given), empty when none. */
  readonly keyId: string;
  /** `ok` or the error code. */
  readonly outcome: string;
  readonly requestId: string;
  /** Free text, never secret (algorithm, message type, ...). */
  readonly detail: string;
}

/** An entry as stored. */
export interface AuditEntry extends AuditEvent {
  readonly seq: number;
  readonly time: string;
}

interface AuditRow {
  seq: number;
  time: string;
  actor: string;
  source: string;
  operation: string;
  key_id: string;
  outcome: string;
  request_id: string;
  detail: string;
  prev_hash: Buffer;
  hash: Buffer;
  mac: Buffer;
}

const GENESIS: Buffer = Buffer.alloc(32);
const HEAD = "audit.head";
const KEY = "audit.key";
/**
 * The audit key's wrapping label. "v2" marks a log whose head always exists; a key wrapped
 * under the old label comes from before that rule and is migrated (rewrapped) on open. Only
 * the master key can wrap, so a "v2" log cannot be passed off as an old one.
 */
const KEY_AAD = "audit-mac-key v2";
const OLD_KEY_AAD = "audit-mac-key";

/** The chain head as kept in the metadata and in the anchor file. */
interface Head {
  readonly seq: number;
  readonly hash: string;
  readonly mac: string;
}

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

function entryHash(prev: Buffer, e: AuditEntry): Buffer {
  const fields = [e.seq, e.time, e.actor, e.source, e.operation, e.keyId, e.outcome, e.requestId, e.detail];
  return createHash("sha256").update(prev).update(JSON.stringify(fields)).digest();
}

function mac(key: KeyObject, label: string, ...parts: (Buffer | string)[]): Buffer {
  const h = createHmac("sha256", key).update(label);
  for (const p of parts) h.update(p);
  return h.digest();
}

function headMac(key: KeyObject, seq: number, hash: Buffer): Buffer {
  return mac(key, "head", String(seq), ":", hash);
}

/** Writes and checks the audit chain of one store. */
export class AuditLog {
  /** The append transaction, compiled once (wrapping a function per batch cost as much as the batch). */
  private readonly appendTx: Database.Transaction<(events: readonly AuditEvent[], when: Date) => number[]>;

  constructor(
    private readonly store: Store,
    private readonly macKey: KeyObject,
    private readonly anchorPath?: string,
  ) {
    this.appendTx = store.db.transaction((events: readonly AuditEvent[], when: Date) =>
      this.appendInTransaction(events, when),
    );
  }

  /**
   * Opens the log of a store: unwraps its MAC key (creating it, with a head at entry 0, for a
   * new instance) and migrates a log from before the head rule. An existing instance whose
   * audit key is gone has had its log wiped: that is refused, never silently restarted.
   */
  static async open(store: Store, master: MasterKey, options: AuditLogOptions): Promise<AuditLog> {
    let blob = store.getMeta(KEY);
    if (!blob) {
      if (!options.creating) {
        throw new AuditLogError(
          "the audit log's key is missing from the database: the audit log was wiped or replaced",
        );
      }
      blob = store.initMeta(KEY, await master.wrap(randomBytes(32), KEY_AAD));
    }
    let raw: Buffer;
    let migrate = false;
    try {
      raw = await master.unwrap(blob, KEY_AAD);
    } catch {
      raw = await master.unwrap(blob, OLD_KEY_AAD);
      migrate = true;
    }
    const log = new AuditLog(store, createSecretKey(raw), options.anchorPath);
    // Only a new log, or an unused one from before the head rule, may be given a head here:
    // for any other, a missing head means a wipe, which verify must report. (An old-label key
    // copied back from a backup must not make a wiped log of a used instance look unused.)
    const mayAddHead = options.creating || (migrate && store.holdsNothing());
    if (mayAddHead || migrate) {
      const rewrapped = migrate ? await master.wrap(raw, KEY_AAD) : undefined;
      log.adoptEmpty(rewrapped, mayAddHead);
    }
    raw.fill(0);
    return log;
  }

  /**
   * Gives a log without a head one at entry 0 when it has no entries (an old or new empty
   * log), and stores the rewrapped key of a migrated log, in one transaction. A log with
   * entries but no head is left alone for verify to report.
   */
  private adoptEmpty(rewrapped: Buffer | undefined, mayAddHead: boolean): void {
    this.store.db
      .transaction(() => {
        const empty = this.store.statement("SELECT seq FROM audit LIMIT 1").get() === undefined;
        if (mayAddHead && empty && !this.store.getMeta(HEAD))
          this.store.setMeta(HEAD, Buffer.from(JSON.stringify(this.head(0, GENESIS))));
        if (rewrapped) this.store.setMeta(KEY, rewrapped);
      })
      .immediate();
  }

  private head(seq: number, hash: Buffer): Head {
    return { seq, hash: hash.toString("hex"), mac: headMac(this.macKey, seq, hash).toString("hex") };
  }

  private pending: { event: AuditEvent; resolve: (seq: number) => void; reject: (err: unknown) => void }[] =
    [];

  /** Appends one event in its own transaction (serialised across processes); returns its number. */
  append(event: AuditEvent, when = new Date()): number {
    return this.appendAll([event], when)[0] as number;
  }

  /**
   * Appends an event together with the others queued in the same turn of the event loop: one
   * transaction (group commit) for all of them. Resolves once the entry is committed, which is
   * what a server waits for before it acknowledges a request.
   */
  appendSoon(event: AuditEvent): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending.splice(0);
    try {
      const seqs = this.appendAll(batch.map((p) => p.event));
      for (const [i, p] of batch.entries()) p.resolve(seqs[i] as number);
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  private appendAll(events: readonly AuditEvent[], when = new Date()): number[] {
    // IMMEDIATE: take the write lock first, so two processes cannot read the same chain head.
    const seqs = this.appendTx.immediate(events, when);
    if (this.anchorPath !== undefined) this.writeAnchor(this.anchorPath);
    return seqs;
  }

  /**
   * Copies the committed head to the anchor file (write, then rename: never half a file).
   * Another process may have anchored a later head meanwhile; the anchor never moves back,
   * and is never moved past an anchored entry this log does not contain: appending to a
   * rolled-back database must not erase the evidence that verify reports.
   */
  private writeAnchor(path: string): void {
    const head = this.store.getMeta(HEAD);
    const seq = head ? parseHead(head.toString())?.seq : undefined;
    if (!head || seq === undefined) return;
    const current = readHead(path);
    if (current && (current.seq >= seq || this.hashAt(current.seq)?.toString("hex") !== current.hash)) return;
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${head.toString()}\n`, { mode: 0o600 });
    renameSync(tmp, path);
  }

  private appendInTransaction(events: readonly AuditEvent[], when: Date): number[] {
    const last = this.store.statement("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").get() as
      | { seq: number; hash: Buffer }
      | undefined;
    let seq = last?.seq ?? 0;
    let prev: Buffer = last ? Buffer.from(last.hash) : GENESIS;
    const insert = this.store.statement("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    const seqs = events.map((event) => {
      const entry: AuditEntry = { ...event, seq: ++seq, time: when.toISOString() };
      const hash = entryHash(prev, entry);
      insert.run(
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
        mac(this.macKey, "entry", hash),
      );
      prev = hash;
      return entry.seq;
    });
    this.store.setMeta(HEAD, Buffer.from(JSON.stringify(this.head(seq, prev))));
    return seqs;
  }

  /** Entries in order, optionally only the last `limit`. */
  entries(limit?: number): AuditEntry[] {
    const sql =
      limit === undefined
        ? "SELECT * FROM audit ORDER BY seq"
        : "SELECT * FROM (SELECT * FROM audit ORDER BY seq DESC LIMIT ?) ORDER BY seq";
    const rows = (
      limit === undefined ? this.store.db.prepare(sql).all() : this.store.db.prepare(sql).all(limit)
    ) as AuditRow[];
    return rows.map(toEntry);
  }

  /**
   * Walks the whole chain, then checks the head and, with an anchor file, that the log
   * reaches the anchored entry unchanged. The first problem found, or ok with the count.
   */
  verify(): AuditVerdict {
    const anchor = this.anchorPath === undefined ? undefined : readHead(this.anchorPath);
    if (this.anchorPath !== undefined && !anchor) {
      return {
        ok: false,
        count: 0,
        seq: 0,
        reason: `the anchor file ${this.anchorPath} is missing or unreadable`,
      };
    }
    if (anchor && !this.headIsOurs(anchor)) {
      return {
        ok: false,
        count: 0,
        seq: anchor.seq,
        reason: "the anchor file's MAC is wrong (not this log's)",
      };
    }
    const walked = this.walk(anchor?.seq ?? 0);
    if ("ok" in walked) return walked;
    const { count, last, atAnchor } = walked;
    const bad = (seq: number, reason: string): AuditVerdict => ({ ok: false, count, seq, reason });
    const headRaw = this.store.getMeta(HEAD);
    if (!headRaw) return bad(count, "the chain head record is missing (the log was wiped)");
    const head = parseHead(headRaw.toString());
    if (!head || !this.headIsOurs(head)) return bad(head?.seq ?? count, "the chain head record was altered");
    if (head.seq !== count || head.hash !== last.toString("hex")) {
      return bad(head.seq, `the log ends at ${count} but was written up to ${head.seq}`);
    }
    if (!anchor) return { ok: true, count };
    if (anchor.seq > count) {
      return bad(
        anchor.seq,
        `the log ends at ${count} but the anchor file records ${anchor.seq} (rolled back)`,
      );
    }
    if (atAnchor?.toString("hex") !== anchor.hash) {
      return bad(anchor.seq, "it differs from the anchored entry (the log was replaced)");
    }
    return { ok: true, count, anchored: anchor.seq };
  }

  /** Checks every entry's number, link, hash and MAC; keeps the hash of entry `keep`. */
  private walk(keep: number): AuditVerdict | { count: number; last: Buffer; atAnchor: Buffer | undefined } {
    let prev: Buffer = GENESIS;
    let atAnchor = keep === 0 ? GENESIS : undefined;
    let count = 0;
    for (const row of this.store.db
      .prepare("SELECT * FROM audit ORDER BY seq")
      .iterate() as Iterable<AuditRow>) {
      const entry = toEntry(row);
      const bad = (reason: string): AuditVerdict => ({ ok: false, count, seq: entry.seq, reason });
      if (entry.seq !== count + 1) return bad(`entry ${count + 1} is missing`);
      if (!Buffer.from(row.prev_hash).equals(prev)) return bad("does not chain to the previous entry");
      const hash = entryHash(prev, entry);
      if (!safeEqual(hash, Buffer.from(row.hash))) return bad("its contents do not match its hash (edited)");
      if (!safeEqual(mac(this.macKey, "entry", hash), Buffer.from(row.mac))) {
        return bad("its MAC is wrong (rewritten without the master key)");
      }
      prev = hash;
      count++;
      if (count === keep) atAnchor = hash;
    }
    return { count, last: prev, atAnchor };
  }

  /** The stored hash of entry `seq` (the all-zero genesis for 0), if the log has that entry. */
  private hashAt(seq: number): Buffer | undefined {
    if (seq === 0) return GENESIS;
    const row = this.store.statement("SELECT hash FROM audit WHERE seq = ?").get(seq) as
      | { hash: Buffer }
      | undefined;
    return row ? Buffer.from(row.hash) : undefined;
  }

  private headIsOurs(head: Head): boolean {
    return safeEqual(
      headMac(this.macKey, head.seq, Buffer.from(head.hash, "hex")),
      Buffer.from(head.mac, "hex"),
    );
  }
}

/** A head read from a file, or undefined when the file is missing or not a head. */
function readHead(path: string): Head | undefined {
  try {
    return parseHead(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** A head from its JSON text, or undefined when the text is not one (edited by hand, cut short). */
function parseHead(text: string): Head | undefined {
  try {
    const head = JSON.parse(text) as Partial<Head> | null;
    const valid =
      Number.isSafeInteger(head?.seq) &&
      (head?.seq as number) >= 0 &&
      typeof head?.hash === "string" &&
      typeof head?.mac === "string";
    return valid ? (head as Head) : undefined;
  } catch {
    return undefined;
  }
}

/** The result of {@link AuditLog.verify}. */
export type AuditVerdict =
  /** `anchored`: the entry the anchor file vouches the log reached (absent without an anchor). */
  | { readonly ok: true; readonly count: number; readonly anchored?: number }
  | { readonly ok: false; readonly count: number; readonly seq: number; readonly reason: string };

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function toEntry(r: AuditRow): AuditEntry {
  return {
    seq: r.seq,
    time: r.time,
    actor: r.actor,
    source: r.source,
    operation: r.operation,
    keyId: r.key_id,
    outcome: r.outcome,
    requestId: r.request_id,
    detail: r.detail,
  };
}
