/**
 * Access point rows are MAC'd under a key only the master key reaches: someone who can write
 * the database (the SQLite file, the PostgreSQL credentials) but lacks the master key cannot
 * re-enable a revoked access point, widen its policy or swap its public key. An edited row is
 * refused exactly as an access point that does not exist, and the server says why in its log
 * and audit. Rows written before the MACs existed are sealed once, on upgrade. Real instance,
 * real HTTPS server, edits made with SQL on the live SQLite file as an attacker would.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import Database from "better-sqlite3";
import { SEAL_OPERATION } from "../../src/kms/access_point_upgrade.ts";
import {
  accessPointTable,
  adminCreateAccessPoint,
  adminCreateSecret,
  adminRevokeAccessPoint,
} from "../../src/kms/admin.ts";
import { KmsClient } from "../../src/kms/client.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { decodeMessage, encodeMessage } from "../../src/kms/proto.ts";
import { KmsServer } from "../../src/kms/server.ts";
import { rawRequest, refused, signedHeaders } from "./kms_fixture.ts";
import { makePreMacStore, tamper } from "./store_tamper.ts";

const PASSPHRASE = "access point integrity test passphrase";
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-apmac-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

interface Running {
  readonly data: string;
  readonly instance: KmsInstance;
  readonly server: KmsServer;
  readonly warnings: string[];
  client(ap: { clientKeyFile: string; passwordFile: string }): KmsClient;
  /** Runs SQL on the live database file, then bumps the change counter as an attacker would. */
  tamper(sql: string, ...params: unknown[]): void;
  /** Stops server and instance (also done after the test). */
  stop(): Promise<void>;
}

async function start(t: TestContext, data = join(root, `d${++dirs}`)): Promise<Running> {
  const warnings: string[] = [];
  const instance = await KmsInstance.open({
    dataDir: data,
    create: true,
    passphrase: PASSPHRASE,
    warn: (line) => warnings.push(line),
  });
  const server = await KmsServer.start({ instance, log: (line) => warnings.push(line) });
  const clients: KmsClient[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      for (const c of clients) c.close();
      await server.close();
      await instance.close();
    })();
    return stopped;
  };
  t.after(stop);
  return {
    data,
    instance,
    server,
    warnings,
    stop,
    client(ap) {
      const c = new KmsClient({
        endpoint: server.endpoint,
        clientKeyFile: ap.clientKeyFile,
        passwordFile: ap.passwordFile,
        caFilePath: instance.caPath,
        maxAttempts: 1,
      });
      clients.push(c);
      return c;
    },
    tamper: (sql, ...params) => tamper(data, sql, ...params),
  };
}

const createAp = (kms: Running, name: string, extra: { keys?: string; secrets?: string } = { keys: "*" }) =>
  adminCreateAccessPoint(kms.instance, { name, outDir: join(kms.data, "..", `${name}-aps`), ...extra });

/** The server said, in its log and its audit, which access point failed its check. */
async function reported(kms: Running, id: string): Promise<void> {
  const line = `access point ${id} failed its integrity check`;
  assert.ok(
    kms.warnings.some((w) => w.includes(line)),
    `log line "${line}" in:\n${kms.warnings.join("\n")}`,
  );
  await kms.instance.accessPoints.settled();
  const entries = await kms.instance.audit.entries();
  assert.ok(
    entries.some((e) => e.detail.includes(line)),
    "audited",
  );
}

