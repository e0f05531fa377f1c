/**
 * Admin commands and the audit log: a change (secrets, keys, aliases, access points) commits
 * with its entry or not at all (an audit append that fails leaves no unaudited change behind),
 * and a refused command is audited as Refused with the reason, never the value. A real instance on a SQLite file; the failing
 * append is a trigger a test puts on the audit table.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  adminCreateAccessPoint,
  adminCreateKey,
  adminCreateSecret,
  adminDeleteAlias,
  adminDeleteSecret,
  adminGetSecretValue,
  adminPutSecretValue,
  adminRotateKey,
  adminSetAlias,
  adminSetKeyState,
} from "../../src/kms/admin.ts";
import type { AuditEntry } from "../../src/kms/audit.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { readRow, tamper } from "./store_tamper.ts";

const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-secadmin-"));
const data = join(root, "data");
let instance: KmsInstance;

before(async () => {
  instance = await KmsInstance.open({ dataDir: data, create: true, passphrase: "secret admin audit test" });
});
after(async () => {
  await instance.close();
  rmSync(root, { recursive: true, force: true });
});

const AUDIT_DOWN =
  "CREATE TRIGGER audit_down BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit down'); END;";
const AUDIT_UP = "DROP TRIGGER audit_down;";
const count = (sql: string, ...params: unknown[]) => Number(readRow(data, sql, ...params).n);

/** Points `alias` at `keyId` from a second node on the same store, which then closes. */
async function repointOnAnotherNode(alias: string, keyId: string): Promise<void> {
  const other = await KmsInstance.open({ dataDir: data, passphrase: "secret admin audit test" });
  try {
    await adminSetAlias(other, alias, keyId);
  } finally {
    await other.close();
  }
}

/** Runs `fn` while every audit append fails; asserts it failed with the append. */
async function withAuditDown(fn: () => Promise<unknown>): Promise<void> {
  tamper(data, AUDIT_DOWN);
  try {
    await assert.rejects(fn(), /audit down/);
  } finally {
    tamper(data, AUDIT_UP);
  }
}

describe("a secret change and its audit entry commit together", () => {
  it("create: no secret without its CreateSecret entry", async () => {
    await withAuditDown(() => adminCreateSecret(instance, { name: "atom", value: Buffer.from("a") }));
    assert.equal(count("SELECT COUNT(*) AS n FROM secrets WHERE name = 'atom'"), 0);
    assert.equal(count("SELECT COUNT(*) AS n FROM secret_versions WHERE secret_name = 'atom'"), 0);
  });

  it("put-value: no new version and no stage moved without its PutSecretValue entry", async () => {
    await adminCreateSecret(instance, { name: "atom2", value: Buffer.from("one"), versionId: "v1" });
    await withAuditDown(() => adminPutSecretValue(instance, "atom2", Buffer.from("two"), "v2"));
    assert.equal(count("SELECT COUNT(*) AS n FROM secret_versions WHERE version_id = 'v2'"), 0);
    const current = await adminGetSecretValue(instance, "atom2", {});
    assert.equal(current.version.versionId, "v1");
    assert.equal(current.value.toString(), "one");
  });

  it("delete: the secret stays without its DeleteSecret entry", async () => {
    await withAuditDown(() => adminDeleteSecret(instance, "atom2"));
    assert.equal(count("SELECT COUNT(*) AS n FROM secrets WHERE name = 'atom2'"), 1);
    await adminDeleteSecret(instance, "atom2");
    const last = (await instance.audit.entries(1))[0];
    assert.deepEqual([last?.operation, last?.keyId, last?.outcome], ["DeleteSecret", "secret:atom2", "ok"]);
  });
});

