/**
 * `hsmkit kms secret ...` and `kms ap create --secrets` from the command line, then the
 * secret read over the wire by an access point the CLI made: the path an application takes
 * to its database password. Bad input gets one line and exit 1.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KmsClient } from "../../src/kms/client.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { KmsServer } from "../../src/kms/server.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { type RunResult, runCommand } from "../helpers/process.ts";
import { refused } from "./kms_fixture.ts";

const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-secret-cli-"));
const data = join(root, "data");
const d = ["--data", data];
const env = { ...process.env, HSMKIT_KMS_PASSPHRASE: "secret cli passphrase" };
after(() => rmSync(root, { recursive: true, force: true }));

before(async () => {
  const instance = await KmsInstance.open({
    dataDir: data,
    create: true,
    passphrase: "secret cli passphrase",
  });
  await instance.close();
});

function kms(args: string[]): Promise<RunResult> {
  return runCommand(HSMKIT_BIN, ["kms", ...args], { env, timeoutMs: 60_000 });
}

async function ok(args: string[]): Promise<string> {
  const r = await kms(args);
  assert.equal(r.exitCode, 0, `${args.join(" ")}\n${r.output}`);
  return r.stdout;
}

function valueFile(name: string, content: string | Buffer): string {
  const file = join(root, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

describe("hsmkit kms secret", () => {
  it("creates, updates, lists, reads and deletes; an access point made with --secrets reads over the wire", async () => {
    const key = (await ok(["key", "create", ...d, "--spec", "AES_256", "--usage", "ENCRYPT/DECRYPT"])).trim();
    const created = await ok([
      "secret",
      "create",
      ...d,
      "--name",
      "db-password",
      "--value-file",
      valueFile("v1", "first pw\n"),
      "--key",
      key,
      "--version-id",
      "v1",
    ]);
    assert.equal(created.trim(), "v1");
    assert.equal(await ok(["secret", "get", ...d, "--name", "db-password"]), "first pw");
    const second = (
      await ok([
        "secret",
        "put-value",
        ...d,
        "--name",
        "db-password",
        "--value-file",
        valueFile("v2", "second pw"),
      ])
    ).trim();
    assert.match(second, /^[0-9a-f-]{36}$/);
    assert.equal(await ok(["secret", "get", ...d, "--name", "db-password"]), "second pw");
    assert.equal(
      await ok(["secret", "get", ...d, "--name", "db-password", "--version-stage", "ACSPrevious"]),
      "first pw",
    );
    assert.match(
      await ok(["secret", "list", ...d]),
      new RegExp(`db-password\\s+text\\s+${key}\\s+2\\s+${second}`),
    );
    await ok([
      "secret",
      "create",
      ...d,
      "--name",
      "blob",
      "--binary",
      "--value-file",
      valueFile("bin", Buffer.from([1, 0, 10])),
    ]);
    assert.deepEqual(
      Buffer.from((await kms(["secret", "get", ...d, "--name", "blob"])).stdout, "latin1"),
      Buffer.from([1, 0, 10]),
    );

    const keysOnly = join(root, "keys-only");
    const reader = join(root, "reader");
    await ok(["ap", "create", ...d, "--name", "keys-only", "--keys", "key-*", "--out", keysOnly]);
    await ok(["ap", "create", ...d, "--name", "reader", "--secrets", "db-*", "--out", reader]);
    assert.match(await ok(["ap", "list", ...d]), /reader\s+Active\s+-\s+\*\s+any\s+db-\*/);
    const instance = await KmsInstance.open({ dataDir: data, passphrase: "secret cli passphrase" });
    const server = await KmsServer.start({ instance });
    const clientFor = (dir: string) => {
      const file = readdirSync(dir).find((f) => f.endsWith(".json")) as string;
      return new KmsClient({
        endpoint: server.endpoint,
        clientKeyFile: join(dir, file),
        passwordFile: join(dir, file.replace(/\.json$/, "_Password.txt")),
        caFilePath: instance.caPath,
      });
    };
    const app = clientFor(reader);
    const other = clientFor(keysOnly);
    try {
      assert.equal((await app.getSecretValue({ secretName: "db-password" })).SecretData, "second pw");
      await refused(other.getSecretValue({ secretName: "db-password" }), "Forbidden.NoPermission");
      await refused(app.getSecretValue({ secretName: "blob" }), "Forbidden.NoPermission");
      assert.match(await ok(["secret", "delete", ...d, "--name", "db-password"]), /db-password deleted/);
      await refused(app.getSecretValue({ secretName: "db-password" }), "Forbidden.ResourceNotFound");
    } finally {
      app.close();
      other.close();
      await server.close();
      await instance.close();
    }
    assert.match(await ok(["audit", "verify", ...d]), /^audit OK/m);
  });

  it("refuses bad input with one line", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["secret", "create", ...d, "--name", "bad name", "--value-file", valueFile("x", "x")],
        /a secret name is/,
      ],
      [
        ["secret", "create", ...d, "--name", "dup", "--value-file", join(root, "missing")],
        /cannot read secret value file .*no such file/,
      ],
      [["secret", "create", ...d, "--name", "dup", "--value-file", valueFile("empty", "\n")], /is empty/],
      [
        ["secret", "create", ...d, "--name", "dup", "--value-file", valueFile("big", "x".repeat(70_000))],
        /larger than 65536 bytes/,
      ],
      [
        ["secret", "create", ...d, "--name", "dup", "--value-file", valueFile("y", "y"), "--key", "key-000"],
        /no key "key-000"/,
      ],
      [
        ["secret", "put-value", ...d, "--name", "none", "--value-file", valueFile("z", "z")],
        /no secret "none"/,
      ],
      [["secret", "get", ...d, "--name", "none"], /no secret "none"/],
      [["secret", "delete", ...d, "--name", "none"], /no secret "none"/],
      [
        ["ap", "create", ...d, "--name", "nothing", "--out", root],
        /needs --keys PATTERNS, --secrets PATTERNS or both/,
      ],
      [
        ["ap", "create", ...d, "--name", "bad", "--secrets", "db;drop", "--out", root],
        /bad secret name pattern/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const r = await kms(args);
      assert.equal(r.exitCode, 1, `${args.join(" ")}\n${r.output}`);
      assert.match(r.stderr, pattern, args.join(" "));
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    await ok(["secret", "create", ...d, "--name", "dup", "--value-file", valueFile("w", "w")]);
    const again = await kms(["secret", "create", ...d, "--name", "dup", "--value-file", valueFile("w", "w")]);
    assert.equal(again.exitCode, 1);
    assert.match(again.stderr, /a secret named "dup" exists/);
  });
});
