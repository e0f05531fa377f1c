/**
 * Secrets on PostgreSQL: two KMS nodes (instances and servers in this process) on one real
 * PostgreSQL database. A secret and an access point made through node A are read through node
 * B; a new value or a deletion on A reaches B's very next GetSecretValue (the memoised rows
 * follow the store's change counter, not a time-to-live).
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
  adminDeleteSecret,
  adminPutSecretValue,
} from "../../src/kms/admin.ts";
import { KmsClient } from "../../src/kms/client.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { KmsServer } from "../../src/kms/server.ts";
import { PostgresServer } from "../helpers/postgres.ts";
import { refused } from "./kms_fixture.ts";

const PASSPHRASE = "secrets on postgres";
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-secrets-pg-"));
let pg: PostgresServer;
before(async () => {
  pg = await PostgresServer.start();
});
after(async () => {
  await pg?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("secrets on PostgreSQL", () => {
  it("node B serves what node A stores, and sees A's next change at once", async (t) => {
    const store = await pg.createDatabase();
    const a = await KmsInstance.open({
      store,
      dataDir: join(root, "a"),
      create: true,
      passphrase: PASSPHRASE,
    });
    t.after(() => a.close());
    const b = await KmsInstance.open({ store, dataDir: join(root, "b"), passphrase: PASSPHRASE });
    t.after(() => b.close());
    const server = await KmsServer.start({ instance: b });
    t.after(() => server.close());

    const key = await adminCreateKey(a, "AES_256", "ENCRYPT/DECRYPT");
    await adminCreateSecret(a, { name: "db-password", value: Buffer.from("pg pw 1"), keyId: key.id });
    await adminCreateSecret(a, { name: "db-token", value: Buffer.from("token"), versionId: "t1" });
    const ap = await adminCreateAccessPoint(a, { name: "app", secrets: "db-*", outDir: join(root, "aps") });
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
