/**
 * The audit log's records and the cryptography that chains them: what an entry is, how its
 * hash links it to the previous one, how hashes and the chain head are MAC'd, and how a head
 * is written to and read from text (the metadata row and the anchor file). No storage here:
 * audit.ts appends and verifies through the store.
 */
import { createHash, createHmac, type KeyObject, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SqlExecutor } from "./store/driver.ts";

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

/** Longest text kept in an audit field; the rest is cut and marked. */
export const MAX_AUDIT_FIELD = 512;

/**
 * A caller-controlled string made fit for the audit table: control characters (NUL included,
 * which PostgreSQL refuses in text and which would fail a whole group commit) and lone UTF-16
 * surrogates are written as \uXXXX escapes, and the text is cut at {@link MAX_AUDIT_FIELD}
 * characters, so no request can fail other requests' entries or grow the log by megabytes.
 */
export function auditText(text: string): string {
  const escaped = text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
    /[\u0000-\u001f\u007f-\u009f]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return escaped.length <= MAX_AUDIT_FIELD ? escaped : `${escaped.slice(0, MAX_AUDIT_FIELD)}...(cut)`;
}

/** Every text field of an event through {@link auditText}. */
export function auditableEvent(e: AuditEvent): AuditEvent {
  return {
    actor: auditText(e.actor),
    source: auditText(e.source),
    operation: auditText(e.operation),
    keyId: auditText(e.keyId),
    outcome: auditText(e.outcome),
    requestId: auditText(e.requestId),
    detail: auditText(e.detail),
  };
}

/** An entry as stored. */
export interface AuditEntry extends AuditEvent {
  readonly seq: number;
  readonly time: string;
}

/** An audit row as the database returns it. */
export interface AuditRow {
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

/** The columns of the audit table, in insertion order. */
export const AUDIT_COLUMNS =
  "seq, time, actor, source, operation, key_id, outcome, request_id, detail, prev_hash, hash, mac";

/** The hash the first entry chains to. */
export const GENESIS: Buffer = Buffer.alloc(32);

/** The chain head as kept in the metadata and in the anchor file. */
export interface Head {
  readonly seq: number;
  readonly hash: string;
  readonly mac: string;
}

/** The result of verifying the log. */
export type AuditVerdict =
  /** `anchored`: the entry the anchor file vouches the log reached (absent without an anchor). */
  | { readonly ok: true; readonly count: number; readonly anchored?: number }
  | { readonly ok: false; readonly count: number; readonly seq: number; readonly reason: string };

/** The hash of `e`, chained to the previous entry's hash `prev`. */
export function entryHash(prev: Buffer, e: AuditEntry): Buffer {
  const fields = [e.seq, e.time, e.actor, e.source, e.operation, e.keyId, e.outcome, e.requestId, e.detail];
  return createHash("sha256").update(prev).update(JSON.stringify(fields)).digest();
}

/** HMAC-SHA256 of a label and parts under the audit key. */
export function auditMac(key: KeyObject, label: string, ...parts: (Buffer | string)[]): Buffer {
  const h = createHmac("sha256", key).update(label);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The head record for entry `seq` whose hash is `hash`, MAC'd. */
export function makeHead(key: KeyObject, seq: number, hash: Buffer): Head {
  return { seq, hash: hash.toString("hex"), mac: headMac(key, seq, hash).toString("hex") };
}

/** True when `head`'s MAC was made with `key`. */
export function headIsOurs(key: KeyObject, head: Head): boolean {
  return safeEqual(headMac(key, head.seq, Buffer.from(head.hash, "hex")), Buffer.from(head.mac, "hex"));
}

function headMac(key: KeyObject, seq: number, hash: Buffer): Buffer {
  return auditMac(key, "head", String(seq), ":", hash);
}

/** A head read from a file, or undefined when the file is missing or not a head. */
export function readHead(path: string): Head | undefined {
  try {
    return parseHead(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** A head from its JSON text, or undefined when the text is not one (edited by hand, cut short). */
export function parseHead(text: string): Head | undefined {
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

/** Constant-time equality of two MACs or hashes (false on a length mismatch). */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The entry of a row. */
export function toEntry(r: AuditRow): AuditEntry {
  return {
    seq: Number(r.seq),
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

/**
 * The stored hash of entry `seq` (the all-zero genesis for 0), or undefined when the log has no
 * such entry or its hash is not bytes (a writer's row may hold any storage class).
 */
export async function storedHash(db: SqlExecutor, seq: number): Promise<Buffer | undefined> {
  if (seq === 0) return GENESIS;
  const rows = await db.query<{ hash: unknown }>("SELECT hash FROM audit WHERE seq = $1", [seq]);
  const hash = rows[0]?.hash;
  return hash instanceof Uint8Array ? Buffer.from(hash) : undefined;
}
