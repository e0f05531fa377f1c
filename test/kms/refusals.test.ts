/**
 * The tally of refusals before authentication: bounded entries per interval, and a flood from
 * one source cannot hide another source's refusals or a real access point's name.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_REFUSAL_GROUPS, RefusalTally } from "../../src/kms/refusals.ts";

const OPS = ["Sign", "Verify", "Encrypt", "Decrypt", "GetPublicKey", "GenerateDataKey", "GenerateRandom"];

test("a flood that fills the groups leaves other sources counted by source, and the total bounded", () => {
  const tally = new RefusalTally();
  // The attacker: every (operation, outcome) pair it can vary, far more than the group cap.
  for (let i = 0; i < 500; i++) {
    tally.record({
      source: "203.0.113.9",
      claimedActor: "",
      actorExists: false,
      claimedOperation: OPS[i % OPS.length]!,
      outcome: `Code${i % 40}`,
    });
  }
  // Someone else guessing at a real access point meanwhile, and many more sources.
  for (let i = 0; i < 3; i++) {
    tally.record({
      source: "198.51.100.7",
      claimedActor: "KAAP.real",
      actorExists: true,
      claimedOperation: "Sign",
      outcome: "SignatureDoesNotMatch",
    });
  }
  for (let i = 0; i < 200; i++) {
    tally.record({
      source: `192.0.2.${i}`,
      claimedActor: "",
      actorExists: false,
      claimedOperation: "",
      outcome: "X",
    });
  }
  const events = tally.drain();
  assert.ok(events.length <= 2 * MAX_REFUSAL_GROUPS + 1, `${events.length} entries`);
  const other = events.find((e) => e.source === "198.51.100.7");
  assert.ok(other, "the second source keeps its own entry");
  assert.match(other.detail, /^3 refused before authentication/);
  const total = events.reduce((n, e) => n + Number(/^(\d+) /.exec(e.detail)?.[1]), 0);
  assert.equal(total, 703, "every refusal is counted");
  assert.equal(tally.drain().length, 0);
});

test("made-up access key ids are one actor; real ones keep their name", () => {
  const tally = new RefusalTally();
  for (let i = 0; i < 100; i++) {
    tally.record({
      source: "127.0.0.1",
      claimedActor: `KAAP.fake-${i}`,
      actorExists: false,
      claimedOperation: "Sign",
      outcome: "InvalidAccessKeyId",
    });
  }
  tally.record({
    source: "127.0.0.1",
    claimedActor: "KAAP.real",
    actorExists: true,
    claimedOperation: "Sign",
    outcome: "SignatureDoesNotMatch",
  });
  const actors = tally.drain().map((e) => e.actor);
  assert.deepEqual(actors.sort(), ["(unknown access point)", "KAAP.real"]);
});
