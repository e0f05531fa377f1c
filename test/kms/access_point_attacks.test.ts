/**
 * The review's attacks on access point MACs, as a database writer without the master key:
 * re-sealing by putting back the pre-upgrade audit key record, sealing rows the log does not
 * back, replaying a row from before its revocation, storage-class games, audit flooding and a
 * frozen change counter. Real instances on SQLite files, edits made with SQL on the file.
 */
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, mock, type TestContext } from "node:test";
import {
  accessPointTable,
  adminCreateAccessPoint,
  adminRevokeAccessPoint,
  adminVerifyAudit,
} from "../../src/kms/admin.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { type IntegrityReport, IntegrityReports } from "../../src/kms/integrity_reports.ts";
import { ChangeWatch, Memo } from "../../src/kms/read_cache.ts";
import { accessPointRow, makePreMacStore, putBackAccessPointRow, tamper } from "./store_tamper.ts";

const PASSPHRASE = "access point attack test passphrase";
const SEAL = "SealAccessPoints";
const WIDE = '{"keys":["*"],"operations":["*"],"sourceIps":[],"secrets":["*"]}';
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-apattack-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

async function open(t: TestContext, data: string, warnings: string[] = []): Promise<KmsInstance> {
  const instance = await KmsInstance.open({
    dataDir: data,
    create: true,
    passphrase: PASSPHRASE,
    warn: (l) => warnings.push(l),
  });
  t.after(() => instance.close());
  return instance;
}

const newDir = () => join(root, `d${++dirs}`);
const createAp = (i: KmsInstance, name: string) =>
  adminCreateAccessPoint(i, { name, keys: "*", outDir: join(root, `aps${dirs}-${name}`) });

const seals = async (i: KmsInstance) => (await i.audit.entries()).filter((e) => e.operation === SEAL);

/** A row of the writer's own: no MAC column yet ("legacy"), a NULL MAC, or a junk one. */
function insertForged(data: string, id: string, mac: "legacy" | "NULL" | "junk" = "NULL"): void {
  const der = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "der",
  });
  const [column, value] = mac === "legacy" ? ["", ""] : [", mac", mac === "NULL" ? ", NULL" : ", x'00'"];
  tamper(
    data,
    `INSERT INTO access_points (id, name, public_der, policy, state, created_at, revoked_at${column}) VALUES (?, ?, ?, ?, 'Active', ?, NULL${value})`,
    id,
    `forged-${id.slice(-4)}`,
    der,
    WIDE,
    new Date().toISOString(),
  );
}

describe("the upgrade seal", () => {
  it("is audited for 0 rows, so a restored old key record never seals a later row", async (t) => {
    const data = newDir();
    await (await open(t, data)).close();
    const oldKey = await makePreMacStore(data, PASSPHRASE);
    const upgraded = await open(t, data);
    assert.match((await seals(upgraded))[0]?.detail ?? "", /^0 access point rows/);
    await upgraded.close();

    tamper(data, "UPDATE meta SET value = ? WHERE name = 'audit.key'", oldKey);
    insertForged(data, "KAAP.00000000-0000-4000-8000-00000000f001");
    const kms = await open(t, data);
    assert.equal(await kms.accessPoints.find("KAAP.00000000-0000-4000-8000-00000000f001"), undefined);
    assert.equal((await seals(kms)).at(-1)?.outcome, "Refused");
  });

  it("seals only the rows the verified log backs, and names them by hash", async (t) => {
    const data = newDir();
    const first = await open(t, data);
    const good = await createAp(first, "good");
    const widened = await createAp(first, "widened");
    await first.close();
    await makePreMacStore(data, PASSPHRASE);
    // Before the upgrade, the writer widens one row and inserts another.
    tamper(data, "UPDATE access_points SET policy = ? WHERE id = ?", WIDE, widened.record.id);
    insertForged(data, "KAAP.00000000-0000-4000-8000-00000000f002", "legacy");

    const kms = await open(t, data);
    assert.equal((await kms.accessPoints.find(good.record.id))?.state, "Active");
    assert.equal(await kms.accessPoints.find(widened.record.id), undefined);
    assert.equal(await kms.accessPoints.find("KAAP.00000000-0000-4000-8000-00000000f002"), undefined);
    const [sealed, refused, ...more] = await seals(kms);
    assert.equal(more.length, 0);
    const hash = createHash("sha256").update(good.record.id).digest("hex");
    assert.match(sealed?.detail ?? "", new RegExp(`^1 access point rows .* sha256=${hash}`));
    assert.equal(refused?.outcome, "Refused");
    assert.match(
      refused?.detail ?? "",
      /^2 access point rows without a MAC left unsealed: the verified audit log/,
    );
  });

  it("is refused while the audit log fails verification, and tried again later", async (t) => {
    const data = newDir();
    const first = await open(t, data);
    const ap = await createAp(first, "app");
    await first.close();
    await makePreMacStore(data, PASSPHRASE);
    tamper(
      data,
      "DROP TRIGGER audit_no_update; UPDATE audit SET detail = 'edited' WHERE seq = 1; CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'append-only'); END;",
    );
    const warnings: string[] = [];
    const kms = await open(t, data, warnings);
    // Requests that need the log are refused outright now, not only this unsealed row.
    await assert.rejects(kms.accessPoints.find(ap.record.id), /entry 1 is not the log's own/);
    assert.deepEqual(await seals(kms), [], "nothing appended to a log that fails to verify");
    assert.ok(warnings.some((w) => /1 access point rows .* fails verification at entry 1/.test(w)));
    const label = await kms.master.unwrap(
      (await kms.store.getMeta("audit.key")) as Buffer,
      "audit-mac-key v2",
    );
    assert.equal(label.length, 32, "the key keeps its old label");
  });
});

describe("a row whose columns change type", () => {
  it("is refused and reported, never trusted or thrown on", async (t) => {
    const data = newDir();
    const warnings: string[] = [];
    const kms = await open(t, data, warnings);
    const blob = await createAp(kms, "blob");
    const integer = await createAp(kms, "integer");
    tamper(data, "UPDATE access_points SET state = CAST(state AS BLOB) WHERE id = ?", blob.record.id);
    tamper(data, "UPDATE access_points SET public_der = 12345 WHERE id = ?", integer.record.id);
    await kms.store.checkForChanges();
    assert.equal(await kms.accessPoints.find(blob.record.id), undefined);
    assert.equal(await kms.accessPoints.find(integer.record.id), undefined);
    assert.deepEqual(await accessPointTable(kms), []);
    assert.ok(warnings.some((w) => w.includes(`${blob.record.id} failed its integrity check`)));
  });

  it("can still be revoked: overwritten with a sealed Revoked row granting nothing", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    const created = accessPointRow(data, ap.record.id).created_at as string;
    tamper(data, "UPDATE access_points SET created_at = ? WHERE id = ?", `${created} `, ap.record.id);
    await kms.store.checkForChanges();
    assert.equal(await adminRevokeAccessPoint(kms, "app"), ap.record.id);
    const revoked = await kms.accessPoints.find(ap.record.id);
    assert.equal(revoked?.state, "Revoked");
    assert.deepEqual(revoked?.policy, { keys: [], operations: [], sourceIps: [] });
    const entries = await kms.audit.entries();
    assert.ok(entries.some((e) => e.operation === "AccessPointIntegrity" && e.outcome === "Overwritten"));
  });
});

