/**
 * Inputs that end the process. A native assertion (in OpenSSL or Node's C++ layer) aborts the
 * whole process: no exception handler runs and the worker's shared memory is gone. So
 * `npm run fuzz` runs the fuzzing in a child process; each worker writes its batch of inputs
 * to a batch file before running it (fuzz/batch.ts). When the child dies without reporting, the
 * supervisor replays the surviving batch in a fresh child, one input at a time, recording the
 * index before each run: the index on file when that child dies names the input. The input is
 * saved as a finding, and fuzzing resumes with the targets after the one that crashed.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodeBatch } from "./batch.ts";
import type { PreparedTarget } from "./target.ts";

/** Set in the child that fuzzes: the folder for batch files. */
export const BATCH_DIR_ENV = "FUZZ_BATCH_DIR";

/** The batch file of a target inside the batch folder. */
export function batchFileOf(dir: string, target: string): string {
  return path.join(dir, `${target}.batch`);
}

/** How a child process ended. */
interface ChildEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Runs this script again in a child process with `args` and extra environment. */
function runChild(args: string[], env: Record<string, string>): Promise<ChildEnd> {
  const script = process.argv[1] ?? "";
  const child = spawn(process.execPath, [...process.execArgv, script, ...args], {
    stdio: "inherit",
    env: { ...process.env, ...env },
  });
  // The child shares our terminal: it gets Ctrl-C itself; a TERM sent to us is passed on.
  const forward = () => child.kill("SIGTERM");
  process.once("SIGTERM", forward);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      process.removeListener("SIGTERM", forward);
      resolve({ code, signal });
    });
  });
}

/** A child that exited by itself with 0 (no failures) or 1 (failures reported). */
function reported(end: ChildEnd): boolean {
  return end.signal === null && (end.code === 0 || end.code === 1);
}

function describeEnd(end: ChildEnd): string {
  return end.signal ? `signal ${end.signal}` : `exit code ${end.code}`;
}

/**
 * Runs the targets in child processes until all have run, finding and saving any input
 * that ends a child. Returns the exit code: 0 when nothing failed.
 */
export async function supervise(targets: readonly string[], findings: string, seed: number): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), "hsmkit-fuzz-batches-"));
  let failed = false;
  let remaining = [...targets];
  try {
    while (remaining.length > 0) {
      const end = await runChild([], {
        [BATCH_DIR_ENV]: dir,
        FUZZ_TARGETS: remaining.join(","),
        FUZZ_SEED: String(seed),
      });
      if (reported(end)) return end.code === 0 && !failed ? 0 : 1;
      const crashed = remaining.find((t) => readdirSync(dir).includes(`${t}.batch`));
      if (!crashed) {
        console.log(`fuzz: the fuzzing process ended (${describeEnd(end)}) outside any target`);
        return 1;
      }
      failed = true;
      console.log(`${crashed.padEnd(28)} the process ended (${describeEnd(end)}): finding the input`);
      await findCrashingInput(crashed, batchFileOf(dir, crashed), findings);
      rmSync(batchFileOf(dir, crashed), { force: true });
      remaining = remaining.slice(remaining.indexOf(crashed) + 1);
    }
    return failed ? 1 : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Replays a batch in a child; saves the input that ends it. */
async function findCrashingInput(target: string, batchFile: string, findings: string): Promise<void> {
  const inputs = decodeBatch(readFileSync(batchFile));
  if (inputs.length === 0) {
    console.log("  FAIL the process ended while preparing the target (no input had run)");
    return;
  }
  const progress = `${batchFile}.progress`;
  const end = await runChild(["--triage", batchFile, "--target", target], {});
  if (end.code === 0 && end.signal === null) {
    console.log(
      `  FAIL the process ended, but none of the ${inputs.length} inputs of its batch ends it again`,
    );
    return;
  }
  const index = Number(readFileSync(progress, "utf8"));
  const input = inputs[index];
  if (input === undefined) {
    console.log(`  FAIL the replay ended (${describeEnd(end)}) before running an input`);
    return;
  }
  await mkdir(findings, { recursive: true });
  const file = path.join(
    findings,
    `${target}-${createHash("sha256").update(input).digest("hex").slice(0, 12)}.hex`,
  );
  await writeFile(file, `${input.toString("hex")}\n`);
  console.log(`  FAIL input ${index + 1} of its batch ends the process (${describeEnd(end)})`);
  console.log(
    `    input: ${input.length} bytes -> replay: npm run fuzz -- --replay ${path.relative(process.cwd(), file)}`,
  );
}

/**
 * The replaying child: runs each input of the batch in order, writing its index to the
 * progress file first. Exits normally when no input ends the process.
 */
export async function triage(batchFile: string, prepared: PreparedTarget): Promise<number> {
  const progress = `${batchFile}.progress`;
  const inputs = decodeBatch(readFileSync(batchFile));
  for (const [index, input] of inputs.entries()) {
    writeFileSync(progress, String(index));
    try {
      await prepared.run(input);
    } catch {
      // Exceptions were judged by the fuzzing run; only an input that ends the process counts here.
    }
  }
  return 0;
}
