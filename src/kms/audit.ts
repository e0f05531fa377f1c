/**
 * The append-only audit log. Each entry records time, who asked (access point or admin),
 * from where, the operation, the key, the outcome and the request id, and is chained to the
 * previous entry by hash. Each hash is also authenticated with an HMAC under a key only the
 * master key can unwrap, and the chain head is kept (MAC'd) in the metadata, so someone
 * who can write the database file can neither edit, drop, reorder nor truncate entries
 * without `audit verify` noticing, even if they recompute the hashes.
 */
import { createHash, createHmac, type KeyObject, timingSafeEqual } from "node:crypto";
import type Database from "better-sqlite3";
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
  ) {
    this.appendTx = store.db.transaction((events: readonly AuditEvent[], when: Date) =>
      this.appendInTransaction(events, when),
    );
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
    return this.appendTx.immediate(events, when);
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
    const head = JSON.stringify({
      seq,
      hash: prev.toString("hex"),
      mac: headMac(this.macKey, seq, prev).toString("hex"),
    });
    this.store.setMeta(HEAD, Buffer.from(head));
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

  /** Walks the whole chain; the first problem found, or ok with the entry count. */
  verify(): AuditVerdict {
    let prev: Buffer = GENESIS;
    let expectedSeq = 1;
    let count = 0;
    for (const row of this.store.db
      .prepare("SELECT * FROM audit ORDER BY seq")
      .iterate() as Iterable<AuditRow>) {
      const entry = toEntry(row);
      const bad = (reason: string): AuditVerdict => ({ ok: false, count, seq: entry.seq, reason });
      if (entry.seq !== expectedSeq) return bad(`entry ${expectedSeq} is missing`);
      if (!Buffer.from(row.prev_hash).equals(prev)) return bad("does not chain to the previous entry");
      const hash = entryHash(prev, entry);
      if (!safeEqual(hash, Buffer.from(row.hash))) return bad("its contents do not match its hash (edited)");
      if (!safeEqual(mac(this.macKey, "entry", hash), Buffer.from(row.mac))) {
        return bad("its MAC is wrong (rewritten without the master key)");
      }
      prev = hash;
      expectedSeq++;
      count++;
    }
    const headRaw = this.store.getMeta(HEAD);
    if (count === 0 && !headRaw) return { ok: true, count };
    if (!headRaw) return { ok: false, count, seq: count, reason: "the chain head record is missing" };
    const head = JSON.parse(headRaw.toString()) as { seq: number; hash: string; mac: string };
    const headHash: Buffer = Buffer.from(head.hash, "hex");
    if (!safeEqual(headMac(this.macKey, head.seq, headHash), Buffer.from(head.mac, "hex"))) {
      return { ok: false, count, seq: head.seq, reason: "the chain head record was altered" };
    }
    if (head.seq !== count || !headHash.equals(prev)) {
      return {
        ok: false,
        count,
        seq: head.seq,
        reason: `the log ends at ${count} but was written up to ${head.seq}`,
      };
    }
    return { ok: true, count };
  }
}

/** The result of {@link AuditLog.verify}. */
export type AuditVerdict =
  | { readonly ok: true; readonly count: number }
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
