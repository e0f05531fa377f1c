/**
 * Secrets and GetSecretValue against a real server: versions and stages, values sealed at
 * rest (the database never holds a plaintext, a value moved onto another secret's row does
 * not open), the access point policy (key patterns grant no secret; the refusal does not tell
 * which names exist), the SDK's codes, the audit log, and the message on the wire.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  adminCreateKey,
  adminCreateSecret,
  adminDeleteSecret,
  adminPutSecretValue,
  adminRotateKey,
  adminSetKeyState,
} from "../../src/kms/admin.ts";
import { decodeMessage } from "../../src/kms/proto.ts";
import {
  type ApClient,
  type KmsFixture,
  rawRequest,
  refused,
  signedHeaders,
  startKms,
} from "./kms_fixture.ts";

let kms: KmsFixture;
let aesKey: string;
let reader: ApClient;

const PASSWORD = "s3cret-db-password-0f9d1c";

before(async () => {
  kms = await startKms();
  aesKey = (await adminCreateKey(kms.instance, "AES_256", "ENCRYPT/DECRYPT")).id;
  await adminCreateSecret(kms.instance, {
    name: "db-password",
    value: Buffer.from(PASSWORD),
    versionId: "v1",
  });
  reader = await kms.client("", { secrets: "db-*,app/*" });
});
after(() => kms.close());

describe("GetSecretValue", () => {
  it("returns the current value with its version and stages", async () => {
    const got = await reader.kms.getSecretValue({ secretName: "db-password" });
    assert.equal(got.SecretName, "db-password");
    assert.equal(got.SecretData, PASSWORD);
    assert.equal(got.SecretDataType, "text");
    assert.equal(got.SecretType, "Generic");
    assert.deepEqual(got.VersionStages, ["ACSCurrent"]);
    assert.equal(got.VersionId, "v1");
    assert.ok(!Number.isNaN(Date.parse(got.CreateTime)));
  });

  it("moves ACSCurrent and ACSPrevious on put-value; every version stays readable by id", async () => {
    await adminCreateSecret(kms.instance, { name: "app/token", value: Buffer.from("one"), versionId: "1" });
    await adminPutSecretValue(kms.instance, "app/token", Buffer.from("two"), "2");
    await adminPutSecretValue(kms.instance, "app/token", Buffer.from("three"), "3");
    const current = await reader.kms.getSecretValue({ secretName: "app/token" });
    assert.equal(current.SecretData, "three");
    assert.deepEqual(current.VersionStages, ["ACSCurrent"]);
    const previous = await reader.kms.getSecretValue({
      secretName: "app/token",
      versionStage: "ACSPrevious",
    });
    assert.equal(previous.SecretData, "two");
    assert.equal(previous.VersionId, "2");
    const first = await reader.kms.getSecretValue({ secretName: "app/token", versionId: "1" });
    assert.equal(first.SecretData, "one");
    assert.deepEqual(first.VersionStages, []);
    await refused(
      reader.kms.getSecretValue({ secretName: "app/token", versionId: "9" }),
      "Forbidden.ResourceNotFound",
    );
    await refused(
      reader.kms.getSecretValue({ secretName: "app/token", versionId: "1", versionStage: "ACSCurrent" }),
      "Forbidden.ResourceNotFound",
    );
    await assert.rejects(
      adminPutSecretValue(kms.instance, "app/token", Buffer.from("again"), "2"),
      /already has a version "2"/,
    );
  });

  it("seals under a named AES key: readable after rotation, refused while the key is disabled", async () => {
    await adminCreateSecret(kms.instance, {
      name: "db-replica",
      value: Buffer.from("replica pw"),
      keyId: aesKey,
    });
    await adminRotateKey(kms.instance, aesKey);
    assert.equal((await reader.kms.getSecretValue({ secretName: "db-replica" })).SecretData, "replica pw");
    await adminPutSecretValue(kms.instance, "db-replica", Buffer.from("replica pw 2"));
    assert.equal((await reader.kms.getSecretValue({ secretName: "db-replica" })).SecretData, "replica pw 2");
    await adminSetKeyState(kms.instance, aesKey, "disable");
    try {
      await refused(reader.kms.getSecretValue({ secretName: "db-replica" }), "IncorrectKeyState");
    } finally {
      await adminSetKeyState(kms.instance, aesKey, "enable");
    }
    const signKey = (await adminCreateKey(kms.instance, "EC_P256", "SIGN/VERIFY")).id;
    await assert.rejects(
      adminCreateSecret(kms.instance, { name: "db-x", value: Buffer.from("x"), keyId: signKey }),
      /secrets need an AES key/,
    );
  });

  it("returns binary values base64", async () => {
    const bytes = Buffer.from([0, 255, 1, 254, 10, 13]);
    await adminCreateSecret(kms.instance, { name: "db-cert", value: bytes, binary: true });
    const got = await reader.kms.getSecretValue({ secretName: "db-cert" });
    assert.equal(got.SecretDataType, "binary");
    assert.deepEqual(Buffer.from(got.SecretData, "base64"), bytes);
    await assert.rejects(
      adminCreateSecret(kms.instance, { name: "db-bad", value: Buffer.from([0xff, 0xfe]) }),
      /not UTF-8 text/,
    );
  });

  it("grants secrets only through secret patterns; a refusal does not say whether the name exists", async () => {
    const keysOnly = await kms.client("*");
    await refused(keysOnly.kms.getSecretValue({ secretName: "db-password" }), "Forbidden.NoPermission");
    await refused(keysOnly.kms.getSecretValue({ secretName: "no-such-secret" }), "Forbidden.NoPermission");
    await refused(reader.kms.getSecretValue({ secretName: "other-secret" }), "Forbidden.NoPermission");
    await refused(reader.kms.getSecretValue({ secretName: "db-missing" }), "Forbidden.ResourceNotFound");
    const noOperation = await kms.client("", { secrets: "*", operations: "Sign" });
    await refused(noOperation.kms.getSecretValue({ secretName: "db-password" }), "Forbidden.NoPermission");
    await refused(reader.kms.getSecretValue({ secretName: "" }), "MissingParameter");
    await refused(reader.kms.getSecretValue({ secretName: `db-${"x".repeat(300)}` }), "InvalidParam");
    await refused(
      reader.kms.getSecretValue({ secretName: "db-password", versionId: "v".repeat(65) }),
      "InvalidParam",
    );
    // Secret patterns grant no key.
    await refused(
      reader.kms.generateRandom(8).then(() => reader.kms.getPublicKey(aesKey)),
      "Forbidden.NoPermission",
    );
  });

  it("keeps no plaintext in the database, and a value moved onto another secret does not open", async () => {
    const dir = join(kms.dir, "data");
    for (const file of readdirSync(dir).filter((f) => f.startsWith("kms.db"))) {
      const bytes = readFileSync(join(dir, file));
      assert.equal(bytes.includes(Buffer.from(PASSWORD)), false, file);
      assert.equal(bytes.includes(Buffer.from("replica pw")), false, file);
    }
    await adminCreateSecret(kms.instance, { name: "db-moved", value: Buffer.from("moved"), versionId: "v1" });
    // An attacker with the database file (not the master key) moves one secret's value onto another.
    await kms.instance.store.driver.exec(
      `UPDATE secret_versions SET iv = (SELECT iv FROM secret_versions WHERE secret_name = 'db-password'),
       sealed = (SELECT sealed FROM secret_versions WHERE secret_name = 'db-password') WHERE secret_name = 'db-moved'`,
    );
    await refused(reader.kms.getSecretValue({ secretName: "db-moved" }), "InternalFailure");
    await adminDeleteSecret(kms.instance, "db-moved");
    await refused(reader.kms.getSecretValue({ secretName: "db-moved" }), "Forbidden.ResourceNotFound");
  });

  it("audits reads with the secret and version, never the value", async () => {
    const got = await reader.kms.getSecretValue({ secretName: "db-password" });
    const entry = (await kms.instance.audit.entries(5)).find((e) => e.requestId === got.RequestId);
    assert.equal(entry?.operation, "GetSecretValue");
    assert.equal(entry?.keyId, "secret:db-password");
    assert.equal(entry?.detail, "v1 ACSCurrent");
    assert.equal(entry?.actor, reader.id);
    for (const e of await kms.instance.audit.entries(100)) assert.ok(!JSON.stringify(e).includes(PASSWORD));
  });

  it("speaks the wire format: SecretName=1, VersionStage=2 in; SecretData=3, VersionStages=5 out", async () => {
    const name = Buffer.from("db-password");
    const stage = Buffer.from("ACSCurrent");
    const body = Buffer.concat([
      Buffer.from([0x0a, name.length]),
      name,
      Buffer.from([0x12, stage.length]),
      stage,
    ]);
    const reply = await rawRequest(
      kms.server.endpoint,
      await kms.instance.caCertPem(),
      signedHeaders(reader.config, "GetSecretValue", body),
      body,
    );
    assert.equal(reply.status, 200);
    const data = Buffer.from(PASSWORD);
    assert.ok(reply.body.includes(Buffer.concat([Buffer.from([0x1a, data.length]), data])));
    assert.ok(reply.body.includes(Buffer.concat([Buffer.from([0x2a, stage.length]), stage])));
    assert.equal(decodeMessage("GetSecretValueResponse", reply.body).SecretName, "db-password");
  });
});