describe("an access point row edited in the database", () => {
  it("a revoked access point re-enabled with UPDATE state is still refused", async (t) => {
    const kms = await start(t);
    const ap = await createAp(kms, "revoked");
    const client = kms.client(ap);
    assert.equal((await client.generateRandom(4)).Random.length, 4);
    await adminRevokeAccessPoint(kms.instance, ap.record.id);
    await refused(client.generateRandom(4), "Forbidden.AccessPointRevoked");

    kms.tamper("UPDATE access_points SET state = 'Active', revoked_at = NULL WHERE id = ?", ap.record.id);
    await refused(client.generateRandom(4), "InvalidAccessKeyId");
    await reported(kms, ap.record.id);
  });

  it("a policy widened with UPDATE policy is refused", async (t) => {
    const kms = await start(t);
    await adminCreateSecret(kms.instance, { name: "db-password", value: Buffer.from("pw") });
    await adminCreateSecret(kms.instance, { name: "root-password", value: Buffer.from("root") });
    const ap = await createAp(kms, "narrow", { secrets: "db-*" });
    const client = kms.client(ap);
    assert.equal((await client.getSecretValue({ secretName: "db-password" })).SecretData, "pw");
    await refused(client.getSecretValue({ secretName: "root-password" }), "Forbidden.NoPermission");

    const wide = JSON.stringify({ ...ap.record.policy, keys: ["*"], secrets: ["*"] });
    kms.tamper("UPDATE access_points SET policy = ? WHERE id = ?", wide, ap.record.id);
    await refused(client.getSecretValue({ secretName: "root-password" }), "InvalidAccessKeyId");
    await refused(client.getSecretValue({ secretName: "db-password" }), "InvalidAccessKeyId");
    await reported(kms, ap.record.id);
  });

  it("a public key swapped for the attacker's is refused", async (t) => {
    const kms = await start(t);
    const victim = await createAp(kms, "victim");
    const attacker = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const attackerDer = attacker.publicKey.export({ type: "spki", format: "der" });
    kms.tamper("UPDATE access_points SET public_der = ? WHERE id = ?", attackerDer, victim.record.id);

    const body = encodeMessage("GenerateRandomRequest", { Length: 4 });
    const config = { ...configOf(kms, victim), clientKeyFile: victim.clientKeyFile };
    const headers = signedHeaders(config, "GenerateRandom", body, {}, attacker.privateKey);
    const reply = await rawRequest(kms.server.endpoint, await kms.instance.caCertPem(), headers, body);
    assert.equal(reply.code, "InvalidAccessKeyId");
    // The real key holder is refused too: the row as a whole is not trusted.
    await refused(kms.client(victim).generateRandom(4), "InvalidAccessKeyId");
    await reported(kms, victim.record.id);
  });

  it("the refusal is the one an unknown access point gets, byte for byte but the request id", async (t) => {
    const kms = await start(t);
    const ap = await createAp(kms, "tampered");
    kms.tamper("UPDATE access_points SET name = 'renamed' WHERE id = ?", ap.record.id);
    const body = encodeMessage("GenerateRandomRequest", { Length: 4 });
    const ca = await kms.instance.caCertPem();
    const config = configOf(kms, ap);
    const tampered = await rawRequest(
      kms.server.endpoint,
      ca,
      signedHeaders(config, "GenerateRandom", body),
      body,
    );
    const unknownId = "KAAP.00000000-0000-4000-8000-000000000000";
    const unknown = await rawRequest(
      kms.server.endpoint,
      ca,
      signedHeaders(config, "GenerateRandom", body, { "x-kms-acccesskeyid": unknownId }),
      body,
    );
    const shape = (r: typeof tampered) => {
      const e = decodeMessage("Error", r.body);
      return { status: r.status, code: e.ErrorCode, message: e.ErrorMessage, statusCode: e.StatusCode };
    };
    assert.equal(tampered.status, 401);
    assert.deepEqual(shape(tampered), shape(unknown));
  });

  it("a row copied from another instance (another master key) is refused", async (t) => {
    const home = await start(t);
    const other = await start(t);
    const foreign = await createAp(other, "foreign");
    const row = new Database(join(other.data, "kms.db"))
      .prepare("SELECT * FROM access_points WHERE id = ?")
      .get(foreign.record.id) as Record<string, unknown>;
    const columns = Object.keys(row);
    home.tamper(
      `INSERT INTO access_points (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
      ...columns.map((c) => row[c]),
    );
    const body = encodeMessage("GenerateRandomRequest", { Length: 4 });
    const headers = signedHeaders(configOf(home, foreign), "GenerateRandom", body);
    const reply = await rawRequest(home.server.endpoint, await home.instance.caCertPem(), headers, body);
    assert.equal(reply.code, "InvalidAccessKeyId");
    await reported(home, foreign.record.id);
  });

  it("admin listings leave out an edited row, and say so", async (t) => {
    const kms = await start(t);
    const good = await createAp(kms, "good");
    const bad = await createAp(kms, "bad");
    kms.tamper("UPDATE access_points SET state = 'Active', revoked_at = NULL WHERE id = ?", bad.record.id);
    kms.tamper(
      "UPDATE access_points SET policy = ? WHERE id = ?",
      '{"keys":["*"],"operations":["*"],"sourceIps":[],"secrets":["*"]}',
      bad.record.id,
    );
    const ids = (await accessPointTable(kms.instance)).map((r) => r[0]);
    assert.deepEqual(ids, [good.record.id]);
    await reported(kms, bad.record.id);
    // Revoking it overwrites it with a sealed Revoked row (access_point_attacks.test.ts).
    assert.equal(await adminRevokeAccessPoint(kms.instance, bad.record.id), bad.record.id);
  });
});

function configOf(kms: Running, ap: { clientKeyFile: string; passwordFile: string }) {
  return {
    endpoint: kms.server.endpoint,
    clientKeyFile: ap.clientKeyFile,
    passwordFile: ap.passwordFile,
    caFilePath: kms.instance.caPath,
  };
}

describe("rows written before access point MACs", () => {
  const seals = async (kms: Running) =>
    (await kms.instance.audit.entries()).filter((e) => e.operation === SEAL_OPERATION);

  it("are sealed once on upgrade, audited with their count, and then work", async (t) => {
    const first = await start(t);
    const ap = await createAp(first, "legacy");
    const revoked = await createAp(first, "legacy-revoked");
    await adminRevokeAccessPoint(first.instance, revoked.record.id);
    await first.stop();
    await makePreMacStore(first.data, PASSPHRASE);

    const kms = await start(t, first.data);
    assert.equal((await kms.client(ap).generateRandom(4)).Random.length, 4);
    await refused(kms.client(revoked).generateRandom(4), "Forbidden.AccessPointRevoked");
    const [seal, ...more] = await seals(kms);
    assert.equal(more.length, 0);
    assert.match(seal?.detail ?? "", /^2 access point rows from before access point MACs sealed/);
    assert.deepEqual(await kms.instance.audit.verify(), {
      ok: true,
      count: (await kms.instance.audit.entries()).length,
    });
    assert.deepEqual(
      (await accessPointTable(kms.instance)).map((r) => r[0]),
      [ap.record.id, revoked.record.id],
    );

    // After the upgrade a missing MAC is no way back in: refused, and not sealed again on reopen.
    kms.tamper("UPDATE access_points SET mac = NULL, state = 'Active' WHERE id = ?", revoked.record.id);
    await refused(kms.client(revoked).generateRandom(4), "InvalidAccessKeyId");
    await kms.stop();
    const again = await start(t, first.data);
    await refused(again.client(revoked).generateRandom(4), "InvalidAccessKeyId");
    assert.equal((await seals(again)).length, 1, "no second seal");
    assert.equal((await again.client(ap).generateRandom(4)).Random.length, 4);
  });

  it("an old audit key record put back does not get edited rows sealed", async (t) => {
    const first = await start(t);
    const ap = await createAp(first, "app");
    await first.stop();
    const oldKey = await makePreMacStore(first.data, PASSPHRASE);
    const upgraded = await start(t, first.data);
    assert.equal((await seals(upgraded)).length, 1);
    await upgraded.stop();

    // The attacker restores the pre-upgrade key record, edits the row and removes its MAC.
    tamper(first.data, "UPDATE meta SET value = ? WHERE name = 'audit.key'", oldKey);
    tamper(
      first.data,
      "UPDATE access_points SET mac = NULL, policy = ? WHERE id = ?",
      '{"keys":["*"],"operations":["*"],"sourceIps":[],"secrets":["*"]}',
      ap.record.id,
    );
    const kms = await start(t, first.data);
    await refused(kms.client(ap).generateRandom(4), "InvalidAccessKeyId");
    const [, refusal] = await seals(kms);
    assert.equal(refusal?.outcome, "Refused");
    assert.match(refusal?.detail ?? "", /1 access point rows without a MAC left unsealed/);
  });
});
