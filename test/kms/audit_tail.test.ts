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
import { adminCreateSecret, adminPutSecretValue, adminVerifyAudit } from "../../src/kms/admin.ts";
import { AuditGapError } from "../../src/kms/audit_tail.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import type { SqlDriver, SqlValue } from "../../src/kms/store/driver.ts";
import { refused, startKms, TEST_PASSPHRASE } from "./kms_fixture.ts";
import { readRow, tamper } from "./store_tamper.ts";

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
  tamper(
    data,
    `DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = ${Number(put.seq)};
     DELETE FROM secret_versions WHERE version_id = 'v2'; DELETE FROM secret_stages;
     INSERT INTO secret_stages VALUES ('a', 'ACSCurrent', 'v1');`,
  );
  await refused(reader.kms.getSecretValue({ secretName: "a" }), "InternalFailure");
  await refused(reader.kms.getSecretValue({ secretName: "a" }), "InternalFailure");
  const fresh = await KmsInstance.open({ dataDir: data, passphrase: TEST_PASSPHRASE });
  try {
    await assert.rejects(fresh.secrets.read("a", {}), AuditGapError);
    await assert.rejects(fresh.accessPoints.find(reader.id), /misses 1 entry/);
  } finally {
    await fresh.close();
  }
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
  const cut = `DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > ${last};
     DELETE FROM secret_versions WHERE version_id = 'v2'; DELETE FROM secret_stages;
     INSERT INTO secret_stages VALUES ('b', 'ACSCurrent', 'v1');`;
  tamper(data, cut);
  const open = (anchor?: string) =>
    KmsInstance.open({
      dataDir: data,
      passphrase: TEST_PASSPHRASE,
      ...(anchor ? { auditAnchor: anchor } : {}),
    });
  const cutBack = await open();
  try {
    await assert.rejects(cutBack.secrets.read("b", {}), /audit log misses/);
  } finally {
    await cutBack.close();
  }
  // The head put back too is a whole-database rollback: without an anchor, nothing shows it.
  tamper(data, "UPDATE meta SET value = ? WHERE name = 'audit.head'", head);
  const rolledBack = await open();
  try {
    assert.equal((await rolledBack.secrets.read("b", {})).value.toString(), "old");
  } finally {
    await rolledBack.close();
  }
  const anchored = await open(anchor);
  try {
    await assert.rejects(anchored.secrets.read("b", {}), /audit log misses/);
  } finally {
    await anchored.close();
  }
});