describe("a key, alias or access point change and its audit entry commit together", () => {
  it("create key with an alias that exists: refused and audited, no key made, the alias left where it was", async () => {
    const first = await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "", "alias/taken");
    const keys = count("SELECT COUNT(*) AS n FROM keys");
    await assert.rejects(
      adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "", "alias/taken"),
      /alias "alias\/taken" already exists/,
    );
    assert.equal(count("SELECT COUNT(*) AS n FROM keys"), keys);
    assert.equal(readRow(data, "SELECT key_id FROM aliases WHERE name = 'alias/taken'").key_id, first.id);
    const last = (await instance.audit.entries(1))[0]!;
    assert.equal(last.operation, "CreateKey");
    assert.equal(last.outcome, "Refused");
  });

  it("a command on an alias another node re-pointed acts on the key it points at now", async () => {
    const first = await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "", "alias/repointed");
    const second = await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "");
    assert.equal(await instance.store.aliasTarget("alias/repointed"), first.id);
    await repointOnAnotherNode("alias/repointed", second.id);
    const disabled = await adminSetKeyState(instance, "alias/repointed", "disable");
    assert.equal(disabled.id, second.id);
    assert.equal(readRow(data, "SELECT state FROM keys WHERE id = ?", first.id).state, "Enabled");
  });

  it("delete alias: the entry names the key the alias pointed at when it was deleted", async () => {
    const first = await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "", "alias/moving");
    const second = await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "");
    assert.equal(await instance.store.aliasTarget("alias/moving"), first.id);
    // Another node re-points the alias; this node still remembers the old target.
    await repointOnAnotherNode("alias/moving", second.id);
    await adminDeleteAlias(instance, "alias/moving");
    const last = (await instance.audit.entries(1))[0]!;
    assert.equal(last.operation, "DeleteAlias");
    assert.equal(last.keyId, second.id);
    assert.equal(count("SELECT COUNT(*) AS n FROM aliases WHERE name = 'alias/moving'"), 0);
  });

  it("create key (with its alias), rotate, disable, set and delete alias, create access point", async () => {
    const keys = () => count("SELECT COUNT(*) AS n FROM keys");
    const before = keys();
    await withAuditDown(() => adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "", "alias/atom"));
    assert.equal(keys(), before);
    assert.equal(count("SELECT COUNT(*) AS n FROM aliases WHERE name = 'alias/atom'"), 0);
    const key = await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT", "", "alias/kept");
    await withAuditDown(() => adminRotateKey(instance, key.id));
    assert.equal(count("SELECT COUNT(*) AS n FROM key_versions WHERE key_id = ?", key.id), 1);
    await withAuditDown(() => adminSetKeyState(instance, key.id, "disable"));
    assert.equal(readRow(data, "SELECT state FROM keys WHERE id = ?", key.id).state, "Enabled");
    await withAuditDown(() => adminSetAlias(instance, "alias/other", key.id));
    assert.equal(count("SELECT COUNT(*) AS n FROM aliases WHERE name = 'alias/other'"), 0);
    await withAuditDown(() => adminDeleteAlias(instance, "alias/kept"));
    assert.equal(count("SELECT COUNT(*) AS n FROM aliases WHERE name = 'alias/kept'"), 1);
    await withAuditDown(() =>
      adminCreateAccessPoint(instance, { name: "atom-ap", keys: "*", outDir: join(root, "aps") }),
    );
    assert.equal(count("SELECT COUNT(*) AS n FROM access_points WHERE name = 'atom-ap'"), 0);
  });
});

describe("refused admin commands are audited", () => {
  const VALUE = "never-in-the-log-7f3a";

  async function lastRefusal(): Promise<AuditEntry> {
    const last = (await instance.audit.entries(1))[0];
    assert.ok(last);
    assert.equal(last.outcome, "Refused");
    assert.equal(last.actor, "admin");
    return last;
  }

  it("create with a taken name, a bad version id or a bad name", async () => {
    await adminCreateSecret(instance, { name: "taken", value: Buffer.from("first") });
    await assert.rejects(adminCreateSecret(instance, { name: "taken", value: Buffer.from(VALUE) }), /exists/);
    let e = await lastRefusal();
    assert.deepEqual([e.operation, e.keyId], ["CreateSecret", "secret:taken"]);
    assert.match(e.detail, /a secret named "taken" exists/);
    await assert.rejects(
      adminCreateSecret(instance, { name: "fresh", value: Buffer.from(VALUE), versionId: "bad id!" }),
      /version id/,
    );
    e = await lastRefusal();
    assert.deepEqual([e.operation, e.keyId], ["CreateSecret", "secret:fresh"]);
    await assert.rejects(adminCreateSecret(instance, { name: "bad name!", value: Buffer.from(VALUE) }));
    assert.equal((await lastRefusal()).keyId, "secret:bad name!");
  });

  it("put-value to an unknown secret or onto a taken version id", async () => {
    await assert.rejects(adminPutSecretValue(instance, "nope", Buffer.from(VALUE)), /no secret "nope"/);
    let e = await lastRefusal();
    assert.deepEqual([e.operation, e.keyId, e.detail], ["PutSecretValue", "secret:nope", 'no secret "nope"']);
    const first = await adminCreateSecret(instance, { name: "pv", value: Buffer.from("x"), versionId: "v1" });
    await assert.rejects(adminPutSecretValue(instance, "pv", Buffer.from(VALUE), first.versionId), /already/);
    e = await lastRefusal();
    assert.deepEqual([e.operation, e.keyId], ["PutSecretValue", "secret:pv"]);
  });

  it("delete and get of an unknown secret, and a key command", async () => {
    await assert.rejects(adminDeleteSecret(instance, "ghost"), /no secret/);
    assert.deepEqual((await lastRefusal()).operation, "DeleteSecret");
    await assert.rejects(adminGetSecretValue(instance, "ghost", { versionId: "v1" }), /no secret/);
    assert.deepEqual((await lastRefusal()).operation, "GetSecretValue");
    await assert.rejects(adminRotateKey(instance, "key-that-does-not-exist"));
    assert.deepEqual((await lastRefusal()).operation, "RotateKey");
  });

  it("never with the value", async () => {
    for (const e of await instance.audit.entries()) assert.ok(!JSON.stringify(e).includes(VALUE));
  });
});
