/**
 * Reference routing: registered schemes reach their backend, unknown URI schemes are
 * refused instead of being read as file names, built-in schemes cannot be taken over.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, verify } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { generateKey, openKey, redactKeyReference, registerKeyBackend } from "../../src/keys/index.ts";
import { assertKeyError } from "./support.ts";

test("a registered scheme receives its references, for open and generate", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "hsmkit-backends-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const file = join(dir, "plugin.pem");
  await writeFile(file, privateKey.export({ type: "pkcs8", format: "pem" }));
  const seen: string[] = [];
  registerKeyBackend("testkms://", {
    open: async (ref) => {
      seen.push(ref);
      return openKey(file);
    },
  });
  const key = await openKey("TestKMS://host:1/key-9");
  assert.deepEqual(seen, ["TestKMS://host:1/key-9"]);
  const sig = await key.sign("ecdsa_secp256r1_sha256", Buffer.from("m"));
  assert.ok(verify("sha256", Buffer.from("m"), privateKey, sig));
  await key.close();
  await assertKeyError(generateKey("testkms://host:1/new", "ec-p256"), "unsupported", /cannot generate/);
});

test("unknown URI schemes are refused, built-in schemes cannot be replaced", async () => {
  await assertKeyError(openKey("kms://127.0.0.1:1/key-1"), "bad-reference", /no key backend for 'kms:'/);
  await assertKeyError(generateKey("vault://x/y", "ec-p256"), "bad-reference", /no key backend for 'vault:'/);
  assert.throws(() => registerKeyBackend("pkcs11", { open: openKey }), /built in/);
  assert.throws(() => registerKeyBackend("FILE:", { open: openKey }), /built in/);
  assert.throws(() => registerKeyBackend("no spaces", { open: openKey }), /not a URI scheme/);
});

test("redactKeyReference masks inline secrets", () => {
  assert.equal(
    redactKeyReference("pkcs11:token=a;object=b?module-path=/m.so&pin-value=1234"),
    "pkcs11:token=a;object=b?module-path=/m.so&pin-value=***",
  );
  assert.equal(
    redactKeyReference("kms://h:1/k?password-value=pw&ca=/c"),
    "kms://h:1/k?password-value=***&ca=/c",
  );
});
