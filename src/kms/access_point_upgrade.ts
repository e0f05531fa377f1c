/**
 * Sealing the access point rows of versions before access point MACs (their mac is NULL). Run
 * once, by AuditLog.finishUpgrade, in the transaction that rewraps the audit key under its
 * "v3" label, after the audit chain (and the anchor, when one is configured) has verified.
 *
 * A row without a MAC is no evidence of anything: whoever can write the database can insert
 * one, and can put back the audit key record of a copy from before the upgrade, which makes an
 * upgrade look due again. So the verified log, not the label and not the row, decides:
 *
 * - a seal happens at most once: an upgrade always appends a SealAccessPoints entry with
 *   outcome ok (also for 0 rows), and a verified log holding one means the upgrade happened;
 *   rows with a MAC present mean the same (nothing before this version wrote one);
 * - a row is sealed only when the log backs it: an admin CreateAccessPoint entry for its id
 *   whose recorded name and key/secret patterns are the row's (and, for entries that record
 *   it, its public key's SHA-256), and a state of Revoked when the log revokes that id;
 * - every other row stays unsealed, so refused, and one entry says how many;
 * - a log that fails to verify gets no entry at all (an append would give a wiped log a fresh
 *   head): nothing is sealed, the operator is told, and the next open tries again.
 *
 * What the log cannot vouch for (it never recorded them): an edit before the upgrade to a
 * legacy row's operations, source addresses or (entries from before `spki=`) public key.
 */
import { createHash } from "node:crypto";
import { type AccessPointSeal, AP_COLUMNS, AP_FIELDS, type ApRow, wellTyped } from "./access_point_mac.ts";
import { type AuditEvent, type AuditVerdict, auditText } from "./audit_chain.ts";
import { type SqlExecutor, type SqlValue, StoreError } from "./store/driver.ts";
import type { AccessPolicy } from "./store.ts";

/** The operation name of the upgrade's audit entries. */
export const SEAL_OPERATION = "SealAccessPoints";
/** The operation names admin.ts audits access point creation and revocation with. */
export const CREATE_OPERATION = "CreateAccessPoint";
export const REVOKE_OPERATION = "RevokeAccessPoint";
/** Ids named in a seal entry's detail (the count and a hash of all of them name the rest). */
const IDS_SHOWN = 8;

/**
 * The detail of a CreateAccessPoint entry: id, name, key and secret patterns, and (from this
 * version on) the SHA-256 of the public key, so a later check can tell the row it describes.
 */
export function createdDetail(id: string, name: string, policy: AccessPolicy, publicDer?: Buffer): string {
  const secrets = policy.secrets ? ` secrets=${policy.secrets.join(",")}` : "";
  const spki = publicDer ? ` spki=${createHash("sha256").update(publicDer).digest("hex")}` : "";
  return `${id} ${name} keys=${policy.keys.join(",")}${secrets}${spki}`;
}

/** What the upgrade did: the entries to append, and whether the upgrade is over. */
export interface SealOutcome {
  readonly events: readonly AuditEvent[];
  /** False when the log did not verify: the label stays old and a later open tries again. */
  readonly done: boolean;
  /** What to tell the operator when nothing can be audited (the log failed to verify). */
  readonly notice?: string;
}

interface LogRow {
  operation: string;
  actor: string;
  outcome: string;
  detail: string;
}

