/**
 * The incremental reader of verified admin entries (src/kms/audit_tail.ts) under loads that
 * overlap: store generations that follow each other quickly (other admins, other nodes) while
 * the database answers slowly, as a busy PostgreSQL does. On a clean store nothing may be lost
 * and nothing rebuilt: a lost secret history refuses every later read as tampered.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  adminCreateSecret,
  adminDeleteSecret,
  adminPutSecretValue,
  adminVerifyAudit,
} from "../../src/kms/admin.ts";
import { AuditGapError } from "../../src/kms/audit_walk.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import type { SqlDriver, SqlValue } from "../../src/kms/store/driver.ts";
import { refused, startKms, TEST_PASSPHRASE } from "./kms_fixture.ts";
import { deleteAuditEntries, putAuditRow, readRow, tamper } from "./store_tamper.ts";

/** Opens another node on the store in `data` (`anchor` as its --audit-anchor), runs `check`, closes it. */
async function withNode(data: string, check: (node: KmsInstance) => Promise<void>, anchor?: string) {
  const node = await KmsInstance.open({
    dataDir: data,
    passphrase: TEST_PASSPHRASE,
    ...(anchor ? { auditAnchor: anchor } : {}),
  });
  try {
    await check(node);
  } finally {
    await node.close();
  }
}

/** Points secret `name` back at its v1 in the rows: v2 deleted, ACSCurrent on v1. */
function rollBackRows(data: string, name: string): void {
  tamper(
    data,
    `DELETE FROM secret_versions WHERE version_id = 'v2'; DELETE FROM secret_stages;
     INSERT INTO secret_stages VALUES ('${name}', 'ACSCurrent', 'v1');`,
  );
}

test("overlapping loads of the secret log, answered slowly and out of step, lose nothing and rebuild nothing", async (t) => {
  const kms = await startKms(t);
  const instance = kms.instance;
  await adminCreateSecret(instance, { name: "s", value: Buffer.from("value-1"), versionId: "v1" });
  await adminPutSecretValue(instance, "s", Buffer.from("value-2"), "v2");
  // Every read of the log's secret entries is slowed, each by the next delay given.
  const driver = instance.store.driver as SqlDriver;
  const query = driver.query.bind(driver);
  const delays: number[] = [];
  const loadsFrom: number[] = [];
  driver.query = (async (sql: string, params?: readonly SqlValue[]) => {
    const rows = await query(sql, params);
    if (params?.[1] === "CreateSecret" && sql.includes("'entry' AS part")) {
      loadsFrom.push(Number(params[0]));
      await new Promise((resolve) => setTimeout(resolve, delays.shift() ?? 1));
    }
    return rows;
  }) as SqlDriver["query"];
  const otherRequest = () =>
    instance.audit.append({
      actor: "ap",
      source: "127.0.0.1",
      operation: "Sign",
      keyId: "k",
      outcome: "ok",
      requestId: "",
      detail: "",
    });
  const newGeneration = () => instance.store.write(async () => undefined);
  assert.equal((await instance.secrets.read("s", {})).value.toString(), "value-2");
  delays.push(10, 20, 25, 30);
  const reads = [];
  for (let i = 0; i < 3; i++) {
    await otherRequest();
    await newGeneration();
    reads.push(instance.secrets.history("s"));
  }
  for (const history of await Promise.all(reads)) {
    assert.deepEqual([history?.current, history?.previous], ["v2", "v1"]);
  }
  await newGeneration();
  assert.equal((await instance.secrets.read("s", { stage: "ACSPrevious" })).value.toString(), "value-1");
  assert.equal((await instance.secrets.read("s", {})).value.toString(), "value-2");
  assert.deepEqual(
    loadsFrom.filter((after) => after === 0),
    [0],
    `only the first load reads from the start: ${loadsFrom.join(", ")}`,
  );
  assert.equal((await adminVerifyAudit(instance)).ok, true);
  const reports = (await instance.audit.entries(50)).filter((e) => e.operation === "SecretIntegrity");
  assert.deepEqual(reports, []);
});

test("an audit entry deleted from the database: reads that need the log are refused, on the live node and a fresh one", async (t) => {
  const kms = await startKms(t);
  const data = join(kms.dir, "data");
  const reader = await kms.client("", { secrets: "*" }, { maxAttempts: 1 });
  await adminCreateSecret(kms.instance, { name: "a", value: Buffer.from("old"), versionId: "v1" });
  await adminPutSecretValue(kms.instance, "a", Buffer.from("new"), "v2");
  assert.equal((await reader.kms.getSecretValue({ secretName: "a" })).SecretData, "new");
  // Roll the secret back: the put's entry, its version and the stage rows.
  const put = readRow(data, "SELECT seq FROM audit WHERE operation = 'PutSecretValue'");
  deleteAuditEntries(data, `seq = ${Number(put.seq)}`);
  rollBackRows(data, "a");
  await refused(reader.kms.getSecretValue({ secretName: "a" }), "InternalFailure");
  await refused(reader.kms.getSecretValue({ secretName: "a" }), "InternalFailure");
  await withNode(data, async (fresh) => {
    await assert.rejects(fresh.secrets.read("a", {}), AuditGapError);
    await assert.rejects(fresh.accessPoints.find(reader.id), /audit log is not whole/);
  });
  const verdict = await adminVerifyAudit(kms.instance);
  assert.ok(!verdict.ok && /missing/.test(verdict.reason), JSON.stringify(verdict));
});

