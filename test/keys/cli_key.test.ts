/**
 * `hsmkit key generate` / `hsmkit key public` as a user runs them: bin/hsmkit in a child
 * process, against files and a SoftHSM2 token.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { openKey, publicKeyPem } from "../../src/keys/index.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { createToken, softHsm, type TestToken } from "../helpers/softhsm.ts";
import { sh } from "./support.ts";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function hsmkit(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(HSMKIT_BIN, args, { env: softHsm().env, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A failure as the CLI contract wants it: non-zero, nothing on stdout, one line, no stack trace. */
function assertOneLineFailure(r: Result, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `exit code for: ${r.stderr}`);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |Error:|node:internal/);
  assert.match(lines[0] ?? "", pattern);
}

let dir: string;
let token: TestToken;

before(async () => {
  softHsm();
  dir = await mkdtemp(join(tmpdir(), "hsmkit-clikey-"));
  token = await createToken();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("hsmkit key generate / public", () => {
  test("file key: generate prints the public key that key public and openssl print", async () => {
    const file = join(dir, "client.key");
    const gen = await hsmkit("key", "generate", "--key", file, "--type", "ec-p256");
    assert.equal(gen.code, 0, gen.stderr);
    assert.match(gen.stdout, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const pub = await hsmkit("key", "public", "--key", file);
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal(pub.stdout, gen.stdout);
    assert.equal(await sh("openssl", ["pkey", "-in", file, "-pubout"]), gen.stdout);
  });

  test("encrypted file key via file:...?passphrase-file=", async () => {
    const pass = join(dir, "pass");
    await writeFile(pass, "s3cret\n", { mode: 0o600 });
    const ref = `file:${join(dir, "enc.key")}?passphrase-file=${pass}`;
    const gen = await hsmkit("key", "generate", "--key", ref, "--type", "rsa2048");
    assert.equal(gen.code, 0, gen.stderr);
    const pub = await hsmkit("key", "public", "--key", ref);
    assert.equal(pub.stdout, gen.stdout);
    assertOneLineFailure(await hsmkit("key", "public", "--key", join(dir, "enc.key")), /encrypted/);
  });

  test("token key: generated in one process, public key read in another and in this one", async () => {
    for (const [object, type] of [
      ["cli-rsa", "rsa2048"],
      ["cli-ec", "ec-p384"],
    ] as const) {
      const ref = token.uri(object);
      const gen = await hsmkit("key", "generate", "--key", ref, "--type", type);
      assert.equal(gen.code, 0, gen.stderr);
      assert.match(gen.stdout, /^-----BEGIN PUBLIC KEY-----\n/);
      const pub = await hsmkit("key", "public", "--key", ref);
      assert.equal(pub.code, 0, pub.stderr);
      assert.equal(pub.stdout, gen.stdout);
      const handle = await openKey(ref);
      assert.equal(publicKeyPem(handle), gen.stdout);
      await handle.close();
    }
  });

  test("a PIN or passphrase file readable by group or others still works, with one warning line", async () => {
    const ref = (pinPath: string) =>
      token.uri("cli-ec").replace(/&pin-value=[^&]*/, `&pin-source=${pinPath}`);
    const open = join(dir, "pin-0644");
    await writeFile(open, `${token.pin}\n`, { mode: 0o644 });
    await chmod(open, 0o644);
    const warned = await hsmkit("key", "public", "--key", ref(open));
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stdout, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.match(
      warned.stderr,
      /^hsmkit: warning: PIN file '.*pin-0644' can be read by group or others \(mode 0644\); chmod 600 it\n$/,
    );
    assert.ok(!warned.stderr.includes(token.pin), "the warning never shows the PIN");
    const closed = join(dir, "pin-0600");
    await writeFile(closed, `${token.pin}\n`, { mode: 0o600 });
    const quiet = await hsmkit("key", "public", "--key", ref(closed));
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, "");
    assert.equal(quiet.stdout, warned.stdout);

    const pass = join(dir, "pass-0640");
    await writeFile(pass, "s3cret\n", { mode: 0o640 });
    await chmod(pass, 0o640);
    const fileRef = `file:${join(dir, "warn.key")}?passphrase-file=${pass}`;
    const gen = await hsmkit("key", "generate", "--key", fileRef, "--type", "ec-p256");
    assert.equal(gen.code, 0, gen.stderr);
    assert.match(
      gen.stderr,
      /^hsmkit: warning: passphrase file '.*pass-0640' can be read by group or others \(mode 0640\)/,
    );
  });

  test("errors are one line, non-zero, without a stack trace", async () => {
    const existing = join(dir, "exists.key");
    await writeFile(existing, "x");
    assertOneLineFailure(
      await hsmkit("key", "public", "--key", join(dir, "missing.key")),
      /missing\.key.*no such file/,
    );
    assertOneLineFailure(
      await hsmkit("key", "generate", "--key", existing, "--type", "ec-p256"),
      /already exists/,
    );
    assertOneLineFailure(
      await hsmkit("key", "generate", "--key", join(dir, "n.key"), "--type", "dsa"),
      /dsa/,
    );
    assertOneLineFailure(await hsmkit("key", "public"), /--key/);
    assertOneLineFailure(await hsmkit("key", "public", "--key", existing), /not a private key/);
    assertOneLineFailure(
      await hsmkit("key", "public", "--key", token.uri("cli-rsa").replace(token.pin, "99999999")),
      new RegExp(`PIN rejected by token '${token.label}'`),
    );
    assertOneLineFailure(await hsmkit("key", "public", "--key", token.uri("nope")), /no private key 'nope'/);
    assertOneLineFailure(await hsmkit("key", "public", "--key", "pkcs11:token=a b"), /bad key reference/);
    assertOneLineFailure(
      await hsmkit("key", "generate", "--key", token.uri("cli-rsa"), "--type", "rsa2048"),
      /already has an object 'cli-rsa'/,
    );
  });
});
