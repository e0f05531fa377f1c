/**
 * Where token calls run (src/keys/pkcs11_calls.ts): a SoftHSM2 key is called inline by default,
 * `x-hsmkit-calls=worker` sends it to worker threads, and a slow inline call moves later calls to
 * worker threads. Both paths sign (checked by node:crypto and openssl) and decrypt, bad
 * ciphertexts included, the same way.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import { openKey, type PrivateKeyHandle } from "../../src/keys/index.ts";
import { openToken } from "../../src/keys/pkcs11.ts";
import { INLINE_CALL_LIMIT_MS, TokenCalls, tokenCallRecord } from "../../src/keys/pkcs11_calls.ts";
import { loadModule, type Pkcs11Module } from "../../src/keys/pkcs11_module.ts";
import { parsePkcs11Uri } from "../../src/keys/pkcs11_uri.ts";
import { createToken, type TestToken, tokenKey } from "../helpers/softhsm.ts";
import { assertAllSchemesVerify, assertDecrypts, assertKeyError } from "./support.ts";

let token: TestToken;
let module: Pkcs11Module;

before(async () => {
  token = await createToken();
  await tokenKey(token, "calls-rsa", "rsa2048");
  await tokenKey(token, "calls-ec", "ec-p256");
  module = loadModule(token.module);
});

/**
 * Starts one signature and reports whether the module has a call in flight once the promise
 * chain up to the token call has run: only microtasks run in between, and a worker-thread call
 * cannot complete without a turn of the event loop, while an inline one is over by then.
 */
async function signedOnWorker(key: PrivateKeyHandle): Promise<boolean> {
  const pending = key.sign(key.schemes[0]!, Buffer.from("where does this run?"));
  // Hashing, the session pool and the call itself take a few microtask turns; 100 is plenty.
  for (let i = 0; i < 100; i++) await null;
  const busy = !module.idle;
  await pending;
  return busy;
}

async function withKey(ref: string, body: (key: PrivateKeyHandle) => Promise<void>): Promise<void> {
  const key = await openKey(ref);
  try {
    await body(key);
  } finally {
    await key.close();
  }
}

