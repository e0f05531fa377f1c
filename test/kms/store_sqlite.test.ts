/**
 * The SQLite driver takes the connection in turns: transactions started together all run, one
 * after another, and a statement issued while a transaction is open waits for its commit
 * instead of reading its uncommitted writes. And the audit log stores caller-controlled text
 * escaped and bounded (a NUL fails a PostgreSQL group commit; megabytes would bloat the log).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { MAX_AUDIT_FIELD } from "../../src/kms/audit_chain.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { SqliteDriver } from "../../src/kms/store/sqlite.ts";

const dir = mkdtempSync(join(tmpdir(), "hsmkit-sqlite-driver-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("transactions started together all commit, one after another", async () => {
  const db = new SqliteDriver(join(dir, "turns.db"));
  try {
    await db.script("CREATE TABLE t (x INTEGER)");
    const results = await Promise.allSettled(
      [1, 2, 3, 4].map((n) =>
        db.transaction("l", async (tx) => {
          await tx.exec("INSERT INTO t VALUES ($1)", [n]);
          await pause(20);
          return n;
        }),
      ),
    );
    assert.deepEqual(
      results.map((r) => (r.status === "fulfilled" ? r.value : String(r.reason))),
      [1, 2, 3, 4],
    );
    assert.deepEqual(await db.query("SELECT x FROM t ORDER BY x"), [{ x: 1 }, { x: 2 }, { x: 3 }, { x: 4 }]);
  } finally {
    await db.close();
  }
});

test("a statement issued during a transaction sees only committed rows", async () => {
  const db = new SqliteDriver(join(dir, "isolation.db"));
  try {
    await db.script("CREATE TABLE t (x INTEGER)");
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const failing = db.transaction("l", async (tx) => {
      await tx.exec("INSERT INTO t VALUES (1)");
      await held;
      throw new Error("rolled back");
    });
    await pause(10);
    const reading = db.query<{ n: number }>("SELECT count(*) AS n FROM t");
    release();
    await assert.rejects(failing, /rolled back/);
    assert.deepEqual(await reading, [{ n: 0 }], "the rolled-back row was never seen");
  } finally {
    await db.close();
  }
});

test("audit fields: control characters escaped, long text cut, the chain still verifies", async () => {
  const instance = await KmsInstance.open({
    dataDir: join(dir, "kms"),
    create: true,
    passphrase: "driver test",
  });
  try {
    await instance.audit.append({
      actor: "KAAP.x",
      source: "127.0.0.1",
      operation: "GetSecretValue",
      keyId: "secret:a\u0000b\ud800",
      outcome: "Forbidden.NoPermission",
      requestId: "r1",
      detail: "A".repeat(3 * 1024 * 1024),
    });
    const entries = await instance.audit.entries();
    const last = entries[entries.length - 1];
    assert.equal(last?.keyId, "secret:a\\u0000b\\ud800");
    assert.ok((last?.detail.length ?? 0) <= MAX_AUDIT_FIELD + 16, `detail kept ${last?.detail.length} chars`);
    assert.equal((await instance.audit.verify()).ok, true);
  } finally {
    await instance.close();
  }
});
