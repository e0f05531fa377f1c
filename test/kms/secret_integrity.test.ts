/**
 * Secret stages as a database writer without the master key would attack them, against a
 * real server on a SQLite file (edits made with SQL on the live file): ACSCurrent rolled back
 * to an older value, stage rows swapped, a version copied from another secret, a value put
 * back from before the secret was deleted and re-created under the same version id, version
 * ids swapped. Each read is refused, the client gets InternalFailure, the value never leaves
 * the server, and the failure is audited. A store written the way the version before this one
 * wrote it (entries without digests) still reads, and is protected the same way.
 */
import assert from "node:assert/strict";
import { createSecretKey, randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  adminCreateSecret,
  adminGetSecretValue,
  adminPutSecretValue,
  adminVerifyAudit,
} from "../../src/kms/admin.ts";
import { aesGcmSeal } from "../../src/kms/key_ops.ts";
import { type ApClient, type KmsFixture, refused, startKms } from "./kms_fixture.ts";
import { readRow, tamper } from "./store_tamper.ts";

let kms: KmsFixture;
let reader: ApClient;
let data: string;

before(async () => {
  kms = await startKms();
  data = join(kms.dir, "data");
  // One attempt: InternalFailure is retryable, and the tests count what reached the server.
  reader = await kms.client("", { secrets: "*" }, { maxAttempts: 1 });
});
after(() => kms.close());

const read = (secretName: string, by: { versionStage?: string; versionId?: string } = {}) =>
  reader.kms.getSecretValue({ secretName, ...by });

