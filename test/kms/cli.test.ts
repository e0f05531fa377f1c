/**
 * The `hsmkit kms` admin commands refuse bad input with one clear line and a non-zero exit,
 * never a stack trace; key and access point life cycles work from the command line.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { KmsInstance } from "../../src/kms/instance.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { type RunResult, runCommand } from "../helpers/process.ts";

const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-cli-"));
const data = join(root, "data");
const env = { ...process.env, HSMKIT_KMS_PASSPHRASE: "cli passphrase" };
after(() => rmSync(root, { recursive: true, force: true }));

before(async () => {
  const instance = await KmsInstance.open({ dataDir: data, create: true, passphrase: "cli passphrase" });
  await instance.close();
});

function kms(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runCommand(HSMKIT_BIN, ["kms", ...args], { env: { ...env, ...extraEnv }, timeoutMs: 60_000 });
}

describe("hsmkit kms admin commands", () => {
  it("refuse bad input with one line", async () => {
    const d = ["--data", data];
    const cases: [string[], RegExp, NodeJS.ProcessEnv?][] = [
      [["key", "list", "--data", join(root, "none")], /is not a KMS data directory/],
      [["key", "list", ...d], /wrong master key for this KMS/, { HSMKIT_KMS_PASSPHRASE: "not it" }],
      [
        ["key", "create", ...d, "--spec", "RSA_1024", "--usage", "SIGN/VERIFY"],
        /unknown key spec "RSA_1024"/,
      ],
      [
        ["key", "create", ...d, "--spec", "EC_P256", "--usage", "ENCRYPT/DECRYPT"],
        /cannot be used for ENCRYPT\/DECRYPT/,
      ],
      [["key", "enable", ...d, "--key", "key-000"], /no key "key-000"/],
      [["ap", "create", ...d, "--name", "a", "--keys", "key-*;drop", "--out", root], /bad key pattern/],
      [
        ["ap", "create", ...d, "--name", "a", "--keys", "*", "--operations", "Sign,Nope", "--out", root],
        /unknown operation "Nope"/,
      ],
      [
        ["ap", "create", ...d, "--name", "a", "--keys", "*", "--source-ip", "10.0.0.0/33", "--out", root],
        /bad prefix length/,
      ],
      [["ap", "revoke", ...d, "--ap", "nope"], /no access point "nope"/],
      [["serve", ...d, "--listen", "localhost"], /--listen wants HOST:PORT/],
    ];
    for (const [args, pattern, extra] of cases) {
      const r = await kms(args, extra);
      assert.equal(r.exitCode, 1, `${args.join(" ")}\n${r.output}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
  });

  it("walks a key and an access point through their life cycles", async () => {
    const d = ["--data", data];
    const created = await kms([
      "key",
      "create",
      ...d,
      "--spec",
      "EC_P384",
      "--usage",
      "SIGN/VERIFY",
      "--alias",
      "alias/cli",
    ]);
    assert.equal(created.exitCode, 0, created.output);
    const keyId = created.stdout.trim();
    assert.match(keyId, /^key-[0-9a-f]{24}$/);
    const steps: [string[], RegExp][] = [
      [["key", "rotate", ...d, "--key", "alias/cli"], new RegExp(`${keyId} v2`)],
      [
        ["key", "schedule-deletion", ...d, "--key", keyId, "--days", "7"],
        /PendingDeletion \(deletion after /,
      ],
      [["key", "cancel-deletion", ...d, "--key", keyId], /Disabled/],
      [["key", "enable", ...d, "--key", keyId], /Enabled/],
      [["key", "public", ...d, "--key", "alias/cli"], /BEGIN PUBLIC KEY/],
      [["key", "list", ...d], new RegExp(`${keyId}\\s+EC_P384\\s+SIGN/VERIFY\\s+Enabled\\s+v2\\s+alias/cli`)],
      [
        [
          "ap",
          "create",
          ...d,
          "--name",
          "cli-app",
          "--keys",
          "alias/cli",
          "--operations",
          "Sign",
          "--out",
          root,
        ],
        /KAAP\./,
      ],
      [["ap", "revoke", ...d, "--ap", "cli-app"], /revoked/],
      [["ap", "list", ...d], /cli-app\s+Revoked\s+alias\/cli\s+Sign\s+any/],
      // 7 of the steps above, and the 7 refusals of the test before (key create twice, key
      // enable, ap create three times, ap revoke), audited as Refused.
      [["audit", "verify", ...d], /^audit OK: 14 entries$/m],
    ];
    for (const [args, pattern] of steps) {
      const r = await kms(args);
      assert.equal(r.exitCode, 0, `${args.join(" ")}\n${r.output}`);
      assert.match(r.stdout, pattern, args.join(" "));
    }
  });
});

describe("--store with a password in the URL", () => {
  it("warns that the process list shows it, without printing it; the same URL from the environment does not", async () => {
    // Nothing listens on port 1: the command fails to connect after the warning.
    const url = "postgres://kms:s3cret-pw@127.0.0.1:1/kms?connect_timeout=2";
    const flagged = await kms(["key", "list", "--store", url]);
    assert.notEqual(flagged.exitCode, 0, flagged.output);
    assert.match(flagged.stderr, /warning: the --store URL holds a password.*HSMKIT_KMS_STORE/);
    assert.doesNotMatch(flagged.output, /s3cret-pw/);
    const fromEnv = await kms(["key", "list"], { HSMKIT_KMS_STORE: url });
    assert.notEqual(fromEnv.exitCode, 0, fromEnv.output);
    assert.doesNotMatch(fromEnv.stderr, /warning/);
    assert.doesNotMatch(fromEnv.output, /s3cret-pw/);
  });
});
