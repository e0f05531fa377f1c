/**
 * Which version of a secret carries which stage, as the audit log says. The `secret_stages`
 * rows are the database writer's: without the master key they cannot forge a value, but they
 * could point ACSCurrent at an older value of the same secret (a rotated password rolled back)
 * and it would open, since its AAD names only secret and version. A per-row MAC would not
 * help either: an old stage row put back whole carries the MAC it was written with.
 *
 * So the log is the authority. Every secret write commits with its admin entry in one
 * transaction (AuditLog.appendWith): CreateSecret and PutSecretValue name the version and the
 * SHA-256 of its sealed bytes (IV and ciphertext, nothing secret), DeleteSecret ends the
 * secret. Replaying those entries in order gives, per secret, its current and previous
 * version and the digest of each version; a read returns a version only when the log knows
 * it, with those bytes, and, read by stage, only when the log gives it that stage.
 *
 * The entries are read like revocations (access_point_store.ts): incrementally from a marker
 * on the newest entry of ours seen, once per change of the store, and only entries whose hash
 * and MAC the audit key made count. Entries from before digests (old format) still name the
 * version; for those the version's presence in the log is checked, not its bytes.
 */
import { createHash } from "node:crypto";
import { AUDIT_COLUMNS, type AuditRow, safeEqual } from "./audit_chain.ts";
import type { Memo } from "./read_cache.ts";
import type { SecretVersionRecord } from "./secret_store.ts";
import type { SqlExecutor } from "./store/driver.ts";
import type { Store } from "./store.ts";

/** The admin operations that change secrets, as audited. */
export const SECRET_OPERATIONS = {
  create: "CreateSecret",
  put: "PutSecretValue",
  delete: "DeleteSecret",
} as const;
/** The audit keyId of a secret's entries. */
export const secretKeyId = (name: string): string => `secret:${name}`;

const DIGEST = "sha256=";
const START = { seq: 0, hash: Buffer.alloc(0) };

/** What the log says about one secret. */
export interface SecretHistory {
  /** Every version the log created for it, with its sealed bytes' digest (null: old entry). */
  readonly versions: Map<string, string | null>;
  current: string | undefined;
  previous: string | undefined;
}

/** The digest a CreateSecret / PutSecretValue entry records: of the sealed bytes only. */
export function sealedDigest(iv: Buffer, sealed: Buffer): string {
  return createHash("sha256").update(iv).update(sealed).digest("hex");
}

/** The detail of a CreateSecret or PutSecretValue entry (version first, as before digests). */
export function secretDetail(versionId: string, digest: string, keyId?: string | null): string {
  const key = keyId === undefined ? "" : ` key=${keyId ?? "instance"}`;
  return `${versionId}${key} ${DIGEST}${digest}`;
}

/** The stages the log gives `versionId` (ACSCurrent, ACSPrevious), in sorted order. */
export function loggedStages(history: SecretHistory, versionId: string): string[] {
  const stages: string[] = [];
  if (history.current === versionId) stages.push("ACSCurrent");
  if (history.previous === versionId) stages.push("ACSPrevious");
  return stages;
}

/**
 * Why the log does not back `stored` (read by `stage` when given), or undefined when it does:
 * the log created that version of that secret, with those sealed bytes where its entry
 * records them, and gives it that stage.
 */
export function whyUnbacked(
  history: SecretHistory | undefined,
  stored: SecretVersionRecord,
  stage: string | undefined,
): string | undefined {
  const digest = history?.versions.get(stored.versionId);
  if (!history || digest === undefined) return `version ${stored.versionId} is not one the audit log created`;
  const actual = Buffer.from(sealedDigest(stored.iv, stored.sealed), "hex");
  if (digest !== null && !safeEqual(Buffer.from(digest, "hex"), actual))
    return `version ${stored.versionId} holds sealed bytes the audit log did not record`;
  if (stage !== undefined && !loggedStages(history, stored.versionId).includes(stage))
    return `gives ${stage} to version ${stored.versionId}, which the audit log does not`;
  return undefined;
}

type LogRow = AuditRow & { readonly part: "entry" | "newest" | "marker" };

/** The secrets' histories from the verified entries of one store's audit log. */
export class SecretLog {
  private readonly memo: Memo<ReadonlyMap<string, SecretHistory>>;
  private readonly histories = new Map<string, SecretHistory>();
  /** The newest entry of ours a read has seen (seq 0: none). */
  private marker: { readonly seq: number; readonly hash: Buffer } = START;

