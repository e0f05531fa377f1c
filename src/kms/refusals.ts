/**
 * Requests refused before authentication (bad headers, bad signatures, unknown access points,
 * stalled bodies) are counted, not audited one by one: anyone can send them, and one audit row
 * each would let a flood fill the disk. Each flush writes one audit entry per distinct
 * (source, claimed actor, operation, outcome), at most {@link MAX_REFUSAL_GROUPS} + 1 per
 * interval, with the count and the time span. Every field is bounded before it is kept.
 */
import type { AuditEvent } from "./audit.ts";
import { isOperation } from "./policy.ts";

/** Distinct groups kept per interval; any further group is counted under "(other)". */
export const MAX_REFUSAL_GROUPS = 32;

/** What is known of a refused request: everything but `source` is the caller's unverified claim. */
export interface Refusal {
  readonly source: string;
  readonly claimedActor: string;
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

/** An access key id as the audit may keep it: well-formed, or a fixed placeholder. */
export function auditableActor(claimed: string): string {
  if (claimed === "") return "(none)";
  return ACCESS_POINT_ID.test(claimed) ? claimed : "(malformed)";
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
    const bounded: Refusal = {
      // Source addresses come from the socket, not the caller, but keep the row bounded anyway.
      source: r.source.slice(0, 64),
      claimedActor: auditableActor(r.claimedActor),
      claimedOperation: auditableOperation(r.claimedOperation),
      outcome: r.outcome,
    };
    let key = JSON.stringify(bounded);
    if (!this.groups.has(key) && this.groups.size >= MAX_REFUSAL_GROUPS) {
      key = OTHER;
      if (!this.groups.has(key)) {
        const other = { source: OTHER, claimedActor: OTHER, claimedOperation: OTHER, outcome: OTHER };
        this.groups.set(key, { refusal: other, count: 0, first: when.toISOString(), last: "" });
      }
    }
    const group = this.groups.get(key);
    const time = when.toISOString();
    if (group) {
      group.count++;
      group.last = time;
    } else this.groups.set(key, { refusal: bounded, count: 1, first: time, last: time });
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