describe("a revoked row put back as it was before its revocation", () => {
  async function replayed(t: TestContext) {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    const before = accessPointRow(data, ap.record.id);
    await adminRevokeAccessPoint(kms, ap.record.id);
    putBackAccessPointRow(data, before);
    await kms.store.checkForChanges();
    return { kms, id: ap.record.id };
  }

  it("is still refused as revoked on the request path", async (t) => {
    const { kms, id } = await replayed(t);
    assert.equal((await kms.accessPoints.find(id))?.state, "Revoked");
  });

  it("fails audit verify", async (t) => {
    const { kms, id } = await replayed(t);
    const verdict = await adminVerifyAudit(kms);
    assert.equal(verdict.ok, false);
    assert.match(
      verdict.ok ? "" : verdict.reason,
      new RegExp(`revokes access point ${id}, whose row says Active`),
    );
  });

  it("cannot come from a revocation without its audit entry (one transaction)", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    tamper(
      data,
      "CREATE TRIGGER no_append BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'no append'); END;",
    );
    await assert.rejects(adminRevokeAccessPoint(kms, ap.record.id), /no append/);
    assert.equal(accessPointRow(data, ap.record.id).state, "Active");
  });
});

describe("integrity reports", () => {
  it("are one audit entry per listing and rate-limited on the request path", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ids = Array.from(
      { length: 30 },
      (_, n) => `KAAP.00000000-0000-4000-8000-0000000${String(n).padStart(5, "0")}`,
    );
    for (const id of ids) insertForged(data, id, "junk");
    await kms.store.checkForChanges();
    const integrity = async () =>
      (await kms.audit.entries()).filter((e) => e.operation === "AccessPointIntegrity").length;
    await accessPointTable(kms);
    await accessPointTable(kms);
    await kms.accessPoints.settled();
    assert.equal(await integrity(), 2);
    for (const id of ids) await kms.accessPoints.find(id);
    await kms.accessPoints.settled();
    assert.equal(await integrity(), 12, "at most 10 a minute from requests");
  });

  it("count what the limits held back into the next entry", async () => {
    const made: IntegrityReport[] = [];
    let now = 0;
    const reports = new IntegrityReports(
      async (r) => void made.push(r),
      { perIdMs: 3_600_000, perMinute: 2 },
      () => now,
    );
    for (const id of ["a", "a", "b", "c", "d"]) reports.one(id, "failed");
    now = 61_000;
    reports.one("e", "failed");
    await reports.settled();
    assert.deepEqual(
      made.map((r) => [r.ids.join(), r.suppressed]),
      [
        ["a", 0],
        ["b", 1],
        ["e", 2],
      ],
    );
  });
});

describe("a frozen change counter", () => {
  it("fails the write instead of leaving every node's memo stale", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    tamper(data, "CREATE TRIGGER freeze BEFORE UPDATE ON changes BEGIN SELECT RAISE(IGNORE); END;");
    await assert.rejects(adminRevokeAccessPoint(kms, ap.record.id), /change counter did not advance/);
    assert.equal(accessPointRow(data, ap.record.id).state, "Active");
  });

  it("cannot keep a memoised value past its maximum age", async () => {
    mock.timers.enable({ apis: ["Date"], now: 1_000_000 });
    try {
      const watch = new ChangeWatch(async () => 7);
      await watch.refresh();
      const memo = new Memo<string>(watch);
      let loads = 0;
      const load = async () => `v${++loads}`;
      assert.equal(await memo.get("k", load), "v1");
      mock.timers.tick(29_000);
      assert.equal(await memo.get("k", load), "v1");
      mock.timers.tick(2_000);
      assert.equal(await memo.get("k", load), "v2");
    } finally {
      mock.timers.reset();
    }
  });
});
