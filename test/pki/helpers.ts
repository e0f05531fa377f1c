/**
 * Shared pieces of the CA tests: temp directories, running bin/hsmkit and openssl, and a
 * fingerprint of a directory to prove a failed command changed nothing.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { hsmkit } from "../helpers/hsmkit.ts";
import { type RunResult, runCommand } from "../helpers/process.ts";

/** A fresh temp directory, removed after the test. */
export async function tempDir(t: TestContext, prefix = "hsmkit-pki-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs bin/hsmkit and returns what it did (any exit code). */
export function cli(
  args: readonly string[],
  timeoutMs = 120_000,
  env?: NodeJS.ProcessEnv,
): Promise<RunResult> {
  return hsmkit(args, { timeoutMs, ...(env ? { env } : {}) });
}

/** Runs bin/hsmkit and fails the test unless it exits 0. */
export async function cliOk(args: readonly string[]): Promise<RunResult> {
  const result = await cli(args);
  assert.equal(result.exitCode, 0, `hsmkit ${args.join(" ")} failed:\n${result.output}`);
  return result;
}

/**
 * Asserts that an hsmkit run failed with exactly one line on stderr matching `pattern`
 * and no stack trace.
 */
export function assertOneLineError(result: RunResult, pattern: RegExp): void {
  assert.notEqual(result.exitCode, 0, `expected a failure, got:\n${result.output}`);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
  assert.match(lines[0] ?? "", /^hsmkit: /);
  assert.match(lines[0] ?? "", pattern);
  assert.doesNotMatch(result.output, /\n\s+at .+\(.+:\d+:\d+\)/, "stack trace in output");
}

/** `ca intermediate` arguments: a CA in `dir` signed by the CA in `parent`, with a fresh key of `type`. */
export function intermediateArgs(
  dir: string,
  parent: string,
  cn: string,
  extra: readonly string[] = [],
  type = "ec-p256",
): string[] {
  return ["ca", "intermediate", "--dir", dir, "--parent", parent, "--cn", cn, "--type", type, ...extra];
}

/** `cert issue` arguments for a server leaf with a fresh EC P-256 key in PREFIX.key. */
export function issueServerArgs(ca: string, cn: string, outPrefix: string): string[] {
  return [
    "cert",
    "issue",
    "--ca",
    ca,
    "--profile",
    "server",
    "--cn",
    cn,
    "--type",
    "ec-p256",
    "--out",
    outPrefix,
  ];
}

/** Runs openssl (bounded) and returns what it did. */
export function openssl(args: readonly string[], input?: string): Promise<RunResult> {
  return runCommand("openssl", [...args], { timeoutMs: 60_000, ...(input !== undefined ? { input } : {}) });
}

/** Runs any tool (bounded). */
export function run(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return runCommand(command, [...args], { timeoutMs: 60_000, ...(env ? { env } : {}) });
}

/** name -> sha256:mode of every file below `dir` (recursively), to compare before and after. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (sub: string): Promise<void> => {
    for (const entry of (await readdir(join(dir, sub), { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        await walk(rel);
      } else {
        const path = join(dir, rel);
        const hash = createHash("sha256")
          .update(await readFile(path))
          .digest("hex");
        out[rel] = `${hash}:${((await stat(path)).mode & 0o777).toString(8)}`;
      }
    }
  };
  await walk("");
  return out;
}

/** True when a path exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The serial (lower-case hex, as hsmkit prints it) of the first certificate in a PEM file. */
export async function serialOf(pemPath: string): Promise<string> {
  const result = await openssl(["x509", "-in", pemPath, "-noout", "-serial"]);
  assert.equal(result.exitCode, 0, result.output);
  return (/serial=([0-9A-F]+)/.exec(result.stdout)?.[1] ?? "").toLowerCase().replace(/^(00)+/, "");
}

/** Runs a command that must fail, and checks the CA directory and the outputs did not change. */
export async function refusedUnchanged(
  caDir: string,
  args: string[],
  pattern: RegExp,
  outPrefix?: string,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  const before = await snapshot(caDir);
  assertOneLineError(await cli(args, undefined, env), pattern);
  assert.deepEqual(await snapshot(caDir), before, `${args.join(" ")} changed ${caDir}`);
  if (outPrefix) {
    assert.equal(await exists(`${outPrefix}.pem`), false, `${outPrefix}.pem was written`);
    assert.equal(await exists(`${outPrefix}.key`), false, `${outPrefix}.key was written`);
  }
}