/** Seals the legacy rows `verdict` (the log just verified, in `tx`) lets it seal. */
export async function sealLegacyRows(
  tx: SqlExecutor,
  seal: AccessPointSeal,
  verdict: AuditVerdict,
): Promise<SealOutcome> {
  const rows = await tx.query<ApRow>(`SELECT ${AP_COLUMNS}, mac FROM access_points WHERE mac IS NULL`);
  if (!verdict.ok) {
    // No entry: appending to a wiped or broken log would give it a fresh head and hide that.
    const notice = `kms: ${rows.length} access point rows without a MAC left unsealed: the audit log fails verification at entry ${verdict.seq} (${verdict.reason})`;
    return rows.length > 0 ? { events: [], done: false, notice } : { events: [], done: false };
  }
  const log = await tx.query<LogRow>(
    "SELECT operation, actor, outcome, detail FROM audit WHERE operation IN ($1, $2, $3) ORDER BY seq",
    [SEAL_OPERATION, CREATE_OPERATION, REVOKE_OPERATION],
  );
  const byAdmin = (op: string) =>
    log.filter((e) => e.operation === op && e.actor === "admin" && e.outcome === "ok").map((e) => e.detail);
  const refused = (why: string): SealOutcome => ({
    events: rows.length > 0 ? [refusal(rows.length, why)] : [],
    done: true,
  });
  if (log.some((e) => e.operation === SEAL_OPERATION && e.outcome === "ok"))
    return refused("the log records an earlier upgrade");
  if ((await tx.query("SELECT id FROM access_points WHERE mac IS NOT NULL LIMIT 1")).length > 0)
    return refused("rows with a MAC exist, so the upgrade happened before");
  const created = new Set(byAdmin(CREATE_OPERATION));
  const revoked = new Set(byAdmin(REVOKE_OPERATION));
  const sealed: string[] = [];
  for (const row of rows) {
    if (backed(row, created, revoked) && (await sealRow(tx, seal, row))) sealed.push(row.id);
  }
  // Exactly one row, as Store.write checks: otherwise the seal rolls back and open fails.
  if (sealed.length > 0 && (await tx.exec("UPDATE changes SET counter = counter + 1 WHERE id = 1")) !== 1) {
    throw new StoreError(
      "the change counter did not advance (its row is missing or a trigger blocks it): the database was tampered with; nothing was sealed",
    );
  }
  const events = [sealedEvent(sealed)];
  const unbacked = rows.length - sealed.length;
  if (unbacked > 0) events.push(refusal(unbacked, "the verified audit log does not back them"));
  return { events, done: true };
}

/**
 * True when the verified log backs `row`: created by an admin with this id, name and these
 * patterns (and public key, where the entry records it), and revoked if the log revoked it.
 */
function backed(row: ApRow, created: ReadonlySet<string>, revoked: ReadonlySet<string>): boolean {
  if (!wellTyped(row) || (row.state !== "Active" && row.state !== "Revoked")) return false;
  if (revoked.has(row.id) && row.state !== "Revoked") return false;
  let policy: AccessPolicy;
  try {
    policy = JSON.parse(row.policy) as AccessPolicy;
    if (!Array.isArray(policy.keys) || !Array.isArray(policy.operations)) return false;
  } catch {
    return false;
  }
  return (
    created.has(auditText(createdDetail(row.id, row.name, policy))) ||
    created.has(auditText(createdDetail(row.id, row.name, policy, row.public_der)))
  );
}

/**
 * MACs one row, only if every covered column still holds what was read and MAC'd: a writer
 * of an older version changing the row meanwhile (PostgreSQL) makes it seal nothing.
 */
async function sealRow(tx: SqlExecutor, seal: AccessPointSeal, row: ApRow): Promise<boolean> {
  // IS NOT DISTINCT FROM: equal, or both NULL (revoked_at), on PostgreSQL and SQLite >= 3.39.
  const same = AP_FIELDS.map((name, i) => `${name} IS NOT DISTINCT FROM $${i + 2}`).join(" AND ");
  const params: SqlValue[] = [seal.mac(row), ...AP_FIELDS.map((name) => row[name])];
  const changed = await tx.exec(`UPDATE access_points SET mac = $1 WHERE ${same} AND mac IS NULL`, params);
  return changed === 1;
}

/**
 * The seal entry. It names every sealed row: the count, the SHA-256 of the sorted ids (one
 * per line), and the first {@link IDS_SHOWN} ids; `kms ap list` shows the rest, and anyone can
 * recompute the hash over the ids listed there to check the entry covers exactly those.
 */
function sealedEvent(ids: readonly string[]): AuditEvent {
  const sorted = [...ids].sort();
  const hash = createHash("sha256").update(sorted.join("\n")).digest("hex");
  const shown = sorted.length > 0 ? `: ${sorted.slice(0, IDS_SHOWN).join(" ")}` : "";
  const more = sorted.length > IDS_SHOWN ? ` (+${sorted.length - IDS_SHOWN} more)` : "";
  return sealEvent(
    "ok",
    `${ids.length} access point rows from before access point MACs sealed, sorted ids sha256=${hash}${shown}${more}`,
  );
}

function refusal(count: number, why: string): AuditEvent {
  return sealEvent("Refused", `${count} access point rows without a MAC left unsealed: ${why}`);
}

function sealEvent(outcome: string, detail: string): AuditEvent {
  return {
    actor: "kms",
    source: "local",
    operation: SEAL_OPERATION,
    keyId: "",
    outcome,
    requestId: "",
    detail,
  };
}
