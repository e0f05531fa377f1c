/**
 * `npm run fuzz` finds inputs that end the whole process (a native assertion takes the worker's
 * memory with it): a target that kills its process on inputs starting with "a" is fuzzed, and
 * the runner must save such an input as a finding, report it, fail, and go on with the next
 * target.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { decodeBatch, encodeBatch } from "../fuzz/batch.ts";
import { runCommand } from "./helpers/process.ts";

const REPO = join(import.meta.dirname, "..");
const dir = mkdtempSync(join(tmpdir(), "hsmkit-fuzz-crash-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("an input that ends the fuzzing process is saved, reported, and fuzzing goes on", async () => {
  const findings = join(dir, "findings");
  const r = await runCommand(process.execPath, ["--no-warnings", "--import", "tsx", "fuzz/run.ts"], {
    cwd: REPO,
    timeoutMs: 120_000,
    env: {
      ...process.env,
      FUZZ_SELF_TEST_ABORT: "1",
      FUZZ_TARGETS: "self-test-abort,pkcs11-uri",
      FUZZ_SECONDS: "1",
      FUZZ_SEED: "7",
      FUZZ_FINDINGS: findings,
    },
  });
  assert.equal(r.exitCode, 1, r.output);
  assert.match(r.stdout, /self-test-abort .*the process ended \(signal SIGABRT\)/);
  assert.match(r.stdout, /FAIL input \d+ of its batch ends the process/);
  assert.match(r.stdout, /pkcs11-uri +\d+ inputs/, "the next target still ran");
  const saved = readdirSync(findings);
  assert.equal(saved.length, 1);
  assert.match(saved[0] ?? "", /^self-test-abort-[0-9a-f]{12}\.hex$/);
  const input = Buffer.from(readFileSync(join(findings, saved[0] ?? ""), "utf8").trim(), "hex");
  assert.equal(input[0], 0x61, "the saved input is one that ends the process");
});

test("batch files: round trip; a truncated last entry is dropped", () => {
  const inputs = [Buffer.from("one"), Buffer.alloc(0), Buffer.from([0, 1, 2, 255])];
  const file = encodeBatch(inputs);
  assert.deepEqual(decodeBatch(file), inputs);
  assert.deepEqual(decodeBatch(file.subarray(0, file.length - 1)), inputs.slice(0, 2));
  assert.deepEqual(decodeBatch(file.subarray(0, 2)), []);
  const huge = Buffer.from([0xff, 0xff, 0xff, 0xff, 1]);
  assert.deepEqual(decodeBatch(huge), []);
});
