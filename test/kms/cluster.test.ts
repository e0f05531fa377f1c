/**
 * The KMS on PostgreSQL: several `hsmkit kms serve` nodes on one real PostgreSQL server
 * (test/helpers/postgres.ts), the admin CLI with HSMKIT_KMS_STORE, a revocation seen by the
 * other node's next request, a node SIGKILLed mid-burst, the database stopped and started
 * under a running node, concurrent migrations and audit appends from several instances, and
 * the refusal of a schema newer than this hsmkit; secrets stored through one node and read
 * through another.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import pgLib from "pg";
import {
  adminCreateAccessPoint,
  adminCreateKey,
  adminCreateSecret,
  adminDeleteSecret,
  adminPutSecretValue,
} from "../../src/kms/admin.ts";
import { KmsClient, KmsRequestError } from "../../src/kms/client.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { KmsServer } from "../../src/kms/server.ts";
import { MIGRATIONS } from "../../src/kms/store/migrations.ts";
import { Store } from "../../src/kms/store.ts";
import { PostgresServer } from "../helpers/postgres.ts";
import { refused } from "./kms_fixture.ts";
import { kmsProcesses } from "./kms_process.ts";

const PASSPHRASE = "cluster test passphrase";
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-cluster-"));
let pg: PostgresServer;
before(async () => {
  pg = await PostgresServer.start();
});
after(async () => {
  await pg?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** A fresh database with an instance in it, and the process helpers bound to it. */
async function cluster(name: string) {
  const url = await pg.createDatabase();
  const procs = kmsProcesses(PASSPHRASE, { HSMKIT_KMS_STORE: url });
  const nodeDir = (node: string) => join(root, `${name}-${node}`);
  // The first node initialises the store; the others join with the same passphrase.
  await procs.ok(["init", "--data", nodeDir("a")]);
  const keyId = await procs.ok([
    "key",
    "create",
    "--data",
    nodeDir("a"),
    "--spec",
    "EC_P256",
    "--usage",
    "SIGN/VERIFY",
  ]);
  const apDir = join(root, `${name}-aps`);
  const apId = await procs.createAp(nodeDir("a"), "app", "*", apDir);
  return { url, procs, nodeDir, keyId, apDir, apId };
}

/** Nodes A and B serving the cluster's store, stopped when test `t` ends. */
async function twoNodes(c: Awaited<ReturnType<typeof cluster>>, t: TestContext) {
  const a = await c.procs.serve(c.nodeDir("a"));
  t.after(() => a.proc.stop());
  const b = await c.procs.serve(c.nodeDir("b"));
  t.after(() => b.proc.stop());
  return [a, b] as const;
}

const message = Buffer.from("one store, several nodes");

