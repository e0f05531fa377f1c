/**
 * `npm run bench`: runs every benchmark in bench/ (each top-level bench/*.ts except this
 * runner and the shared libraries lib.ts / *_lib.ts) one after another, each in its own
 * process so one benchmark's peers, keys and CPU never leak into the next.
 *
 *   npm run bench                 every benchmark
 *   npm run bench -- client kms   only bench/client.ts and bench/kms.ts
 *   npm run bench -- --list       names only
 *
 * Exits non-zero when a benchmark fails (or runs longer than BENCH_TIMEOUT_S, default 900).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const timeoutMs = Number(process.env.BENCH_TIMEOUT_S ?? 900) * 1000;

/** Benchmarks are the top-level .ts files that are neither this runner nor a library. */
function isBenchmark(file: string): boolean {
  return (
    file.endsWith(".ts") &&
    !file.endsWith(".d.ts") &&
    file !== "run.ts" &&
    file !== "lib.ts" &&
    !file.endsWith("_lib.ts")
  );
}

const all = readdirSync(here, { withFileTypes: true })
  .filter((e) => e.isFile() && isBenchmark(e.name))
  .map((e) => e.name.replace(/\.ts$/, ""))
  .sort();

const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
if (process.argv.includes("--list")) {
  console.log(all.join("\n"));
  process.exit(0);
}
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length > 0) {
  console.error(`no such benchmark: ${unknown.join(", ")} (have: ${all.join(", ")})`);
  process.exit(2);
}
const selected = wanted.length > 0 ? all.filter((b) => wanted.includes(b)) : all;
if (selected.length === 0) {
  console.error("no benchmarks in bench/");
  process.exit(2);
}

let current: ChildProcess | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    current?.kill(signal);
    process.exit(130);
  });
}

/** Runs one benchmark to completion; resolves with a one-line outcome, or undefined on success. */
function runOne(name: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--no-warnings", "--import", "tsx", path.join(here, `${name}.ts`)],
      {
        stdio: "inherit",
      },
    );
    current = child;
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve(`could not start: ${err.message}`);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      current = undefined;
      if (code === 0) resolve(undefined);
      else resolve(signal ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
}

const failures: string[] = [];
for (const name of selected) {
  console.log(`\n=== bench/${name}.ts ===`);
  const started = Date.now();
  const failure = await runOne(name);
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  if (failure) failures.push(`${name}: ${failure}`);
  console.log(`=== ${name}: ${failure ?? "done"} in ${seconds} s ===`);
}
if (failures.length > 0) {
  console.error(`\n${failures.length} benchmark(s) failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
