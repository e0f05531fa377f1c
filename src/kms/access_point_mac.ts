/**
 * The MAC that makes access point rows as trustworthy as the wrapped keys beside them. An
 * access point row is an authorisation record: whoever can write the database (the SQLite
 * file, the PostgreSQL credentials every node holds) could otherwise re-enable a revoked
 * access point, swap its public key or widen its policy without the master key.
 *
 * The key is derived from the audit key (HKDF-SHA256, info {@link ACCESS_POINT_MAC_INFO}),
 * not stored in a record of its own: only the master key reaches it, it is independent of the
 * audit MACs (another key, and a label inside every MAC as well), and there is no key record
 * to delete so that a fresh key would be made and forged rows sealed under it.
 *
 * Upgrade: rows written by versions before this one have no MAC (NULL). They are sealed once,
 * when an instance is opened with the master key and the audit key is still under its older
 * label, in the transaction that relabels it, and the count is audited (SealAccessPoints).
 * After that a NULL MAC is refused like any wrong one, so nulling a MAC is no way back in.
 * What this cannot tell apart: a row edited by someone with database access *before* the
 * upgrade (it is sealed as it stands), and a database whose audit key record was put back
 * from a copy made before the upgrade (its NULL rows would be sealed again; the log then holds
 * a second SealAccessPoints entry, which is refused here as long as the log was not rolled
 * back with it, and an --audit-anchor catches that rollback).
 */
import { createHmac, type KeyObject } from "node:crypto";
import type { AuditEvent } from "./audit.ts";
import { safeEqual } from "./audit_chain.ts";
import type { SqlExecutor } from "./store/driver.ts";

/** The HKDF info the access point MAC key is derived with (never the audit key's uses). */
export const ACCESS_POINT_MAC_INFO = "hsmkit kms access point row MAC key v1";
/** The first bytes of every access point MAC input: what it is and its encoding's version. */
const MAC_LABEL = "hsmkit kms access point row v1";
/** The operation name of the upgrade's audit entry. */
export const SEAL_OPERATION = "SealAccessPoints";

/** The columns of the access_points table, MAC aside, in the order they are MAC'd. */
export const AP_COLUMNS = "id, name, public_der, policy, state, created_at, revoked_at";

/** An access point row as the database returns it. */
export interface ApRow {
  id: string;
  name: string;
  public_der: Buffer;
  /** The policy's JSON text exactly as stored: MAC'd as text, so no parser can differ. */
  policy: string;
  state: string;
  created_at: string;
  revoked_at: string | null;
  mac: Buffer | null;
}

/** MACs access point rows and checks them. */
export class AccessPointSeal {
  /** `key` is derived with {@link ACCESS_POINT_MAC_INFO} (AuditLog.deriveKey). */
  constructor(private readonly key: KeyObject) {}

  /**
   * HMAC-SHA256 over every column but the MAC. All of them, not a chosen few: id binds the
   * MAC to its row (no moving a MAC or a row's contents elsewhere); public_der is who may
   * sign; policy and state are what they may do and whether at all; revoked_at and
   * created_at are what listings and audits show; name is what admins revoke by. A column
   * left out would need a proof that editing it never matters; none is cheaper than this.
   * Each field is length-prefixed (a NULL apart from an empty value), never concatenated.
   */
  mac(row: Omit<ApRow, "mac">): Buffer {
    const h = createHmac("sha256", this.key);
    h.update(field(MAC_LABEL));
    for (const value of [
      row.id,
      row.name,
      row.public_der,
      row.policy,
      row.state,
      row.created_at,
      row.revoked_at,
    ])
      h.update(field(value));
    return h.digest();
  }

  /** True when the row's MAC is present and right (constant-time compare). */
  verify(row: ApRow): boolean {
    return row.mac !== null && safeEqual(this.mac(row), Buffer.from(row.mac));
  }
}

/**
 * One field of the MAC input: 0xff for NULL, else a 4-byte big-endian length and the bytes
 * (a length's first byte is 0xff only past 4 GiB, which no column holds).
 */
function field(value: string | Buffer | null): Buffer {
  if (value === null) return Buffer.from([0xff]);
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * The upgrade's work, run by AuditLog.finishUpgrade in its transaction: MACs every row that
 * has none, bumps the change counter (memos on every node drop what they read), and returns
 * the audit entry naming how many rows were sealed (none when there were none). Refuses to
 * seal when the log already records a seal: the upgrade happened, so a database that looks
 * older was put back in part, and its unsealed rows stay refused.
 */
export async function sealLegacyRows(tx: SqlExecutor, seal: AccessPointSeal): Promise<AuditEvent[]> {
  const rows = await tx.query<ApRow>(`SELECT ${AP_COLUMNS}, mac FROM access_points WHERE mac IS NULL`);
  if (rows.length === 0) return [];
  const earlier = await tx.query("SELECT seq FROM audit WHERE operation = $1 LIMIT 1", [SEAL_OPERATION]);
  if (earlier.length > 0) {
    return [
      sealEvent(
        "Refused",
        `${rows.length} access point rows without a MAC left unsealed: the log records an earlier upgrade`,
      ),
    ];
  }
  for (const row of rows) {
    await tx.exec("UPDATE access_points SET mac = $1 WHERE id = $2 AND mac IS NULL", [seal.mac(row), row.id]);
  }
  await tx.exec("UPDATE changes SET counter = counter + 1 WHERE id = 1");
  const ids = rows.map((r) => r.id).join(" ");
  return [sealEvent("ok", `${rows.length} access point rows from before access point MACs sealed: ${ids}`)];
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
