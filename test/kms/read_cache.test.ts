/**
 * The server memoises key, alias, version and access point lookups (read_cache.ts). These
 * tests change the database behind a running server, from another process (the admin CLI)
 * and through the server's own connection, and check that the very next request sees it.
 */
import assert from "node:assert/strict";
import { constants, createPublicKey, verify } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { adminCreateKey, adminRotateKey, adminSetKeyState } from "../../src/kms/admin.ts";
import { ChangeWatch, Memo } from "../../src/kms/read_cache.ts";
import { startKms } from "./kms_fixture.ts";
import { kmsProcesses } from "./kms_process.ts";

const { ok: kmsOk, createAp, serve, client: clientFor } = kmsProcesses("read cache test passphrase");
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-cache-"));
after(() => rmSync(root, { recursive: true, force: true }));
const message = Buffer.from("cached lookups must not outlive a change");

function verifiesUnder(publicKeyPem: string, signature: Buffer): boolean {
  const key = {
    key: createPublicKey(publicKeyPem),
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 32,
  };
  return verify("sha256", message, key, signature);
}

describe("memoised lookups", () => {
  it("see admin changes made by another process on the next request", async (t) => {
    const data = join(root, "data");
    const apDir = join(root, "aps");
    const { proc, endpoint } = await serve(data);
    t.after(() => proc.stop());
    const create = ["key", "create", "--data", data, "--spec", "RSA_2048", "--usage", "SIGN/VERIFY"];
    const keyA = await kmsOk(create);
    const keyB = await kmsOk(create);
    await kmsOk(["alias", "set", "--data", data, "--alias", "alias/app", "--key", keyA]);
    const apId = await createAp(data, "app", "*", apDir);
    const client = clientFor(data, apDir, apId, endpoint, 1);
    t.after(() => client.close());
    const sign = (keyId: string) => client.sign({ keyId, algorithm: "RSA_PSS_SHA_256", message });

    // Warm every memo: by id, by alias, the access point.
    await sign(keyA);
    assert.equal((await sign("alias/app")).KeyId, keyA);

    await kmsOk(["key", "disable", "--data", data, "--key", keyA]);
    await assert.rejects(sign(keyA), /IncorrectKeyState/);
    await assert.rejects(sign("alias/app"), /IncorrectKeyState/);
    await kmsOk(["key", "enable", "--data", data, "--key", keyA]);
    await sign(keyA);

    const before = (await client.getPublicKey(keyA)).PublicKey;
    await kmsOk(["key", "rotate", "--data", data, "--key", keyA]);
    const signed = await sign(keyA);
    const now = (await client.getPublicKey(keyA)).PublicKey;
    assert.notEqual(now, before, "GetPublicKey serves the new version");
    assert.ok(verifiesUnder(now, signed.Signature), "Sign uses the new version");
    assert.ok(!verifiesUnder(before, signed.Signature));

    await kmsOk(["alias", "set", "--data", data, "--alias", "alias/app", "--key", keyB]);
    assert.equal((await sign("alias/app")).KeyId, keyB);

    // A made-up key id of any length is refused before lookups and the audit log see it.
    await assert.rejects(sign(`key-${"0".repeat(5000)}`), /InvalidParam/);

    await kmsOk(["ap", "revoke", "--data", data, "--ap", apId]);
    await assert.rejects(sign(keyB), /Forbidden\.AccessPointRevoked/);
  });

  it("see changes made through the server's own connection", async (t) => {
    const kms = await startKms(t);
    const key = await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY");
    const { kms: client } = await kms.client("*", {}, { maxAttempts: 1 });
    const sign = () => client.sign({ keyId: key.id, algorithm: "ECDSA_SHA_256", message });
    assert.match((await sign()).RequestId, /./);
    await adminSetKeyState(kms.instance, key.id, "disable");
    await assert.rejects(sign(), /IncorrectKeyState/);
    await adminSetKeyState(kms.instance, key.id, "enable");
    await sign();
    const rotated = await adminRotateKey(kms.instance, key.id);
    const signed = await sign();
    const pem = kms.instance.keys.publicKeyPem(rotated);
    assert.ok(verify("sha256", message, createPublicKey(pem), signed.Signature));
  });

  it("ChangeWatch starts a new generation when the counter moves, and on local writes", async () => {
    let counter = 7;
    const watch = new ChangeWatch(async () => counter);
    const memo = new Memo<number>(watch);
    let loads = 0;
    let value = 0;
    const read = () =>
      memo.get("v", async () => {
        loads++;
        return value;
      });
    await watch.refresh();
    assert.equal(await read(), 0);
    value = 1;
    await watch.refresh();
    assert.equal(await read(), 0, "the counter did not move: the memo answers");
    counter++;
    assert.equal(await read(), 0, "a change is only seen once the counter is read");
    await watch.refresh();
    assert.equal(await read(), 1);
    value = 2;
    watch.localWrite();
    assert.equal(await read(), 2);
    assert.equal(await read(), 2);
    assert.equal(loads, 3);
  });

  it("a refresh asked for while a read is in flight waits for a read that starts after it, shared", async () => {
    let counter = 1;
    const started: number[] = [];
    const gates: (() => void)[] = [];
    const watch = new ChangeWatch(() => {
      const seen = counter;
      started.push(seen);
      return new Promise<number>((resolve) => gates.push(() => resolve(seen)));
    });
    const first = watch.refresh();
    counter = 2; // committed while the first read is in flight: that read may not have seen it
    const second = watch.refresh();
    const third = watch.refresh();
    gates.shift()?.();
    await first;
    const afterFirst = watch.generation;
    await new Promise((r) => setImmediate(r));
    gates.shift()?.();
    await Promise.all([second, third]);
    assert.deepEqual(started, [1, 2], "one more read, after the change, shared by both later callers");
    assert.ok(watch.generation > afterFirst, "the change was noticed");
  });

  it("Memo keeps neither misses nor a value loaded across a change", async () => {
    const watch = new ChangeWatch(async () => 0);
    const memo = new Memo<string>(watch);
    let answer: string | undefined;
    const read = () => memo.get("k", async () => answer);
    assert.equal(await read(), undefined);
    answer = "found";
    assert.equal(await read(), "found", "a miss is looked up again, not remembered");
    answer = "later";
    assert.equal(await read(), "found", "a hit is remembered");
    const other = new Memo<string>(watch);
    const slow = other.get("k", async () => {
      watch.localWrite(); // a change noticed while this load was in flight
      return "stale";
    });
    assert.equal(await slow, "stale");
    assert.equal(
      await other.get("k", async () => "fresh"),
      "fresh",
      "what was loaded across a change was not kept",
    );
  });
});
