/**
 * How the request path reads revocations from the audit log, as a database writer without the
 * master key attacks it: forged revocation entries (trusted, or used to move the read past the
 * real ones), deletions under the point read up to, and the cost of the read as the log grows.
 * Also the upgrade with a new anchor path and a blocked change counter, and shutdown reports.
 * Real instances on SQLite files, edits made with SQL on the file.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import Database from "better-sqlite3";
import { adminCreateAccessPoint, adminRevokeAccessPoint } from "../../src/kms/admin.ts";
import { AuditGapError } from "../../src/kms/audit_walk.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { auditingSink, type IntegrityReport, IntegrityReports } from "../../src/kms/integrity_reports.ts";
import { ChangeWatch, Memo } from "../../src/kms/read_cache.ts";
import {
  accessPointRow,
  deleteAuditEntries,
  putBackAccessPointRow,
  readRow,
  rewrapAuditKey,
  tamper,
} from "./store_tamper.ts";

const PASSPHRASE = "access point revocation test passphrase";
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-aprevoke-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => join(root, `d${++dirs}`);

async function open(
  t: TestContext,
  data: string,
  extra: { auditAnchor?: string } = {},
): Promise<KmsInstance> {
  const instance = await KmsInstance.open({ dataDir: data, create: true, passphrase: PASSPHRASE, ...extra });
  t.after(() => instance.close());
  return instance;
}

const createAp = (i: KmsInstance, name: string) =>
  adminCreateAccessPoint(i, { name, keys: "*", outDir: join(root, `aps${dirs}-${name}`) });

const maxSeq = (data: string) => Number(readRow(data, "SELECT MAX(seq) AS m FROM audit").m);

/** A revocation entry for `id` at `seq` with junk hash and MAC (no master key needed). */
function forgeRevocation(data: string, seq: number, id: string): void {
  tamper(
    data,
    "INSERT INTO audit (seq, time, actor, source, operation, key_id, outcome, request_id, detail, prev_hash, hash, mac) VALUES (?, 't', 'admin', 'local', 'RevokeAccessPoint', '', 'ok', '', ?, x'00', x'00', x'00')",
    seq,
    id,
  );
}

describe("revocations read on the request path", () => {
  it("count only entries whose hash and MAC are the log's: a forged one revokes nothing, and breaks the log", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    forgeRevocation(data, 1_000_000, ap.record.id);
    await kms.store.checkForChanges();
    await assert.rejects(kms.accessPoints.find(ap.record.id), AuditGapError);
    deleteAuditEntries(data, `seq = 1000000`);
    await kms.store.checkForChanges();
    assert.equal((await kms.accessPoints.find(ap.record.id))?.state, "Active");
  });

  it("are not skipped after a forged high-numbered entry is read and deleted", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    const before = accessPointRow(data, ap.record.id);
    forgeRevocation(data, 1_000_000_000, "bogus");
    await kms.store.checkForChanges();
    await assert.rejects(kms.accessPoints.find(ap.record.id), AuditGapError);
    deleteAuditEntries(data, `seq = 1000000000`);
    await kms.store.checkForChanges();
    await adminRevokeAccessPoint(kms, ap.record.id);
    putBackAccessPointRow(data, before);
    await kms.store.checkForChanges();
    assert.equal((await kms.accessPoints.find(ap.record.id))?.state, "Revoked");
  });

  it("with the newest entry deleted, nothing more is appended and nothing is read", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    assert.equal((await kms.accessPoints.find(ap.record.id))?.state, "Active");
    const top = maxSeq(data);
    // The newest entry goes: a revocation would be numbered as it was, and hide the deletion.
    deleteAuditEntries(data, `seq = ${top}`);
    await assert.rejects(adminRevokeAccessPoint(kms, ap.record.id), AuditGapError);
    assert.equal(maxSeq(data), top - 1);
    await kms.store.checkForChanges();
    await assert.rejects(kms.accessPoints.find(ap.record.id), /ends at entry .*, before its head/);
  });

  it("read from the newest entry seen, by index, however long the log grows", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const ap = await createAp(kms, "app");
    await kms.accessPoints.find(ap.record.id);
    const seen = maxSeq(data);
    for (let n = 0; n < 20; n++) {
      await kms.audit.append({
        actor: "kms",
        source: "local",
        operation: "Encrypt",
        keyId: "",
        outcome: "ok",
        requestId: "",
        detail: "",
      });
    }
    await kms.store.checkForChanges();
    const query = t.mock.method(kms.store.driver, "query");
    await kms.accessPoints.find(ap.record.id);
    const read = query.mock.calls.find((c) =>
      /RevokeAccessPoint|operation IN \(\$2\)/.test(String(c.arguments[0])),
    );
    assert.ok(read, "the revocations were read");
    const [text, params] = read.arguments as [string, unknown[]];
    assert.equal(params[0], seen, "only entries after the newest one read last time");
    const db = new Database(join(data, "kms.db"));
    try {
      // As the SQLite driver binds them: each $N becomes ? with its value, in order.
      const order: unknown[] = [];
      const positional = text.replace(/\$(\d+)/g, (_, n: string) => {
        order.push(params[Number(n) - 1]);
        return "?";
      });
      const plan = db
        .prepare(`EXPLAIN QUERY PLAN ${positional}`)
        .all(...order)
        .map((r) => String((r as { detail: string }).detail));
      assert.ok(
        plan.some((d) => d.includes("audit_operation_seq")),
        plan.join("\n"),
      );
      assert.ok(!plan.some((d) => /^SCAN audit\b/.test(d)), plan.join("\n"));
    } finally {
      db.close();
    }
  });
});