/** Asserts the read is refused and the failure audited as SecretIntegrity naming the secret. */
async function refusedAsTampered(name: string, by: { versionStage?: string; versionId?: string } = {}) {
  await refused(read(name, by), "InternalFailure");
  // The report is appended off the request path (IntegrityReports): wait for it.
  for (let i = 0; i < 100; i++) {
    const entries = await kms.instance.audit.entries(20);
    const report = entries.find(
      (e) => e.operation === "SecretIntegrity" && e.detail.startsWith(`secret ${name} `),
    );
    if (report) {
      assert.equal(report.outcome, "Tampered");
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`no SecretIntegrity entry for ${name}`);
}

describe("secret stages come from the audit log", () => {
  it("refuses an ACSCurrent rolled back to an older value, stage rows put back whole", async () => {
    await adminCreateSecret(kms.instance, {
      name: "rb",
      value: Buffer.from("old-password"),
      versionId: "v1",
    });
    await adminPutSecretValue(kms.instance, "rb", Buffer.from("new-password"), "v2");
    assert.equal((await read("rb")).SecretData, "new-password");
    // The stage table exactly as it was before the rotation.
    tamper(
      data,
      "DELETE FROM secret_stages WHERE secret_name = 'rb'; INSERT INTO secret_stages (secret_name, stage, version_id) VALUES ('rb', 'ACSCurrent', 'v1');",
    );
    await refusedAsTampered("rb");
    await assert.rejects(adminGetSecretValue(kms.instance, "rb", {}), /failed its integrity check/);
    const verdict = await adminVerifyAudit(kms.instance);
    assert.equal(verdict.ok, false);
    assert.match(
      verdict.ok ? "" : verdict.reason,
      /secret rb's ACSCurrent row gives ACSCurrent to version v1/,
    );
    // By version id the old value is still readable, with the stages the log gives it.
    const old = await read("rb", { versionId: "v1" });
    assert.equal(old.SecretData, "old-password");
    assert.deepEqual(old.VersionStages, ["ACSPrevious"]);
    // A new value puts the rows right again.
    await adminPutSecretValue(kms.instance, "rb", Buffer.from("third-password"), "v3");
    assert.equal((await adminVerifyAudit(kms.instance)).ok, true);
    const now = await read("rb");
    assert.equal(now.SecretData, "third-password");
    assert.deepEqual(now.VersionStages, ["ACSCurrent"]);
    // ACSPrevious is the log's former current (v2), not the v1 the edited rows held.
    const previous = await read("rb", { versionStage: "ACSPrevious" });
    assert.equal(previous.SecretData, "new-password");
  });

  it("refuses swapped stages: ACSCurrent and ACSPrevious exchanged", async () => {
    await adminCreateSecret(kms.instance, { name: "sw", value: Buffer.from("one"), versionId: "v1" });
    await adminPutSecretValue(kms.instance, "sw", Buffer.from("two"), "v2");
    tamper(
      data,
      "UPDATE secret_stages SET version_id = CASE version_id WHEN 'v1' THEN 'v2' ELSE 'v1' END WHERE secret_name = 'sw'",
    );
    await refusedAsTampered("sw");
    await refused(read("sw", { versionStage: "ACSPrevious" }), "InternalFailure");
  });

  it("refuses a version copied from another secret and staged there", async () => {
    await adminCreateSecret(kms.instance, { name: "src", value: Buffer.from("src-value"), versionId: "v1" });
    await adminCreateSecret(kms.instance, { name: "dst", value: Buffer.from("dst-value"), versionId: "v1" });
    tamper(
      data,
      `INSERT INTO secret_versions (secret_name, version_id, created_at, key_version_id, iv, sealed)
         SELECT 'dst', 'v9', created_at, key_version_id, iv, sealed FROM secret_versions WHERE secret_name = 'src';
       UPDATE secret_stages SET version_id = 'v9' WHERE secret_name = 'dst' AND stage = 'ACSCurrent';`,
    );
    await refusedAsTampered("dst");
    await refused(read("dst", { versionId: "v9" }), "InternalFailure");
    assert.equal((await read("dst", { versionId: "v1" })).SecretData, "dst-value");
  });

  it("refuses a value put back from before the secret was deleted and re-created", async () => {
    await adminCreateSecret(kms.instance, { name: "re", value: Buffer.from("first-life"), versionId: "v1" });
    const before = readRow(data, "SELECT iv, sealed FROM secret_versions WHERE secret_name = 're'");
    await kms.instance.secrets.delete("re");
    await adminCreateSecret(kms.instance, { name: "re", value: Buffer.from("second-life"), versionId: "v1" });
    assert.equal((await read("re")).SecretData, "second-life");
    // Same name, version id, type and key: the first life's AAD is the second's.
    tamper(
      data,
      "UPDATE secret_versions SET iv = ?, sealed = ? WHERE secret_name = 're' AND version_id = 'v1'",
      before.iv,
      before.sealed,
    );
    await refusedAsTampered("re");
  });

  it("refuses swapped version ids (the AAD names the version, and the log its bytes)", async () => {
    await adminCreateSecret(kms.instance, { name: "ids", value: Buffer.from("one"), versionId: "v1" });
    await adminPutSecretValue(kms.instance, "ids", Buffer.from("two"), "v2");
    tamper(
      data,
      `PRAGMA foreign_keys = OFF;
       UPDATE secret_versions SET version_id = 'tmp' WHERE secret_name = 'ids' AND version_id = 'v1';
       UPDATE secret_versions SET version_id = 'v1' WHERE secret_name = 'ids' AND version_id = 'v2';
       UPDATE secret_versions SET version_id = 'v2' WHERE secret_name = 'ids' AND version_id = 'tmp';`,
    );
    await refused(read("ids"), "InternalFailure");
    await refused(read("ids", { versionId: "v1" }), "InternalFailure");
  });

  it("never puts a refused value in the audit log", async () => {
    for (const e of await kms.instance.audit.entries())
      for (const value of ["old-password", "first-life", "src-value"])
        assert.ok(!JSON.stringify(e).includes(value));
  });
});

describe("a store written before the stage check", () => {
  /**
   * What the version before this one did for `kms secret create` / `put-value`: the rows in one
   * transaction (sealed under the instance secrets key, same AAD), then, apart, an entry
   * naming the version only.
   */
  async function legacyWrite(name: string, versionId: string, value: string, first: boolean): Promise<void> {
    const instance = kms.instance;
    const wrapped = (await instance.store.getMeta("secrets.key")) as Buffer;
    const key = await instance.master.unwrap(wrapped, "instance-secrets-key");
    const iv = randomBytes(12);
    const aad = Buffer.from(`kms-secret:${name}:${versionId}:text::`);
    const sealed = aesGcmSeal(createSecretKey(key), iv, aad, Buffer.from(value));
    key.fill(0);
    const version = {
      secretName: name,
      versionId,
      createdAt: new Date().toISOString(),
      keyVersionId: null,
      iv,
      sealed,
      stages: ["ACSCurrent"],
    };
    const repo = instance.secrets.repository;
    const secret = {
      name,
      keyId: null,
      dataType: "text" as const,
      description: "",
      createdAt: version.createdAt,
    };
    assert.ok(first ? await repo.create(secret, version) : await repo.putVersion(version));
    await instance.audit.append({
      actor: "admin",
      source: "local",
      operation: first ? "CreateSecret" : "PutSecretValue",
      keyId: `secret:${name}`,
      outcome: "ok",
      requestId: "",
      detail: first ? `${versionId} key=instance` : versionId,
    });
  }

  it("still reads its secrets, refuses their rollback, and takes new values", async () => {
    await legacyWrite("legacy", "l1", "legacy-one", true);
    await legacyWrite("legacy", "l2", "legacy-two", false);
    const current = await read("legacy");
    assert.equal(current.SecretData, "legacy-two");
    assert.deepEqual(current.VersionStages, ["ACSCurrent"]);
    assert.equal((await read("legacy", { versionStage: "ACSPrevious" })).SecretData, "legacy-one");
    tamper(
      data,
      "UPDATE secret_stages SET version_id = CASE version_id WHEN 'l1' THEN 'l2' ELSE 'l1' END WHERE secret_name = 'legacy'",
    );
    await refusedAsTampered("legacy");
    await adminPutSecretValue(kms.instance, "legacy", Buffer.from("legacy-three"), "l3");
    assert.equal((await read("legacy")).SecretData, "legacy-three");
    assert.equal((await read("legacy", { versionStage: "ACSPrevious" })).SecretData, "legacy-two");
  });
});