describe("kms serve nodes on one PostgreSQL", () => {
  it("a key and access point made through node A sign through node B; a revocation on A is refused on B at once", async (t) => {
    const c = await cluster("revoke");
    const [, b] = await twoNodes(c, t); // A runs too; its admin commands reach B through the store
    const viaB = c.procs.client(c.nodeDir("b"), c.apDir, c.apId, b.endpoint, 1);
    t.after(() => viaB.close());
    const signed = await viaB.sign({ keyId: c.keyId, algorithm: "ECDSA_SHA_256", message });
    assert.equal(signed.KeyId, c.keyId);

    // Node B has the access point and key memoised now; the revocation goes through A's admin command.
    await c.procs.ok(["ap", "revoke", "--data", c.nodeDir("a"), "--ap", c.apId]);
    await assert.rejects(
      viaB.sign({ keyId: c.keyId, algorithm: "ECDSA_SHA_256", message }),
      /Forbidden\.AccessPointRevoked/,
    );
    const audit = await c.procs.ok(["audit", "verify", "--data", c.nodeDir("b")]);
    assert.match(audit, /^audit OK: \d+ entries$/);
  });

  it("node A SIGKILLed during a burst through both nodes: every acknowledged Sign is audited and the chain verifies", async (t) => {
    const c = await cluster("kill");
    const [a, b] = await twoNodes(c, t);
    const clients = [a, b].map((node, i) => {
      const client = c.procs.client(c.nodeDir(i === 0 ? "a" : "b"), c.apDir, c.apId, node.endpoint, 1);
      t.after(() => client.close());
      return client;
    });
    const acknowledged: string[] = [];
    const failedOn = [0, 0];
    let killed = false;
    const worker = async (w: number): Promise<void> => {
      const node = w % 2;
      for (let i = 0; i < 30 && failedOn[node] === 0; i++) {
        try {
          const r = await (clients[node] as KmsClient).sign({
            keyId: c.keyId,
            algorithm: "ECDSA_SHA_256",
            message: Buffer.from(`w${w} m${i}`),
          });
          acknowledged.push(r.RequestId);
          if (acknowledged.length >= 60 && !killed) {
            killed = true;
            process.kill(a.proc.pid, "SIGKILL");
          }
        } catch (err) {
          assert.ok(!(err instanceof KmsRequestError), `a dropped connection, not a refusal: ${err}`);
          failedOn[node] = (failedOn[node] ?? 0) + 1;
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, w) => worker(w)));
    assert.ok(killed && (failedOn[0] ?? 0) > 0, `node A died mid-burst (${acknowledged.length} acked)`);
    assert.equal(failedOn[1], 0, "node B kept serving");

    const instance = await KmsInstance.open({ store: c.url, passphrase: PASSPHRASE });
    try {
      const entries = await instance.audit.entries();
      const audited = new Set(entries.map((e) => e.requestId));
      const lost = acknowledged.filter((id) => !audited.has(id));
      assert.deepEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged Signs not audited`);
      assert.deepEqual(await instance.audit.verify(), { ok: true, count: entries.length });
    } finally {
      await instance.close();
    }
  });

  it("a node whose database stops answers InternalFailure, and serves again once it is back", async (t) => {
    const c = await cluster("outage");
    const node = await c.procs.serve(c.nodeDir("a"));
    t.after(() => node.proc.stop());
    const client = c.procs.client(c.nodeDir("a"), c.apDir, c.apId, node.endpoint, 1);
    t.after(() => client.close());
    const sign = () => client.sign({ keyId: c.keyId, algorithm: "ECDSA_SHA_256", message });
    await sign();
    await pg.halt();
    try {
      await assert.rejects(
        sign(),
        (err: unknown) => err instanceof KmsRequestError && err.code === "InternalFailure",
      );
      await assert.rejects(
        sign(),
        (err: unknown) => err instanceof KmsRequestError && err.code === "InternalFailure",
      );
    } finally {
      await pg.launch();
    }
    let served: string | undefined;
    for (let i = 0; i < 40 && served === undefined; i++) {
      try {
        served = (await sign()).RequestId;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.ok(served, "the node recovered by itself");
    assert.ok(node.proc.running());
    assert.match(await c.procs.ok(["audit", "verify", "--data", c.nodeDir("a")]), /^audit OK/);
  });
});

describe("the PostgreSQL store", () => {
  it("migrates once when several nodes open a new database at the same time", async () => {
    const url = await pg.createDatabase();
    const stores = await Promise.all([1, 2, 3].map(() => Store.open({ postgresUrl: url })));
    await Promise.all(stores.map((s) => s.close()));
    const versions = await pg.query<{ version: number }>(
      url,
      "SELECT version FROM schema_migrations ORDER BY version",
    );
    assert.deepEqual(
      versions.map((v) => v.version),
      MIGRATIONS.map((m) => m.version),
    );
  });

  it("refuses a schema newer than this hsmkit knows", async () => {
    const url = await pg.createDatabase();
    await (await Store.open({ postgresUrl: url })).close();
    await pg.query(url, "INSERT INTO schema_migrations VALUES (99, 'from the future', 'now')");
    await assert.rejects(
      Store.open({ postgresUrl: url }),
      /schema is version 99, newer than this hsmkit knows/,
    );
  });

  it("keeps one audit chain, without gaps or forks, under concurrent appends from two instances", async () => {
    const url = await pg.createDatabase();
    const first = await KmsInstance.open({ store: url, create: true, passphrase: PASSPHRASE });
    const second = await KmsInstance.open({ store: url, passphrase: PASSPHRASE });
    try {
      const event = (who: string, n: number) => ({
        actor: who,
        source: "local",
        operation: "Test",
        keyId: "",
        outcome: "ok",
        requestId: `${who}-${n}`,
        detail: "",
      });
      const appends = [first, second].flatMap((instance, i) =>
        Array.from({ length: 150 }, (_, n) => instance.audit.appendSoon(event(`node${i}`, n))),
      );
      const seqs = await Promise.all(appends);
      assert.equal(new Set(seqs).size, 300, "every entry got its own number");
      assert.deepEqual(await second.audit.verify(), { ok: true, count: 300 });
    } finally {
      await first.close();
      await second.close();
    }
  });

  it("a request whose audit text holds a NUL (refused by PostgreSQL text) fails no other entry of its group commit", async () => {
    const url = await pg.createDatabase();
    const instance = await KmsInstance.open({ store: url, create: true, passphrase: PASSPHRASE });
    try {
      const event = (keyId: string, n: number) => ({
        actor: "KAAP.test",
        source: "127.0.0.1",
        operation: "GetSecretValue",
        keyId,
        outcome: "ok",
        requestId: `r-${n}`,
        detail: "",
      });
      // Queued in one event-loop turn: one INSERT for all of them.
      const seqs = await Promise.all([
        ...Array.from({ length: 20 }, (_, n) => instance.audit.appendSoon(event("secret:db", n))),
        instance.audit.appendSoon(event("secret:a\u0000b", 20)),
      ]);
      assert.equal(new Set(seqs).size, 21);
      const entries = await instance.audit.entries();
      assert.ok(
        entries.some((e) => e.keyId === "secret:a\\u0000b"),
        "stored with the NUL escaped",
      );
      assert.deepEqual(await instance.audit.verify(), { ok: true, count: 21 });
    } finally {
      await instance.close();
    }
  });

  it("an admin command needs an initialised store and a passphrase", async () => {
    const url = await pg.createDatabase();
    const procs = kmsProcesses(PASSPHRASE, { HSMKIT_KMS_STORE: url });
    const r = await procs.cli(["key", "list"]);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /holds no KMS instance/);
    const noPass = kmsProcesses("", { HSMKIT_KMS_STORE: url });
    const init = await noPass.cli(["init"]);
    assert.notEqual(init.exitCode, 0);
    assert.match(init.stderr, /passphrase/);
  });
});

/**
 * Secrets on PostgreSQL: a secret and an access point made through node A are read through
 * node B (instances and server in this process); a new value or a deletion on A reaches B's
 * very next GetSecretValue (the memoised rows follow the store's change counter).
 */
describe("secrets on PostgreSQL", () => {
  it("node B serves what node A stores, and sees A's next change at once", async (t) => {
    const store = await pg.createDatabase();
    const a = await KmsInstance.open({
      store,
      dataDir: join(root, "secrets-a"),
      create: true,
      passphrase: PASSPHRASE,
    });
    t.after(() => a.close());
    const b = await KmsInstance.open({ store, dataDir: join(root, "secrets-b"), passphrase: PASSPHRASE });
    t.after(() => b.close());
    const server = await KmsServer.start({ instance: b });
    t.after(() => server.close());

    const key = await adminCreateKey(a, "AES_256", "ENCRYPT/DECRYPT");
    await adminCreateSecret(a, { name: "db-password", value: Buffer.from("pg pw 1"), keyId: key.id });
    await adminCreateSecret(a, { name: "db-token", value: Buffer.from("token"), versionId: "t1" });
    const ap = await adminCreateAccessPoint(a, {
      name: "app",
      secrets: "db-*",
      outDir: join(root, "secrets-aps"),
    });
    const client = new KmsClient({
      endpoint: server.endpoint,
      clientKeyFile: ap.clientKeyFile,
      passwordFile: ap.passwordFile,
      caFilePath: b.caPath,
    });
    t.after(() => client.close());

    assert.equal((await client.getSecretValue({ secretName: "db-password" })).SecretData, "pg pw 1");
    const token = await client.getSecretValue({ secretName: "db-token" });
    assert.deepEqual(
      [token.SecretData, token.VersionId, token.VersionStages],
      ["token", "t1", ["ACSCurrent"]],
    );

    await adminPutSecretValue(a, "db-password", Buffer.from("pg pw 2"), "v2");
    const current = await client.getSecretValue({ secretName: "db-password" });
    assert.deepEqual([current.SecretData, current.VersionId], ["pg pw 2", "v2"]);
    const previous = await client.getSecretValue({ secretName: "db-password", versionStage: "ACSPrevious" });
    assert.equal(previous.SecretData, "pg pw 1");

    await adminDeleteSecret(a, "db-password");
    await refused(client.getSecretValue({ secretName: "db-password" }), "Forbidden.ResourceNotFound");
    const rows = await pg.query<{ n: string }>(
      store,
      "SELECT COUNT(*) AS n FROM secret_stages WHERE secret_name = $1",
      ["db-password"],
    );
    assert.equal(Number(rows[0]?.n), 0, "the stages went with the secret");
  });
});

describe("access point rows on PostgreSQL", () => {
  it("a row edited with the database credentials every node holds is refused by every node", async (t) => {
    const store = await pg.createDatabase();
    const a = await KmsInstance.open({
      store,
      dataDir: join(root, "apmac-a"),
      create: true,
      passphrase: PASSPHRASE,
    });
    t.after(() => a.close());
    const b = await KmsInstance.open({ store, dataDir: join(root, "apmac-b"), passphrase: PASSPHRASE });
    t.after(() => b.close());
    const server = await KmsServer.start({ instance: b, log: () => {} });
    t.after(() => server.close());
    await adminCreateSecret(a, { name: "db-password", value: Buffer.from("pw") });
    await adminCreateSecret(a, { name: "root-password", value: Buffer.from("root") });
    const ap = await adminCreateAccessPoint(a, {
      name: "app",
      secrets: "db-*",
      outDir: join(root, "apmac-aps"),
    });
    const client = new KmsClient({
      endpoint: server.endpoint,
      clientKeyFile: ap.clientKeyFile,
      passwordFile: ap.passwordFile,
      caFilePath: b.caPath,
      maxAttempts: 1,
    });
    t.after(() => client.close());
    assert.equal((await client.getSecretValue({ secretName: "db-password" })).SecretData, "pw");

    const wide = JSON.stringify({ ...ap.record.policy, secrets: ["*"] });
    await pg.query(store, "UPDATE access_points SET policy = $1 WHERE id = $2", [wide, ap.record.id]);
    await pg.query(store, "UPDATE changes SET counter = counter + 1 WHERE id = 1");
    await refused(client.getSecretValue({ secretName: "root-password" }), "InvalidAccessKeyId");
    await b.accessPoints.settled();
    const entries = await a.audit.entries();
    assert.ok(
      entries.some((e) => e.detail.includes(`access point ${ap.record.id} failed its integrity check`)),
    );
  });

  it("the upgrade seals nothing over a row an older node revokes meanwhile", async (t) => {
    const store = await pg.createDatabase();
    const a = await KmsInstance.open({
      store,
      dataDir: join(root, "l1-a"),
      create: true,
      passphrase: PASSPHRASE,
    });
    const { id } = (await adminCreateAccessPoint(a, { name: "app", keys: "*", outDir: join(root, "l1-aps") }))
      .record;
    const raw = await a.master.unwrap((await a.store.getMeta("audit.key")) as Buffer, "audit-mac-key v3");
    await a.store.setMeta("audit.key", await a.master.wrap(raw, "audit-mac-key v2"));
    await a.close();
    await pg.query(store, "UPDATE access_points SET mac = NULL");
    // An older node's revoke holds the row lock while the seal reads the Active row.
    const old = new pgLib.Client({ connectionString: store });
    await old.connect();
    t.after(() => old.end());
    await old.query("BEGIN");
    await old.query("UPDATE access_points SET state = 'Revoked', revoked_at = 'now' WHERE id = $1", [id]);
    const opening = KmsInstance.open({ store, dataDir: join(root, "l1-b"), passphrase: PASSPHRASE });
    await new Promise((r) => setTimeout(r, 1000));
    await old.query("COMMIT");
    const b = await opening;
    t.after(() => b.close());
    const rows = await pg.query<{ mac: Buffer | null }>(
      store,
      "SELECT mac FROM access_points WHERE id = $1",
      [id],
    );
    assert.equal(rows[0]?.mac, null, "no MAC of the Active row on the Revoked row");
    await pg.query(store, "UPDATE access_points SET state = 'Active', revoked_at = NULL WHERE id = $1", [id]);
    await pg.query(store, "UPDATE changes SET counter = counter + 1 WHERE id = 1");
    await b.store.checkForChanges();
    assert.equal(await b.accessPoints.find(id), undefined);
  });
});