describe("memos", () => {
  it("share one load between callers missing the same key", async () => {
    const watch = new ChangeWatch(async () => 1);
    await watch.refresh();
    const memo = new Memo<string>(watch);
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 5));
      return "v";
    };
    assert.deepEqual(await Promise.all([memo.get("k", load), memo.get("k", load)]), ["v", "v"]);
    assert.equal(loads, 1);
  });
});

/** Makes `data`'s access point rows and audit key what the previous version left. */
async function makeOld(data: string): Promise<void> {
  await rewrapAuditKey(data, PASSPHRASE, "audit-mac-key v2");
  tamper(data, "UPDATE access_points SET mac = NULL");
}

describe("the upgrade", () => {
  it("with a new --audit-anchor path seals the rows and creates the anchor", async (t) => {
    const data = newDir();
    const first = await open(t, data);
    const ap = await createAp(first, "app");
    await first.close();
    await makeOld(data);
    const anchor = join(root, `anchor${dirs}.json`);
    const kms = await open(t, data, { auditAnchor: anchor });
    assert.equal((await kms.accessPoints.find(ap.record.id))?.state, "Active");
    assert.ok(existsSync(anchor));
    assert.equal((await kms.audit.verify()).ok, true);
  });

  it("with an anchor file present but wrong seals nothing", async (t) => {
    const data = newDir();
    const first = await open(t, data);
    const ap = await createAp(first, "app");
    await first.close();
    await makeOld(data);
    const anchor = join(root, `anchor${dirs}.json`);
    writeFileSync(anchor, '{"seq":1,"hash":"00","mac":"00"}\n');
    const kms = await KmsInstance.open({
      dataDir: data,
      passphrase: PASSPHRASE,
      auditAnchor: anchor,
      warn: () => {},
    });
    t.after(() => kms.close());
    await assert.rejects(kms.accessPoints.find(ap.record.id), /anchored head is not the log's/);
    assert.equal(accessPointRow(data, ap.record.id).mac, null);
  });

  it("fails, sealing nothing, when a trigger cancels its change counter update", async (t) => {
    const data = newDir();
    const first = await open(t, data);
    const ap = await createAp(first, "app");
    await first.close();
    await makeOld(data);
    tamper(data, "CREATE TRIGGER freeze BEFORE UPDATE ON changes BEGIN SELECT RAISE(IGNORE); END;");
    await assert.rejects(
      KmsInstance.open({ dataDir: data, passphrase: PASSPHRASE }),
      /change counter did not advance/,
    );
    assert.equal(accessPointRow(data, ap.record.id).mac, null);
  });
});

describe("integrity reports at shutdown", () => {
  it("report the count the limits still hold back", async () => {
    const made: IntegrityReport[] = [];
    const reports = new IntegrityReports(async (r) => void made.push(r), {
      perIdMs: 3_600_000,
      perMinute: 1,
    });
    for (const id of ["a", "b", "c"]) reports.one(id, "failed");
    await reports.finish();
    assert.deepEqual(
      made.map((r) => [r.ids.join(), r.count, r.suppressed]),
      [
        ["a", 1, 0],
        ["", 0, 2],
      ],
    );
  });

  it("say so in the log line and the audit entry", async (t) => {
    const data = newDir();
    const kms = await open(t, data);
    const lines: string[] = [];
    await auditingSink(kms.audit, (l) => lines.push(l))({
      ids: [],
      count: 0,
      suppressed: 3,
      what: "held back",
    });
    assert.deepEqual(lines, ["kms: 3 access point integrity failures since the last entry held back"]);
    assert.equal(
      (await kms.audit.entries()).at(-1)?.detail,
      "3 access point integrity failures since the last entry held back",
    );
  });
});
