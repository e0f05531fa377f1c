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
import { INLINE_CALL_LIMIT_MS, TokenCalls } from "../../src/keys/pkcs11_calls.ts";
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
 * Starts one signature and reports whether the module had a call in flight right after sign()
 * returned its promise: a worker-thread call is still running then, an inline one is over.
 */
async function signedOnWorker(key: PrivateKeyHandle): Promise<boolean> {
  const pending = key.sign(key.schemes[0]!, Buffer.from("where does this run?"));
  // The message is hashed first (one await), then the token is called.
  await new Promise((resolve) => setImmediate(resolve));
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

  test("an inline call slower than the limit sends the later calls to worker threads, for good", async () => {
    const calls = new TokenCalls(module, false, "auto");
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
    const pinned = new TokenCalls(module, true, "inline");
    await pinned.run(slow, worker);
    assert.deepEqual(await pinned.run(slow, worker), Buffer.from("inline"));
    assert.equal(new TokenCalls(module, true, "auto").inline, false);
    assert.equal(new TokenCalls(module, false, "worker").inline, false);
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
  });
});
