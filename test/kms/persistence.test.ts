/**
 * `hsmkit kms serve` as a real process: admin commands beside it on the same data directory,
 * restarts, SIGKILL in the middle of a burst, audit tampering, and a search of the data
 * directory for any private key bytes.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type Database from "better-sqlite3";
import { adminCreateKey, adminRotateKey } from "../../src/kms/admin.ts";
import { KmsRequestError } from "../../src/kms/client.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import type { RunResult } from "../helpers/process.ts";
import { kmsProcesses, tamperedCopy } from "./kms_process.ts";

const PASSPHRASE = "persistence test passphrase";
const { cli: kmsCli, ok: kmsOk, createAp, serve, client: clientFor } = kmsProcesses(PASSPHRASE);
const root = mkdtempSync(join(tmpdir(), "hsmkit-kms-persist-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("kms serve as a process", () => {
  it("serves while admin commands change keys; a restart keeps keys, access points and audit", async (t) => {
    const data = join(root, "restart");
    const apDir = join(root, "restart-aps");
    let { proc, endpoint } = await serve(data);
    t.after(() => proc.stop());
    const keyId = await kmsOk([
      "key",
      "create",
      "--data",
      data,
      "--spec",
      "RSA_2048",
      "--usage",
      "SIGN/VERIFY",
    ]);
    assert.match(keyId, /^key-[0-9a-f]{24}$/);
    const apId = await createAp(data, "app", keyId, apDir);
    assert.match(apId, /^KAAP\.[0-9a-f-]{36}$/);
    const caOut = join(root, "PrivateKmsCA.pem");
    await kmsOk(["ca", "--data", data, "--out", caOut]);
    assert.match(readFileSync(caOut, "utf8"), /BEGIN CERTIFICATE/);

    let client = clientFor(data, apDir, apId, endpoint);
    const message = Buffer.from("before restart");
    const first = await client.sign({ keyId, algorithm: "RSA_PSS_SHA_256", message });
    const publicKey = (await client.getPublicKey(keyId)).PublicKey;

    await kmsOk(["key", "disable", "--data", data, "--key", keyId]);
    await assert.rejects(client.sign({ keyId, algorithm: "RSA_PSS_SHA_256", message }), /IncorrectKeyState/);
    await kmsOk(["key", "enable", "--data", data, "--key", keyId]);
    client.close();

    await proc.stop();
    ({ proc, endpoint } = await serve(data));
    client = clientFor(data, apDir, apId, endpoint);
    assert.equal((await client.getPublicKey(keyId)).PublicKey, publicKey);
    const verdict = await client.verify({
      keyId,
      algorithm: "RSA_PSS_SHA_256",
      message,
      signature: first.Signature,
    });
    assert.equal(verdict.Value, true);
    client.close();

    const list = await kmsCli(["ap", "list", "--data", data]);
    assert.match(list.stdout, new RegExp(`${apId.replace(".", "\\.")}\\s+app\\s+Active`));
    const audit = await kmsCli(["audit", "list", "--data", data, "--last", "1000"]);
    assert.ok(audit.stdout.includes(first.RequestId), "the pre-restart Sign is in the audit log");
    assert.match(audit.stdout, /DisableKey/);
    assert.equal(
      await kmsOk(["audit", "verify", "--data", data]),
      `audit OK: ${audit.stdout.trim().split("\n").length} entries`,
    );
  });

  it("loses nothing it acknowledged when SIGKILLed in the middle of a burst", async (t) => {
    const data = join(root, "sigkill");
    const apDir = join(root, "sigkill-aps");
    await kmsOk(["init", "--data", data]);
    const keyId = await kmsOk([
      "key",
      "create",
      "--data",
      data,
      "--spec",
      "EC_P256",
      "--usage",
      "SIGN/VERIFY",
    ]);
    const apId = await createAp(data, "burst", "*", apDir);
    const { proc, endpoint } = await serve(data);
    t.after(() => proc.stop());
    const client = clientFor(data, apDir, apId, endpoint, 1);
    t.after(() => client.close());

    const acknowledged: string[] = [];
    let failures = 0;
    let killed = false;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 60 && failures === 0; i++) {
        try {
          const r = await client.sign({ keyId, algorithm: "ECDSA_SHA_256", message: Buffer.from(`m${i}`) });
          acknowledged.push(r.RequestId);
          if (acknowledged.length >= 150 && !killed) {
            killed = true;
            process.kill(proc.pid, "SIGKILL");
          }
        } catch (err) {
          assert.ok(!(err instanceof KmsRequestError), `a refusal, not a crash: ${err}`);
          failures++;
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    assert.ok(
      killed && failures > 0,
      `the server was killed mid-burst (${acknowledged.length} acked, ${failures} failed)`,
    );
    await proc.exited;

    const instance = await KmsInstance.open({ dataDir: data, passphrase: PASSPHRASE });
    try {
      const entries = await instance.audit.entries();
      const audited = new Set(entries.map((e) => e.requestId));
      const lost = acknowledged.filter((id) => !audited.has(id));
      assert.deepEqual(
        lost,
        [],
        `${lost.length} of ${acknowledged.length} acknowledged requests missing from the audit`,
      );
      assert.deepEqual(await instance.audit.verify(), { ok: true, count: entries.length });
    } finally {
      await instance.close();
    }
  });

  it("audit verify flags an edited, a rewritten and a truncated log", async () => {
    const data = join(root, "tamper");
    await kmsOk(["init", "--data", data]);
    for (let i = 0; i < 3; i++)
      await kmsOk(["key", "create", "--data", data, "--spec", "AES_256", "--usage", "ENCRYPT/DECRYPT"]);
    assert.equal(await kmsOk(["audit", "verify", "--data", data]), "audit OK: 3 entries");

    const tamper = async (name: string, sql: (db: Database.Database) => void): Promise<RunResult> => {
      const copy = join(root, `tamper-${name}`);
      tamperedCopy(data, copy, sql);
      return kmsCli(["audit", "verify", "--data", copy]);
    };
    const edited = await tamper("edit", (db) =>
      db.prepare("UPDATE audit SET outcome = 'denied' WHERE seq = 2").run(),
    );
    assert.equal(edited.exitCode, 1);
    assert.match(edited.stderr, /audit FAILED at entry 2: .*edited/);

    const rewritten = await tamper("rewrite", (db) => {
      // An attacker recomputes the hash chain; without the master key the MACs give it away.
      const rows = db.prepare("SELECT * FROM audit ORDER BY seq").all() as Record<string, unknown>[];
      let prev = Buffer.alloc(32);
      for (const r of rows) {
        const detail = r.seq === 2 ? "forged" : (r.detail as string);
        const fields = [
          r.seq,
          r.time,
          r.actor,
          r.source,
          r.operation,
          r.key_id,
          r.outcome,
          r.request_id,
          detail,
        ];
        const hash = createHash("sha256").update(prev).update(JSON.stringify(fields)).digest();
        db.prepare("UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?").run(
          detail,
          prev,
          hash,
          r.seq,
        );
        prev = hash;
      }
    });
    assert.equal(rewritten.exitCode, 1);
    assert.match(rewritten.stderr, /audit FAILED at entry 2: its MAC is wrong/);

    const truncated = await tamper("truncate", (db) => db.prepare("DELETE FROM audit WHERE seq = 3").run());
    assert.equal(truncated.exitCode, 1);
    assert.match(truncated.stderr, /the log ends at 2 but was written up to 3/);

    const dropped = await tamper("drop", (db) => db.prepare("DELETE FROM audit WHERE seq = 1").run());
    assert.equal(dropped.exitCode, 1);
    assert.match(dropped.stderr, /audit FAILED at entry 2: entry 1 is missing/);
  });

  it("keeps no private key bytes in the data directory, in DER or PEM", async () => {
    const data = join(root, "grep");
    await withInstance(data, async (instance) => {
      for (const spec of ["RSA_2048", "EC_P256", "EC_P384"])
        await adminCreateKey(instance, spec, "SIGN/VERIFY");
      await adminCreateKey(instance, "AES_256", "ENCRYPT/DECRYPT");
      await adminRotateKey(instance, (await instance.store.listKeys())[0]?.id ?? "");
    });
    const instance = await KmsInstance.open({ dataDir: data, passphrase: PASSPHRASE });
    const secrets: [string, Buffer][] = [];
    try {
      for (const key of await instance.store.listKeys()) {
        for (const version of await instance.keys.versions(key.id)) {
          const loaded = await instance.keys.load(key, version);
          if (loaded.kind === "aes") {
            secrets.push([`${key.id} AES`, loaded.secretKey.export()]);
            continue;
          }
          const k = loaded.privateKey;
          const native = loaded.kind === "rsa" ? "pkcs1" : "sec1";
          const pems = [
            k.export({ type: "pkcs8", format: "pem" }) as string,
            k.export({ type: native, format: "pem" }) as string,
          ];
          secrets.push(
            [`${key.id} PKCS#8 DER`, k.export({ type: "pkcs8", format: "der" })],
            [`${key.id} ${native} DER`, k.export({ type: native, format: "der" })],
            ...pems.map((p, i): [string, Buffer] => [`${key.id} PEM ${i}`, Buffer.from(p)]),
            // One line of base64 body is enough to give a PEM away.
            ...pems.map((p, i): [string, Buffer] => [
              `${key.id} PEM line ${i}`,
              Buffer.from(p.split("\n")[2] ?? ""),
            ]),
          );
        }
      }
      const server = await instance.serverCredentials([]);
      secrets.push(["instance TLS key", server.keyDer], ["passphrase", Buffer.from(PASSPHRASE)]);
    } finally {
      await instance.close();
    }
    const files = listFiles(data);
    assert.ok(files.some((f) => f.endsWith("kms.db")));
    for (const file of files) {
      const bytes = readFileSync(file);
      for (const [name, secret] of secrets) {
        assert.equal(bytes.indexOf(secret), -1, `${name} found in ${file}`);
      }
    }
    // The search itself works: a file that does hold a key is caught.
    const control = Buffer.concat([
      Buffer.from("junk"),
      secrets[0]?.[1] ?? Buffer.alloc(0),
      Buffer.from("junk"),
    ]);
    assert.notEqual(control.indexOf(secrets[0]?.[1] ?? Buffer.from("x")), -1);
  });
});

async function withInstance(data: string, work: (instance: KmsInstance) => Promise<void>): Promise<void> {
  const instance = await KmsInstance.open({ dataDir: data, passphrase: PASSPHRASE, create: true });
  try {
    await work(instance);
  } finally {
    await instance.close();
  }
}

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}
