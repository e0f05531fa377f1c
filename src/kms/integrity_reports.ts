/**
 * Rate-limited reports of access point rows that fail their integrity check. The rows are
 * the database writer's, and the server meets them on requests anyone can send: one
 * permanent audit entry per failing row per request (or per `kms ap list` run) would let an
 * unauthenticated client, or a writer inserting junk rows, grow the audit log without bound.
 * So the request path reports an id at most once per {@link ReportLimits.perIdMs} and at most
 * {@link ReportLimits.perMinute} entries a minute overall; what is held back is counted into
 * the next entry. A listing reports all its failing rows in one entry.
 */
import type { AuditLog } from "./audit.ts";
import { auditText } from "./audit_chain.ts";

/** What one report says. */
export interface IntegrityReport {
  /** Row ids (untrusted text), at most {@link IDS_PER_REPORT} of them. */
  readonly ids: readonly string[];
  /** How many rows this report covers (more than `ids` for a long listing). */
  readonly count: number;
  /** Failures held back by the limits since the previous report. */
  readonly suppressed: number;
  /** What failed, for the operator ("failed its integrity check", ...). */
  readonly what: string;
}

/** Writes one report (stderr line and audit entry); never rejects. */
export type IntegritySink = (report: IntegrityReport) => Promise<void>;

export interface ReportLimits {
  readonly perIdMs: number;
  readonly perMinute: number;
}

/** Ids named in one report; the count says how many there were. */
export const IDS_PER_REPORT = 5;
const DEFAULT_LIMITS: ReportLimits = { perIdMs: 3_600_000, perMinute: 10 };
/** Ids remembered for the per-id limit (memory stays bounded whatever the table holds). */
const MAX_REMEMBERED = 10_000;

export class IntegrityReports {
  private readonly lastById = new Map<string, number>();
  private windowStart = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private suppressed = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly sink: IntegritySink,
    private readonly limits: ReportLimits = DEFAULT_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** One failing row met on the request path: reported unless a limit holds it back. */
  one(id: string, what: string): void {
    const t = this.now();
    const last = this.lastById.get(id);
    if (last !== undefined && t - last < this.limits.perIdMs) {
      this.suppressed++;
      return;
    }
    if (t - this.windowStart >= 60_000) {
      this.windowStart = t;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.limits.perMinute) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    if (this.lastById.size >= MAX_REMEMBERED) this.lastById.clear();
    this.lastById.set(id, t);
    this.emit([id], 1, what);
  }

  /** The failing rows of one listing: one report for all of them. */
  many(ids: readonly string[], what: string): void {
    if (ids.length > 0) this.emit(ids.slice(0, IDS_PER_REPORT), ids.length, what);
  }

  private emit(ids: readonly string[], count: number, what: string): void {
    const suppressed = this.suppressed;
    this.suppressed = 0;
    const report = this.sink({ ids, count, suppressed, what }).finally(() => this.pending.delete(report));
    this.pending.add(report);
  }

  /** Resolves once every report made so far is written. */
  async settled(): Promise<void> {
    await Promise.all(this.pending);
  }

  /**
   * At shutdown: what the limits still hold back goes into one last report (no ids, count 0),
   * since no later entry would carry it; then every report is written.
   */
  async finish(): Promise<void> {
    if (this.suppressed > 0) this.emit([], 0, "held back by the rate limit until shutdown");
    await this.settled();
  }
}

/** Where operator lines go: `warn` when given, else stderr. */
export function warnOrStderr(warn?: (line: string) => void): (line: string) => void {
  return warn ?? ((line) => process.stderr.write(`${line}\n`));
}

/** What a sink reports on: the noun for one and for many, and the audit operation. */
export interface IntegritySubject {
  readonly one: string;
  readonly many: string;
  readonly operation: string;
}

/** Access point rows failing their MAC (access_point_store.ts). */
export const ACCESS_POINT_SUBJECT: IntegritySubject = {
  one: "access point",
  many: "access points",
  operation: "AccessPointIntegrity",
};
/** Secret reads the audit log does not back (secret_log.ts). */
export const SECRET_SUBJECT: IntegritySubject = {
  one: "secret",
  many: "secrets",
  operation: "SecretIntegrity",
};

/**
 * What happens when rows fail their check (IntegrityReports decides how often): one line to
 * the operator (stderr unless `warn` is given) and one audit entry. The ids are the rows' own
 * text, so they are escaped like any audit field.
 */
export function auditingSink(
  audit: AuditLog,
  warn?: (line: string) => void,
  subject: IntegritySubject = ACCESS_POINT_SUBJECT,
): IntegritySink {
  const say = warnOrStderr(warn);
  return async ({ ids, count, suppressed, what }) => {
    const named = ids.map((id) => auditText(id)).join(" ");
    const rows =
      count === 1
        ? `${subject.one} ${named}`
        : `${count} ${subject.many} (${named}${count > ids.length ? " ..." : ""})`;
    const held =
      suppressed > 0 ? `; ${suppressed} more failures since the last entry not audited one by one` : "";
    const detail =
      count === 0
        ? `${suppressed} ${subject.one} integrity failures since the last entry ${what}`
        : `${rows} ${what}${held}`;
    say(`kms: ${detail}`);
    try {
      await audit.appendSoon({
        actor: "kms",
        source: "local",
        operation: subject.operation,
        keyId: "",
        outcome: "Tampered",
        requestId: "",
        detail,
      });
    } catch (err) {
      say(`kms: audit append of an integrity failure failed: ${(err as Error).message}`);
    }
  };
}