  /** `isOurs` tells an entry the audit log wrote (AuditLog.isOurs) from a writer's. */
  constructor(
    private readonly store: Store,
    private readonly isOurs: (row: AuditRow) => boolean,
  ) {
    this.memo = store.memo();
  }

  /** The history of `name`, or undefined when the log knows no such secret. */
  async history(name: string): Promise<SecretHistory | undefined> {
    return (await this.all()).get(name);
  }

  /**
   * Every secret's history, read once per change of the store. The marker's own entry is read
   * back each time: when it is gone or changed (entries deleted down to it), the histories are
   * rebuilt from the start, as the revocation read does.
   */
  private async all(): Promise<ReadonlyMap<string, SecretHistory>> {
    return this.memo.get("secrets", async () => {
      let rows = await secretRows(this.store.driver, this.marker.seq);
      const atMarker = rows.find((r) => r.part === "marker");
      if (
        this.marker.seq > 0 &&
        !(atMarker && this.isOurs(atMarker) && this.marker.hash.equals(atMarker.hash))
      ) {
        this.marker = START;
        this.histories.clear();
        rows = await secretRows(this.store.driver, 0);
      }
      for (const r of rows) {
        if (!this.isOurs(r)) continue;
        if (r.part === "entry" && Number(r.seq) > this.marker.seq) this.apply(r);
        if (Number(r.seq) > this.marker.seq) this.marker = { seq: Number(r.seq), hash: Buffer.from(r.hash) };
      }
      return this.histories;
    });
  }

  /**
   * The version the log makes ACSCurrent of `name`, read in `tx` (which holds the audit lock,
   * so no entry can be appended meanwhile): the newest admin entry of ours for it, when that
   * is a create or a put. What a new value's ACSPrevious must be, whatever the stage rows say.
   */
  async currentIn(tx: SqlExecutor, name: string): Promise<string | undefined> {
    const rows = await tx.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit WHERE operation IN ($1, $2, $3) AND key_id = $4 AND actor = 'admin' AND outcome = 'ok' ORDER BY seq DESC`,
      [SECRET_OPERATIONS.create, SECRET_OPERATIONS.put, SECRET_OPERATIONS.delete, secretKeyId(name)],
    );
    const newest = rows.find((r) => typeof r.detail === "string" && this.isOurs(r));
    if (!newest || newest.operation === SECRET_OPERATIONS.delete) return undefined;
    return newest.detail.split(" ")[0];
  }

  /** One verified entry, in log order. */
  private apply(r: LogRow): void {
    if (!r.key_id.startsWith("secret:")) return;
    const name = r.key_id.slice("secret:".length);
    if (r.operation === SECRET_OPERATIONS.delete) {
      this.histories.delete(name);
      return;
    }
    const [versionId = "", ...rest] = r.detail.split(" ");
    const digest = rest.find((t) => t.startsWith(DIGEST))?.slice(DIGEST.length) ?? null;
    let history = this.histories.get(name);
    if (r.operation === SECRET_OPERATIONS.create || !history) {
      history = { versions: new Map(), current: undefined, previous: undefined };
      this.histories.set(name, history);
    }
    history.previous = history.current;
    history.current = versionId;
    history.versions.set(versionId, digest);
  }
}

/**
 * An admin's successful secret entries after `after`, with the newest entry and the entry at
 * `after`, in one statement (one snapshot), ordered by seq. The (operation, seq) index makes
 * this a range read per operation, not a scan of the log.
 */
async function secretRows(db: SqlExecutor, after: number): Promise<LogRow[]> {
  const sql = `SELECT 'entry' AS part, ${AUDIT_COLUMNS} FROM audit WHERE operation IN ($2, $3, $4) AND seq > $1 AND actor = 'admin' AND outcome = 'ok'
    UNION ALL SELECT 'newest' AS part, ${AUDIT_COLUMNS} FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)
    UNION ALL SELECT 'marker' AS part, ${AUDIT_COLUMNS} FROM audit WHERE seq = $1`;
  const rows = await db.query<LogRow>(sql, [
    after,
    SECRET_OPERATIONS.create,
    SECRET_OPERATIONS.put,
    SECRET_OPERATIONS.delete,
  ]);
  return rows
    .filter((r) => r.part !== "entry" || (typeof r.detail === "string" && typeof r.key_id === "string"))
    .sort((a, b) => Number(a.seq) - Number(b.seq));
}
