/**
 * `hsmkit kms audit verify` against someone who can write the data directory: a wiped log, a
 * log whose head or key went with it, a dropped last entry, and the whole database rolled back
 * to an older copy (caught with --audit-anchor). Also: data directories from before the head
 * rule keep working. Real `hsmkit kms` processes on real data directories.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { RunResult } from "../helpers/process.ts";
import { kmsProcesses, tamperedCopy } from "./kms_process.ts";
import { rewrapAuditKey, tamper } from "./store_tamper.ts";

const PASSPHRASE = "audit anchor test passphrase";
const { cli, ok } = kmsProcesses(PASSPHRASE);
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-anchor-"));
after(() => rmSync(root, { recursive: true, force: true }));

const createKey = (data: string, ...extra: string[]) =>
  ok(["key", "create", "--data", data, "--spec", "AES_256", "--usage", "ENCRYPT/DECRYPT", ...extra]);

/** Asserts a failed verify: exit 1 and one line on stderr matching `reason`. */
function failed(result: RunResult, reason: RegExp): void {
  assert.equal(result.exitCode, 1, result.output);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] ?? "", reason);
}

describe("a wiped or cut log", () => {
  const data = join(root, "wipe");
  before(async () => {
    await ok(["init", "--data", data]);
    for (let i = 0; i < 3; i++) await createKey(data);
  });
  const verifyTampered = (name: string, sql: Parameters<typeof tamperedCopy>[2]) => {
    const copy = join(root, `wipe-${name}`);
    tamperedCopy(data, copy, sql);
    return cli(["audit", "verify", "--data", copy]);
  };

  it("untouched: OK", async () => {
    assert.equal(await ok(["audit", "verify", "--data", data]), "audit OK: 3 entries");
  });

  it("every row and the head deleted: FAILED", async () => {
    const r = await verifyTampered("rows-and-head", (db) => {
      db.exec("DELETE FROM audit; DELETE FROM meta WHERE name = 'audit.head'");
    });
    failed(r, /audit FAILED at entry 0: the chain head record is missing/);
  });

  it("every row, the head and the audit key deleted: FAILED, nothing restarted", async () => {
    const copy = join(root, "wipe-key");
    tamperedCopy(data, copy, (db) => {
      db.exec("DELETE FROM audit; DELETE FROM meta WHERE name IN ('audit.head', 'audit.key')");
    });
    failed(await cli(["audit", "verify", "--data", copy]), /audit log's key is missing.*wiped/);
    // Opening for other work does not quietly start a fresh log either.
    failed(await cli(["key", "list", "--data", copy]), /audit log's key is missing/);
  });

  it("every row deleted, or the last one: FAILED", async () => {
    failed(
      await verifyTampered("rows", (db) => db.exec("DELETE FROM audit")),
      /the log ends at 0 but was written up to 3/,
    );
    failed(
      await verifyTampered("last", (db) => db.exec("DELETE FROM audit WHERE seq = 3")),
      /the log ends at 2 but was written up to 3/,
    );
  });

  it("a new instance's empty log has a head: deleting it is noticed", async () => {
    const fresh = join(root, "fresh");
    await ok(["init", "--data", fresh]);
    assert.equal(await ok(["audit", "verify", "--data", fresh]), "audit OK: 0 entries");
    const copy = join(root, "fresh-wiped");
    tamperedCopy(fresh, copy, (db) => db.exec("DELETE FROM meta WHERE name = 'audit.head'"));
    failed(await cli(["audit", "verify", "--data", copy]), /the chain head record is missing/);
  });
});

describe("a rolled-back database", () => {
  it("is caught with --audit-anchor; an anchor from elsewhere or edited is refused", async () => {
    const data = join(root, "rollback");
    const anchor = join(root, "rollback-anchor.json");
    const anchored = ["--data", data, "--audit-anchor", anchor];
    await ok(["init", ...anchored]);
    await createKey(data, "--audit-anchor", anchor);
    await createKey(data, "--audit-anchor", anchor);
    const backup = join(root, "rollback-backup");
    cpSync(data, backup, { recursive: true });
    await createKey(data, "--audit-anchor", anchor);
    assert.equal(await ok(["audit", "verify", ...anchored]), "audit OK: 3 entries (anchored at entry 3)");

    rmSync(data, { recursive: true });
    cpSync(backup, data, { recursive: true });
    failed(
      await cli(["audit", "verify", ...anchored]),
      /audit FAILED at entry 3: the log ends at 2 but the anchor file records 3 \(rolled back\)$/,
    );
    // Work on the rolled-back copy goes past the anchored count, but does not erase the evidence.
    await createKey(data, "--audit-anchor", anchor);
    await createKey(data, "--audit-anchor", anchor);
    failed(
      await cli(["audit", "verify", ...anchored]),
      /audit FAILED at entry 3: it differs from the anchored entry \(the log was replaced\)$/,
    );
    // Without the anchor the older copy is self-consistent, and verify says what it cannot see.
    const plain = await cli(["audit", "verify", "--data", data]);
    assert.equal(plain.exitCode, 0, plain.output);
    assert.match(plain.stderr, /no --audit-anchor given: a rollback .* would not show/);

    const head = JSON.parse(readFileSync(anchor, "utf8")) as { seq: number };
    writeFileSync(anchor, JSON.stringify({ ...head, seq: 1 }));
    failed(await cli(["audit", "verify", ...anchored]), /the anchor file's MAC is wrong/);
    failed(
      await cli(["audit", "verify", "--data", data, "--audit-anchor", join(root, "no-such-anchor")]),
      /the anchor file .* is missing or unreadable/,
    );
  });

  it("an admin command without the anchor leaves it behind, never ahead: verify still passes", async () => {
    const data = join(root, "lagging");
    const anchor = join(root, "lagging-anchor.json");
    await ok(["init", "--data", data, "--audit-anchor", anchor]);
    await createKey(data, "--audit-anchor", anchor);
    await createKey(data);
    assert.equal(
      await ok(["audit", "verify", "--data", data, "--audit-anchor", anchor]),
      "audit OK: 2 entries (anchored at entry 1)",
    );
  });
});

describe("data directories from before the head rule", () => {
  /** Turns `data` into what the previous version left: audit key under the old label, and no head if `dropHead`. */
  async function makeOld(data: string, dropHead: boolean): Promise<void> {
    await rewrapAuditKey(data, PASSPHRASE, "audit-mac-key");
    if (dropHead) tamper(data, "DELETE FROM meta WHERE name = 'audit.head'");
  }

  it("an old empty log without a head, and an old log with entries, open and verify", async () => {
    const empty = join(root, "old-empty");
    await ok(["init", "--data", empty]);
    await makeOld(empty, true);
    // One entry: the upgrade's SealAccessPoints (0 rows), written even when there are none.
    assert.equal(await ok(["audit", "verify", "--data", empty]), "audit OK: 1 entries");
    // Migrated: from now on the head is required.
    const copy = join(root, "old-empty-wiped");
    tamperedCopy(empty, copy, (db) => db.exec("DELETE FROM meta WHERE name = 'audit.head'"));
    failed(await cli(["audit", "verify", "--data", copy]), /the chain head record is missing/);

    const used = join(root, "old-used");
    await ok(["init", "--data", used]);
    await createKey(used);
    await createKey(used);
    await makeOld(used, false);
    await createKey(used);
    assert.equal(await ok(["audit", "verify", "--data", used]), "audit OK: 4 entries", "3 keys, 1 seal");
  });

  it("an old-label audit key put back into a used instance whose log was wiped does not restart the chain", async () => {
    const data = join(root, "old-label-wipe");
    await ok(["init", "--data", data]);
    await createKey(data);
    // What a backup would give an attacker: the audit key under the old label, no head.
    await makeOld(data, true);
    const copy = join(root, "old-label-wipe-copy");
    tamperedCopy(data, copy, (db) => db.exec("DELETE FROM audit"));
    failed(await cli(["audit", "verify", "--data", copy]), /the chain head record is missing/);
  });
});