test("a log cut back before its MAC'd head, or (with an anchor) rolled back whole, is refused the same way", async (t) => {
  const kms = await startKms(t);
  const data = join(kms.dir, "data");
  await adminCreateSecret(kms.instance, { name: "b", value: Buffer.from("old"), versionId: "v1" });
  const head = readRow(data, "SELECT value FROM meta WHERE name = 'audit.head'").value as Buffer;
  const last = Number(readRow(data, "SELECT MAX(seq) AS m FROM audit").m);
  await adminPutSecretValue(kms.instance, "b", Buffer.from("new"), "v2");
  // What --audit-anchor would hold now: the head after the put.
  const anchor = join(kms.dir, "anchor.json");
  writeFileSync(anchor, readRow(data, "SELECT value FROM meta WHERE name = 'audit.head'").value as Buffer);
  deleteAuditEntries(data, `seq > ${last}`);
  rollBackRows(data, "b");
  await withNode(data, async (cutBack) => {
    await assert.rejects(cutBack.secrets.read("b", {}), /audit log is not whole/);
  });
  // The head put back too is a whole-database rollback: without an anchor, nothing shows it.
  tamper(data, "UPDATE meta SET value = ? WHERE name = 'audit.head'", head);
  await withNode(data, async (rolledBack) => {
    assert.equal((await rolledBack.secrets.read("b", {})).value.toString(), "old");
  });
  await withNode(
    data,
    async (anchored) => {
      await assert.rejects(anchored.secrets.read("b", {}), /audit log is not whole/);
    },
    anchor,
  );
});

test("an entry replaced by a forged row, a forged row on top, or the head deleted: refused, appends too", async (t) => {
  const kms = await startKms(t);
  const data = join(kms.dir, "data");
  await adminCreateSecret(kms.instance, { name: "c", value: Buffer.from("old"), versionId: "v1" });
  await adminPutSecretValue(kms.instance, "c", Buffer.from("new"), "v2");
  const put = Number(readRow(data, "SELECT seq FROM audit WHERE operation = 'PutSecretValue'").seq);
  // Reads refuse; so do appends where the log no longer ends at its head (a new head would hide it).
  const refusedWith = (pattern: RegExp, appends: RegExp | undefined) =>
    withNode(data, async (i) => {
      await assert.rejects(i.secrets.read("c", {}), pattern);
      if (appends) await assert.rejects(adminPutSecretValue(i, "c", Buffer.from("more"), "v3"), appends);
    });
  const save = (seq: number) => readRow(data, "SELECT * FROM audit WHERE seq = ?", seq);
  const restore = (row: Record<string, unknown>) => putAuditRow(data, row);
  const original = save(put);
  // The put's entry replaced by a row of the same number naming the old version.
  restore({ ...original, detail: "v1" });
  await refusedWith(/entry \d+ is not the log's own/, undefined);
  restore(original);
  await withNode(data, async (i) => assert.equal((await i.secrets.read("c", {})).value.toString(), "new"));
  // A forged row on top of the log.
  const top = Number(readRow(data, "SELECT MAX(seq) AS m FROM audit").m);
  restore({ ...save(top), seq: top + 1, detail: "forged" });
  await refusedWith(/entry \d+ is not the log's own/, /is not its head/);
  deleteAuditEntries(data, `seq = ${top + 1}`);
  // The head deleted.
  tamper(data, "DELETE FROM meta WHERE name = 'audit.head'");
  await refusedWith(/head is missing/, /is not its head/);
});

test("a put committed by another node between a read's two lookups is no integrity failure", async (t) => {
  const kms = await startKms(t);
  const a = kms.instance;
  await adminCreateSecret(a, { name: "s", value: Buffer.from("one"), versionId: "v1" });
  await adminCreateSecret(a, { name: "t", value: Buffer.from("x"), versionId: "t1" });
  await withNode(join(kms.dir, "data"), async (b) => {
    await a.store.checkForChanges();
    await a.secrets.read("t", {}); // loads A's view of the log in this generation
    await adminPutSecretValue(b, "s", Buffer.from("two"), "v2"); // B commits before A looks again
    assert.equal((await a.secrets.read("s", {})).value.toString(), "two");
    const reports = (await a.audit.entries(20)).filter((e) => e.operation === "SecretIntegrity");
    assert.deepEqual(reports, []);
  });
});

test("audit verify fails on a secret whose rows were deleted in the database, not on one an admin deleted", async (t) => {
  const kms = await startKms(t);
  const data = join(kms.dir, "data");
  await adminCreateSecret(kms.instance, { name: "kept", value: Buffer.from("x"), versionId: "v1" });
  await adminCreateSecret(kms.instance, { name: "gone", value: Buffer.from("y"), versionId: "v1" });
  await adminCreateSecret(kms.instance, { name: "deleted", value: Buffer.from("z"), versionId: "v1" });
  await adminDeleteSecret(kms.instance, "deleted");
  assert.equal((await adminVerifyAudit(kms.instance)).ok, true);
  tamper(data, "PRAGMA foreign_keys = ON; DELETE FROM secrets WHERE name = 'gone';");
  await kms.instance.store.checkForChanges();
  const verdict = await adminVerifyAudit(kms.instance);
  assert.ok(
    !verdict.ok && /secret gone's .*gone from the database/.test(verdict.reason),
    JSON.stringify(verdict),
  );
});
