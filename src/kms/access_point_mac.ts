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
 * Upgrade: rows written by versions before this one have no MAC (NULL); access_point_upgrade.ts
 * seals those the verified audit log backs, once.
 */
import { createHmac, type KeyObject } from "node:crypto";
import { safeEqual } from "./audit_chain.ts";

/** The HKDF info the access point MAC key is derived with (never the audit key's uses). */
export const ACCESS_POINT_MAC_INFO = "hsmkit kms access point row MAC key v1";
/** The first bytes of every access point MAC input: what it is and its encoding's version. */
const MAC_LABEL = "hsmkit kms access point row v1";

/**
 * The columns of the access_points table, MAC aside, in the order they are MAC'd and inserted:
 * one list, so the MAC input and the INSERT cannot drift apart.
 */
export const AP_FIELDS = ["id", "name", "public_der", "policy", "state", "created_at", "revoked_at"] as const;
/** {@link AP_FIELDS} as an SQL column list. */
export const AP_COLUMNS = AP_FIELDS.join(", ");

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
    for (const name of AP_FIELDS) h.update(field(row[name]));
    return h.digest();
  }

  /**
   * True when the row has the column types it was written with and its MAC is present and
   * right (constant-time compare). The types first: the MAC covers bytes, not SQLite's storage
   * class, so a state turned into a BLOB of the same bytes would verify and then compare
   * unequal to "Active" everywhere, and an INTEGER would make the MAC input throw.
   */
  verify(row: ApRow): boolean {
    return wellTyped(row) && row.mac !== null && safeEqual(this.mac(row), Buffer.from(row.mac));
  }
}

/** True when every column holds the JS type the store writes (what the database returns). */
export function wellTyped(row: ApRow): boolean {
  const r = row as unknown as Record<string, unknown>;
  const texts = ["id", "name", "policy", "state", "created_at"] as const;
  return (
    texts.every((c) => typeof r[c] === "string") &&
    Buffer.isBuffer(r.public_der) &&
    (r.revoked_at === null || typeof r.revoked_at === "string") &&
    (r.mac === null || Buffer.isBuffer(r.mac))
  );
}

/** The row values in {@link AP_FIELDS} order, for an INSERT. */
export function rowValues(row: Omit<ApRow, "mac">): (string | Buffer | null)[] {
  return AP_FIELDS.map((name) => row[name]);
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
