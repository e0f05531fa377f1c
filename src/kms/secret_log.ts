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
 * The entries are read like revocations, through an AuditTail (audit_tail.ts): incrementally,
 * once per change of the store, and only entries whose hash and MAC the audit key made count.
 * Entries from before digests (old format) still name the version; for those the version's
 * presence in the log is checked, not its bytes.
 */
import { createHash } from "node:crypto";
import { AUDIT_COLUMNS, type AuditRow, safeEqual } from "./audit_chain.ts";
import { AuditTail, type TailRow, type VerifiedLog } from "./audit_tail.ts";
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
/** Entries a secret write reads per page while looking for its secret's newest entry. */
const CURRENT_PAGE = 16;

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

/** The secrets' histories from the verified entries of one store's audit log. */
export class SecretLog {
  private readonly tail: AuditTail<Map<string, SecretHistory>>;

  /** `log`: the audit log, which tells its entries from a writer's. */
  constructor(
    store: Store,
    private readonly log: VerifiedLog,
  ) {
    this.tail = new AuditTail(store, log, {
      operations: Object.values(SECRET_OPERATIONS),
      empty: () => new Map(),
      apply: applySecretEntry,
    });
  }

  /** The secrets the log created and has not deleted. */
  async names(): Promise<string[]> {
    return [...(await this.tail.read()).keys()];
  }

  /** The history of `name`, or undefined when the log knows no such secret. */
  async history(name: string): Promise<SecretHistory | undefined> {
    return (await this.tail.read()).get(name);
  }

  /**
   * The version the log makes ACSCurrent of `name`, read in `tx` (which holds the audit lock,
   * so no entry can be appended meanwhile): the newest admin entry of ours for it, when that
   * is a create or a put. What a new value's ACSPrevious must be, whatever the stage rows say.
   */
  async currentIn(tx: SqlExecutor, name: string): Promise<string | undefined> {
    // Newest first, a page at a time through the (key_id, seq) index: forged rows a writer
    // put on top are skipped, however many.
    for (let below = Number.MAX_SAFE_INTEGER; ; ) {
      const rows = await tx.query<AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM audit WHERE key_id = $1 AND seq < $2 AND operation IN ($3, $4, $5) AND actor = 'admin' AND outcome = 'ok' ORDER BY seq DESC LIMIT ${CURRENT_PAGE}`,
        [secretKeyId(name), below, ...Object.values(SECRET_OPERATIONS)],
      );
      const newest = rows.find((r) => typeof r.detail === "string" && this.log.isOurs(r));
      if (newest)
        return newest.operation === SECRET_OPERATIONS.delete ? undefined : newest.detail.split(" ")[0];
      if (rows.length < CURRENT_PAGE) return undefined;
      below = Number(rows[rows.length - 1]!.seq);
    }
  }
}

/** Folds one verified secret entry, in log order, into the histories. */
function applySecretEntry(histories: Map<string, SecretHistory>, r: TailRow): void {
  if (!r.key_id.startsWith("secret:")) return;
  const name = r.key_id.slice("secret:".length);
  if (r.operation === SECRET_OPERATIONS.delete) {
    histories.delete(name);
    return;
  }
  const [versionId = "", ...rest] = r.detail.split(" ");
  const digest = rest.find((t) => t.startsWith(DIGEST))?.slice(DIGEST.length) ?? null;
  let history = histories.get(name);
  if (r.operation === SECRET_OPERATIONS.create || !history) {
    history = { versions: new Map(), current: undefined, previous: undefined };
    histories.set(name, history);
  }
  history.previous = history.current;
  history.current = versionId;
  history.versions.set(versionId, digest);
}
