/**
 * Checking the audit log as stored: the whole chain with its head and anchor (verify), and one
 * entry on its own (its hash from its fields and recorded previous hash, and its MAC). Split
 * from audit.ts, which appends; both work with the audit key the log was opened with.
 */
import type { KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import {
  AUDIT_COLUMNS,
  type AuditRow,
  type AuditVerdict,
  auditMac,
  entryHash,
  GENESIS,
  headIsOurs,
  parseHead,
  readHead,
  safeEqual,
  toEntry,
} from "./audit_chain.ts";
import type { SqlExecutor } from "./store/driver.ts";

/** The metadata row holding the chain head. */
export const HEAD = "audit.head";
/** Rows read per query while verifying (memory stays flat however long the log). */
const VERIFY_PAGE = 1000;

/** Where verify reads: the database and the anchor file, with the audit key. */
export interface VerifyContext {
  readonly macKey: KeyObject;
  readonly db: SqlExecutor;
  readonly getHead: (db: SqlExecutor) => Promise<Buffer | undefined>;
  readonly anchorPath: string | undefined;
  /**
   * A missing anchor file means no anchor yet (the upgrade run with a new `--audit-anchor`
   * path, which its own append then creates). A file present but wrong still fails.
   */
  readonly missingAnchorIsNone?: boolean;
}

/**
 * True when `row` is an entry this log wrote: its fields hash, with the previous hash it
 * records, to its hash, and the hash carries the audit key's MAC. Says nothing about its place
 * in the chain (verify walks that): for reading single entries without walking the log.
 */
export function entryIsOurs(macKey: KeyObject, row: AuditRow): boolean {
  // A writer's row may hold any storage class: only BLOBs are ours.
  const buffers: unknown[] = [row.prev_hash, row.hash, row.mac];
  if (!buffers.every((b) => b instanceof Uint8Array)) return false;
  if (!Number.isSafeInteger(Number(row.seq))) return false;
  const hash = entryHash(Buffer.from(row.prev_hash), toEntry(row));
  return (
    safeEqual(hash, Buffer.from(row.hash)) && safeEqual(auditMac(macKey, "entry", hash), Buffer.from(row.mac))
  );
}

/**
 * Walks the whole chain, then checks the head and, with an anchor file, that the log
 * reaches the anchored entry unchanged. The first problem found, or ok with the count.
 */
export async function verifyLog(ctx: VerifyContext): Promise<AuditVerdict> {
  const { macKey, db, anchorPath } = ctx;
  const noAnchorYet = anchorPath !== undefined && ctx.missingAnchorIsNone === true && !existsSync(anchorPath);
  const anchor = anchorPath === undefined || noAnchorYet ? undefined : readHead(anchorPath);
  if (anchorPath !== undefined && !noAnchorYet && !anchor) {
    const reason = `the anchor file ${anchorPath} is missing or unreadable`;
    return { ok: false, count: 0, seq: 0, reason };
  }
  if (anchor && !headIsOurs(macKey, anchor)) {
    return {
      ok: false,
      count: 0,
      seq: anchor.seq,
      reason: "the anchor file's MAC is wrong (not this log's)",
    };
  }
  const walked = await walk(macKey, anchor?.seq ?? 0, db);
  if ("ok" in walked) return walked;
  const { count, last, atAnchor } = walked;
  const bad = (seq: number, reason: string): AuditVerdict => ({ ok: false, count, seq, reason });
  const headRaw = await ctx.getHead(db);
  if (!headRaw) return bad(count, "the chain head record is missing (the log was wiped)");
  const head = parseHead(headRaw.toString());
  if (!head || !headIsOurs(macKey, head)) return bad(head?.seq ?? count, "the chain head record was altered");
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
async function walk(
  macKey: KeyObject,
  keep: number,
  db: SqlExecutor,
): Promise<AuditVerdict | { count: number; last: Buffer; atAnchor: Buffer | undefined }> {
  let prev: Buffer = GENESIS;
  let atAnchor = keep === 0 ? GENESIS : undefined;
  let count = 0;
  let after = -1;
  for (;;) {
    const page = await db.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT ${VERIFY_PAGE}`,
      [after],
    );
    for (const row of page) {
      const entry = toEntry(row);
      const bad = (reason: string): AuditVerdict => ({ ok: false, count, seq: entry.seq, reason });
      if (entry.seq !== count + 1) return bad(`entry ${count + 1} is missing`);
      if (!Buffer.from(row.prev_hash).equals(prev)) return bad("does not chain to the previous entry");
      const hash = entryHash(prev, entry);
      if (!safeEqual(hash, Buffer.from(row.hash))) return bad("its contents do not match its hash (edited)");
      if (!safeEqual(auditMac(macKey, "entry", hash), Buffer.from(row.mac))) {
        return bad("its MAC is wrong (rewritten without the master key)");
      }
      prev = hash;
      count++;
      if (count === keep) atAnchor = hash;
      after = entry.seq;
    }
    if (page.length < VERIFY_PAGE) return { count, last: prev, atAnchor };
  }
}
