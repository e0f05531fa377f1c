/**
 * The per-token session pool on a real SoftHSM2 token: at most MAX_SESSIONS sessions in
 * use at once, each used by one caller at a time, waiters served in order, and a closed
 * context refusing work.
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { findToken, loadModule, type Pkcs11Handle } from "../../src/keys/pkcs11_module.ts";
import { acquireTokenContext, MAX_SESSIONS } from "../../src/keys/pkcs11_session.ts";
import { parsePkcs11Uri } from "../../src/keys/pkcs11_uri.ts";
import { createToken, softHsm, type TestToken } from "../helpers/softhsm.ts";
import { assertKeyError } from "./support.ts";

let token: TestToken;

before(async () => {
  softHsm();
  token = await createToken();
});

function context() {
  const module = loadModule(token.module);
  return acquireTokenContext(module, findToken(module, parsePkcs11Uri(token.uri("x"))), token.pin);
}

test(`at most ${MAX_SESSIONS} sessions run at once, never shared, waiters served first-come first-served`, async () => {
  const ctx = context();
  const inUse = new Set<string>();
  let peak = 0;
  const started: number[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tasks = Array.from({ length: 3 * MAX_SESSIONS }, (_, i) =>
    ctx.withSession(async (session: Pkcs11Handle) => {
      const id = session.toString("hex");
      assert.ok(!inUse.has(id), "a session is handed to one caller at a time");
      inUse.add(id);
      peak = Math.max(peak, inUse.size);
      started.push(i);
      // The session is real: the token answers on it.
      assert.equal(ctx.module.lib.C_GetSessionInfo(session).slotID.toString("hex"), ctx.slot.toString("hex"));
      if (i < MAX_SESSIONS) await gate;
      await new Promise((resolve) => setImmediate(resolve));
      inUse.delete(id);
      return i;
    }),
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(peak, MAX_SESSIONS, "the first tasks fill the pool");
  assert.deepEqual(started, [...Array(MAX_SESSIONS).keys()], "the rest wait");
  release();
  assert.deepEqual(await Promise.all(tasks), [...Array(3 * MAX_SESSIONS).keys()]);
  assert.deepEqual(started, [...Array(3 * MAX_SESSIONS).keys()], "waiters ran in arrival order");
  assert.equal(peak, MAX_SESSIONS);
  ctx.release();
  await assertKeyError(
    ctx.withSession(async () => 1),
    "backend",
    /closed/,
  );
});

test("an error inside a task returns its session to the pool", async () => {
  const ctx = context();
  await assert.rejects(
    ctx.withSession(() => {
      throw new Error("boom");
    }),
    /boom/,
  );
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => ctx.withSession(async () => i)));
  assert.equal(results.length, 20);
  ctx.release();
});
