/**
 * Requests refused before authentication (bad headers, bad signatures, unknown access points,
 * stalled bodies) are counted, not audited one by one: anyone can send them, and one audit row
 * each would let a flood fill the disk. Each flush writes one audit entry per distinct
 * (source, claimed actor, operation, outcome), with the count and the time span. A claimed
 * actor is kept only when it names an existing access point, so made-up ids cannot multiply
 * the groups; once {@link MAX_REFUSAL_GROUPS} groups exist, further refusals are counted per
 * source (up to as many sources again), then all together: at most 2 × 32 + 1 entries an
 * interval, and a flood cannot push another source's refusals out of sight.
 */
import type { AuditEvent } from "./audit.ts";
import { isOperation } from "./policy.ts";

/** Distinct groups kept per interval; further refusals are counted per source, then under "(other)". */
export const MAX_REFUSAL_GROUPS = 32;

/** What is known of a refused request: everything but `source` is the caller's unverified claim. */
export interface Refusal {
  readonly source: string;
  readonly claimedActor: string;
  /** Whether `claimedActor` names an access point the store holds. */
  readonly actorExists: boolean;
  readonly claimedOperation: string;
  readonly outcome: string;
}

interface Group {
  readonly refusal: Refusal;
  count: number;
  readonly first: string;
  last: string;
}

const ACCESS_POINT_ID = /^KAAP\.[0-9A-Za-z-]{1,64}$/;
const OTHER = "(other)";

/** An access key id as the audit may keep it: an existing access point's, or a fixed placeholder. */
export function auditableActor(claimed: string, exists: boolean): string {
  if (claimed === "") return "(none)";
  if (!ACCESS_POINT_ID.test(claimed)) return "(malformed)";
  return exists ? claimed : "(unknown access point)";
}

/** An API name as the audit may keep it: a known operation, or a fixed placeholder. */
export function auditableOperation(claimed: string): string {
  if (claimed === "") return "(none)";
  return isOperation(claimed) ? claimed : "(unknown)";
}

/** Counts refusals between flushes. */
export class RefusalTally {
  private groups = new Map<string, Group>();

  /** Counts one refusal (fields are reduced to bounded forms here). */
  record(r: Refusal, when = new Date()): void {
    // Source addresses come from the socket, not the caller, but keep the row bounded anyway.
    const source = r.source.slice(0, 64);
    const bounded: Refusal = {
      source,
      claimedActor: auditableActor(r.claimedActor, r.actorExists),
      actorExists: r.actorExists,
      claimedOperation: auditableOperation(r.claimedOperation),
      outcome: r.outcome,
    };
    const fine = JSON.stringify(bounded);
    const bySource = `${OTHER} ${source}`;
    let key = fine;
    let refusal = bounded;
    if (!this.groups.has(fine) && this.groups.size >= MAX_REFUSAL_GROUPS) {
      const room = this.groups.has(bySource) || this.groups.size < 2 * MAX_REFUSAL_GROUPS;
      key = room ? bySource : OTHER;
      const where = room ? source : OTHER;
      refusal = {
        source: where,
        claimedActor: OTHER,
        actorExists: false,
        claimedOperation: OTHER,
        outcome: OTHER,
      };
    }
    const time = when.toISOString();
    const group = this.groups.get(key);
    if (group) {
      group.count++;
      group.last = time;
    } else this.groups.set(key, { refusal, count: 1, first: time, last: time });
  }

  /** The audit events for everything counted since the last call, and a fresh count. */
  drain(): AuditEvent[] {
    const groups = [...this.groups.values()];
    this.groups = new Map();
    return groups.map((g) => ({
      actor: g.refusal.claimedActor,
      source: g.refusal.source,
      operation: g.refusal.claimedOperation,
      keyId: "",
      outcome: g.refusal.outcome,
      requestId: "",
      detail: `${g.count} refused before authentication, ${g.first} to ${g.last}`,
    }));
  }
}