describe("token call placement", () => {
  for (const [mode, extra, onWorker] of [
    ["auto (SoftHSM2 has no CKF_HW_SLOT)", undefined, false],
    ["x-hsmkit-calls=inline", "x-hsmkit-calls=inline", false],
    ["x-hsmkit-calls=worker", "x-hsmkit-calls=worker", true],
  ] as const) {
    test(`${mode}: ${onWorker ? "worker threads" : "inline"}; signatures verify, decryption and its refusals hold`, async () => {
      await withKey(token.uri("calls-rsa", extra), async (rsa) => {
        assert.equal(await signedOnWorker(rsa), onWorker);
        await assertAllSchemesVerify(rsa);
        await assertDecrypts(rsa);
        const fallback = randomBytes(48);
        assert.deepEqual(await rsa.decryptImplicit!(Buffer.alloc(256, 0x01), 48, fallback), fallback);
      });
      await withKey(token.uri("calls-ec", extra), async (ec) => {
        assert.equal(await signedOnWorker(ec), onWorker);
        await assertAllSchemesVerify(ec);
      });
    });
  }

  test("an inline call slower than the limit sends the token's later calls to worker threads, every handle's, for good", async () => {
    const record = tokenCallRecord(false);
    const calls = new TokenCalls(module, record, "auto");
    const ran: string[] = [];
    const slowInline = () => {
      ran.push("inline");
      const until = performance.now() + INLINE_CALL_LIMIT_MS + 5;
      while (performance.now() < until) {
        // A token call that blocks this thread.
      }
      return Buffer.from("slow");
    };
    const worker = async () => {
      ran.push("worker");
      return Buffer.from("worker");
    };
    assert.deepEqual(
      await calls.run(() => {
        ran.push("inline");
        return Buffer.from("fast");
      }, worker),
      Buffer.from("fast"),
    );
    assert.equal(calls.inline, true);
    assert.deepEqual(await calls.run(slowInline, worker), Buffer.from("slow"));
    assert.equal(calls.inline, false);
    assert.deepEqual(await calls.run(slowInline, worker), Buffer.from("worker"));
    assert.deepEqual(ran, ["inline", "inline", "worker"]);
    // Another key on the same token (same record) starts on worker threads; a pinned one does not.
    assert.equal(new TokenCalls(module, record, "auto").inline, false);
    assert.equal(new TokenCalls(module, record, "inline").inline, true);
  });

  test("a slow call moves every handle on that token to worker threads, open ones and new ones", async () => {
    const own = await createToken();
    const ref = await tokenKey(own, "shared", "ec-p256");
    const { context } = await openToken(ref);
    try {
      await withKey(ref, async (open) => {
        assert.equal(await signedOnWorker(open), false);
        // A call over the limit through the token's shared record, as a slow C_Sign would make.
        const slow = () => {
          const until = performance.now() + INLINE_CALL_LIMIT_MS + 5;
          while (performance.now() < until) {
            // Blocks past the limit.
          }
          return Buffer.alloc(0);
        };
        await new TokenCalls(context.module, context.calls, "auto").run(slow, async () => Buffer.alloc(0));
        assert.equal(await signedOnWorker(open), true);
        await withKey(ref, async (later) => assert.equal(await signedOnWorker(later), true));
        await withKey(`${ref}&x-hsmkit-calls=inline`, async (pinned) => {
          assert.equal(await signedOnWorker(pinned), false);
        });
      });
    } finally {
      context.release();
    }
  });

  test("explicit modes do not adapt; a hardware slot under auto runs on worker threads", async () => {
    const worker = async () => Buffer.from("worker");
    const slow = () => {
      const until = performance.now() + INLINE_CALL_LIMIT_MS + 5;
      while (performance.now() < until) {
        // Blocks past the limit.
      }
      return Buffer.from("inline");
    };
    const pinned = new TokenCalls(module, tokenCallRecord(true), "inline");
    await pinned.run(slow, worker);
    assert.deepEqual(await pinned.run(slow, worker), Buffer.from("inline"));
    assert.equal(new TokenCalls(module, tokenCallRecord(true), "auto").inline, false);
    assert.equal(new TokenCalls(module, tokenCallRecord(false), "worker").inline, false);
  });

  test("x-hsmkit-calls takes auto, worker or inline; anything else is a bad reference naming it", async () => {
    const base = "pkcs11:token=t;object=k;type=private";
    assert.equal(parsePkcs11Uri(`${base}?x-hsmkit-calls=worker`).calls, "worker");
    assert.equal(parsePkcs11Uri(`${base}?x-hsmkit-calls=inline`).calls, "inline");
    assert.equal(parsePkcs11Uri(`${base}?x-hsmkit-calls=auto`).calls, "auto");
    assert.equal(parsePkcs11Uri(base).calls, undefined);
    for (const bad of ["threads", "", "Worker", "worker%00"]) {
      await assertKeyError(
        Promise.resolve().then(() => parsePkcs11Uri(`${base}?x-hsmkit-calls=${bad}`)),
        "bad-reference",
        /x-hsmkit-calls must be one of auto, worker, inline/,
      );
    }
    await assertKeyError(openKey(token.uri("calls-rsa", "x-hsmkit-calls=sometimes")), "bad-reference");
    // Misspelt or in the path, ours is an error, not another vendor's attribute to ignore.
    for (const misplaced of [`${base};x-hsmkit-calls=worker`, `${base}?x-hsmkit-call=worker`]) {
      await assertKeyError(
        Promise.resolve().then(() => parsePkcs11Uri(misplaced)),
        "bad-reference",
        /hsmkit reads x-hsmkit-calls, in the query/,
      );
    }
    assert.equal(parsePkcs11Uri(`${base}?x-other-vendor=1`).calls, undefined);
  });
});
