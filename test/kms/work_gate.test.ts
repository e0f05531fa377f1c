/**
 * The gate in front of key pair generation (src/kms/work_gate.ts): slots, arrival order, the
 * queue bound, each owner's share of it, jobs that fail, and waiting jobs whose client left.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WorkGate } from "../../src/kms/work_gate.ts";

/** A job that runs until released, recording when it started. */
function heldJob(log: string[], name: string) {
  let release: (value: string) => void = () => {};
  const done = new Promise<string>((resolve) => {
    release = resolve;
  });
  return {
    job: async () => {
      log.push(name);
      return done;
    },
    release: () => release(name),
  };
}

const refusal = () => new Error("refused");
const turn = () => new Promise((resolve) => setImmediate(resolve));

test("slots go to waiters in arrival order; the queue bound refuses at once", async () => {
  const gate = new WorkGate(2, 2, 2);
  const log: string[] = [];
  const jobs = ["a", "b", "c", "d"].map((n) => heldJob(log, n));
  const runs = jobs.map((j, i) => gate.run(j.job, { owner: `o${i}`, refusal }));
  await assert.rejects(
    gate.run(async () => "e", { owner: "o9", refusal }),
    /refused/,
  );
  await turn();
  assert.deepEqual(log, ["a", "b"]);
  assert.deepEqual([gate.running, gate.waiting()], [2, 2]);
  jobs[1]!.release();
  await turn();
  assert.deepEqual(log, ["a", "b", "c"]);
  assert.equal(gate.running, 2);
  for (const j of jobs) j.release();
  assert.deepEqual(await Promise.all(runs), ["a", "b", "c", "d"]);
  assert.deepEqual([gate.running, gate.waiting()], [0, 0]);
});

test("one owner cannot take more than its share of the queue; another still gets in", async () => {
  const gate = new WorkGate(1, 8, 2);
  const log: string[] = [];
  const first = heldJob(log, "first");
  const running = gate.run(first.job, { owner: "x", refusal });
  const queued = [1, 2].map((i) => gate.run(async () => `x${i}`, { owner: "x", refusal }));
  await assert.rejects(
    gate.run(async () => "x3", { owner: "x", refusal }),
    /refused/,
  );
  const other = gate.run(async () => "y", { owner: "y", refusal });
  assert.deepEqual([gate.waiting("x"), gate.waiting("y")], [2, 1]);
  first.release();
  assert.deepEqual(await Promise.all([running, ...queued, other]), ["first", "x1", "x2", "y"]);
});

test("a job that fails hands its slot on", async () => {
  const gate = new WorkGate(1, 4, 4);
  const failing = gate.run(
    async () => {
      await turn();
      throw new Error("job failed");
    },
    { owner: "a", refusal },
  );
  const next = gate.run(async () => "next", { owner: "b", refusal });
  await assert.rejects(failing, /job failed/);
  assert.equal(await next, "next");
  assert.deepEqual([gate.running, gate.waiting()], [0, 0]);
});

test("a waiting job whose signal aborts leaves the queue and never runs; a running one is not stopped", async () => {
  const gate = new WorkGate(1, 4, 4);
  const log: string[] = [];
  const first = heldJob(log, "first");
  const leaving = new AbortController();
  const staying = new AbortController();
  const running = gate.run(first.job, { owner: "a", refusal, signal: staying.signal });
  const abandoned = gate.run(
    async () => {
      log.push("abandoned ran");
      return "abandoned";
    },
    { owner: "b", refusal, signal: leaving.signal },
  );
  const later = gate.run(async () => "later", { owner: "c", refusal });
  assert.equal(gate.waiting(), 2);
  leaving.abort(new Error("client left"));
  await assert.rejects(abandoned, /client left/);
  assert.deepEqual([gate.waiting("b"), gate.waiting()], [0, 1]);
  staying.abort(new Error("too late"));
  first.release();
  assert.equal(await running, "first");
  assert.equal(await later, "later");
  assert.deepEqual(log, ["first"]);
  // Only a job that has to wait looks at its signal: one that finds a free slot runs.
  assert.equal(await gate.run(async () => "x", { owner: "d", refusal, signal: AbortSignal.abort() }), "x");
});
