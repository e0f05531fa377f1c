/**
 * The master key inside a SoftHSM2 token: key material is wrapped and unwrapped by the token
 * (CKM_AES_GCM), the master key is a non-extractable token object, and the instance refuses
 * to open without the token or with the wrong PIN.
 */
import assert from "node:assert/strict";
import { createHash, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pkcs11js from "pkcs11js";
import { loadModule, trimField } from "../../src/keys/pkcs11_module.ts";
import { adminCreateKey } from "../../src/kms/admin.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { signDigest } from "../../src/kms/key_ops.ts";
import { signAlgorithm } from "../../src/kms/specs.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { runCommand } from "../helpers/process.ts";
import { createToken, softHsm, type TestToken } from "../helpers/softhsm.ts";
import { tamperedCopy } from "./kms_process.ts";

softHsm();
let token: TestToken;
let masterUri: string;
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-p11-"));
after(() => rmSync(root, { recursive: true, force: true }));

before(async () => {
  token = await createToken();
  masterUri = token.uri("kms-master").replace(";type=private", "");
});

describe("PKCS#11 master key", () => {
  it("wraps key material inside the token and opens it again after a restart", async () => {
    const data = join(root, "p11");
    let instance = await KmsInstance.open({ dataDir: data, create: true, pkcs11: masterUri });
    assert.equal(instance.master.kind, "pkcs11");
    assert.ok(!instance.master.description.includes(token.pin), "the PIN is not printed");
    const key = await adminCreateKey(instance, "RSA_2048", "SIGN/VERIFY");
    const publicPem = instance.keys.publicKeyPem(await instance.keys.primaryVersion(key.id));
    await instance.close();

    instance = await KmsInstance.open({ dataDir: data, pkcs11: masterUri });
    try {
      const loaded = await instance.keys.load(key, await instance.keys.primaryVersion(key.id));
      const alg = signAlgorithm("RSA_PKCS1_SHA_256");
      assert.ok(alg);
      const digest = createHash("sha256").update("token-wrapped").digest();
      const sig = await signDigest(loaded, alg, digest);
      assert.ok(verify("sha256", Buffer.from("token-wrapped"), publicPem, sig));
      assert.equal((await instance.audit.verify()).ok, true);
    } finally {
      await instance.close();
    }

    // The database holds no private key bytes; the wrapping key is a non-extractable token object.
    const db = readFileSync(join(data, "kms.db"));
    assert.equal(db.indexOf(Buffer.from("BEGIN PRIVATE KEY")), -1);
    const { lib } = loadModule(token.module);
    const slot = lib.C_GetSlotList(true).find((s) => trimField(lib.C_GetTokenInfo(s).label) === token.label);
    assert.ok(slot);
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    try {
      lib.C_Login(session, pkcs11js.CKU_USER, token.pin);
      lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: "kms-master" }]);
      const [handle] = lib.C_FindObjects(session, 2);
      lib.C_FindObjectsFinal(session);
      assert.ok(handle, "the master key is a token object");
      const attrs = lib.C_GetAttributeValue(session, handle, [
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_SENSITIVE },
      ]);
      assert.deepEqual(
        attrs.map((a) => (a.value as Buffer)[0]),
        [0, 1],
      );
    } finally {
      lib.C_CloseSession(session);
    }
  });

  it("refuses to open without the token, with another source, or with a wrong PIN", async () => {
    const data = join(root, "p11-refusals");
    const first = await KmsInstance.open({ dataDir: data, create: true, pkcs11: masterUri });
    await first.close();
    await assert.rejects(
      KmsInstance.open({ dataDir: data, passphrase: "x" }),
      /master key is in a PKCS#11 token/,
    );
    await assert.rejects(KmsInstance.open({ dataDir: data }), /master key is in a PKCS#11 token/);
    const other = await createToken();
    await assert.rejects(
      KmsInstance.open({ dataDir: data, pkcs11: other.uri("kms-master").replace(";type=private", "") }),
      /wrong master key for this KMS/,
    );
    await assert.rejects(
      KmsInstance.open({
        dataDir: data,
        pkcs11: masterUri.replace(`pin-value=${token.pin}`, "pin-value=000000"),
      }),
      /PIN/,
    );
  });
});

describe("PKCS#11 master key from the command line", () => {
  it("kms init / key create / key list with --master-key", async () => {
    const data = join(root, "p11-cli");
    const run = (args: string[]) =>
      runCommand(HSMKIT_BIN, ["kms", ...args, "--data", data, "--master-key", masterUri]);
    const init = await run(["init"]);
    assert.equal(init.exitCode, 0, init.output);
    assert.ok(!init.output.includes(token.pin), "the PIN is never printed");
    const created = await run(["key", "create", "--spec", "EC_P256", "--usage", "SIGN/VERIFY"]);
    assert.equal(created.exitCode, 0, created.output);
    const list = await run(["key", "list"]);
    assert.match(list.stdout, new RegExp(`${created.stdout.trim()}\\s+EC_P256`));
    const without = await runCommand(HSMKIT_BIN, ["kms", "key", "list", "--data", data]);
    assert.equal(without.exitCode, 1);
    assert.match(without.stderr, /master key is in a PKCS#11 token .*pass --master-key/);
  });

  it("a used instance whose log, head and master record were deleted is refused, not restarted", async () => {
    const data = join(root, "p11-wiped");
    const instance = await KmsInstance.open({ dataDir: data, create: true, pkcs11: masterUri });
    await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT");
    await instance.close();
    const copy = join(root, "p11-wiped-copy");
    tamperedCopy(data, copy, (db) =>
      db.exec("DELETE FROM audit; DELETE FROM meta WHERE name IN ('audit.head', 'master')"),
    );
    await assert.rejects(
      KmsInstance.open({ dataDir: copy, pkcs11: masterUri }),
      /holds keys or audit entries but no master key record: the database was tampered with/,
    );
  });
});
