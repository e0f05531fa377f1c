/**
 * Helpers for tests that run `hsmkit kms` as real processes on one data directory: admin
 * commands, a `kms serve` child, and an SDK client for an access point the CLI created.
 */
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { KmsClient } from "../../src/kms/client.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { waitForOutput } from "../helpers/net.ts";
import { ManagedProcess, type RunResult, runCommand } from "../helpers/process.ts";

/** The helpers, bound to one passphrase (given to every process through the environment). */
export interface KmsProcesses {
  readonly env: NodeJS.ProcessEnv;
  /** Runs `hsmkit kms ARGS`. */
  cli(args: string[]): Promise<RunResult>;
  /** Runs `hsmkit kms ARGS`, asserts success, returns the last line of stdout (an id). */
  ok(args: string[]): Promise<string>;
  /** `kms ap create` for key patterns `keys`, files written to `outDir`; returns the access point id. */
  createAp(data: string, name: string, keys: string, outDir: string): Promise<string>;
  /** Starts `hsmkit kms serve` on a free port. */
  serve(data: string): Promise<{ proc: ManagedProcess; endpoint: string }>;
  /** A client for access point `apId`, whose files `kms ap create --out apDir` wrote. */
  client(data: string, apDir: string, apId: string, endpoint: string, maxAttempts?: number): KmsClient;
}

/** Helpers whose processes all use `passphrase`, and `extraEnv` (HSMKIT_KMS_STORE, say). */
export function kmsProcesses(passphrase: string, extraEnv: NodeJS.ProcessEnv = {}): KmsProcesses {
  const env = { ...process.env, HSMKIT_KMS_PASSPHRASE: passphrase, ...extraEnv };
  const cli = (args: string[]) => runCommand(HSMKIT_BIN, ["kms", ...args], { env, timeoutMs: 60_000 });
  const ok = async (args: string[]) => {
    const r = await cli(args);
    assert.equal(r.exitCode, 0, `hsmkit kms ${args.join(" ")}:\n${r.output}`);
    return r.stdout.trim().split("\n").at(-1) ?? "";
  };
  return {
    env,
    cli,
    ok,
    createAp: (data, name, keys, outDir) =>
      ok(["ap", "create", "--data", data, "--name", name, "--keys", keys, "--out", outDir]),
    async serve(data) {
      const proc = await ManagedProcess.start(
        HSMKIT_BIN,
        ["kms", "serve", "--data", data, "--listen", "127.0.0.1:0", "--quiet"],
        { env },
      );
      const m = await waitForOutput(proc, /listening on (\S+)/, 30_000);
      return { proc, endpoint: m[1] as string };
    },
    client(data, apDir, apId, endpoint, maxAttempts = 4) {
      return new KmsClient({
        endpoint,
        clientKeyFile: join(apDir, `clientKey_${apId}.json`),
        passwordFile: join(apDir, `clientKey_${apId}_Password.txt`),
        caFilePath: join(data, "ca.pem"),
        maxAttempts,
      });
    },
  };
}

/**
 * Copies data directory `data` to `copy` and edits the copy's database as someone with file
 * access would: the append-only triggers dropped, then `sql` run on it.
 */
export function tamperedCopy(data: string, copy: string, sql: (db: Database.Database) => void): void {
  cpSync(data, copy, { recursive: true });
  const db = new Database(join(copy, "kms.db"));
  try {
    db.exec("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;");
    sql(db);
  } finally {
    db.close();
  }
}
