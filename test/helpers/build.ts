/**
 * The compiled package in dist/ and whether it matches the sources: tests run the compiled CLI
 * when it is current (it starts in a tenth of the time the TypeScript sources take through tsx),
 * and the sources otherwise, so a test never sees stale code.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { runChecked } from "./process.ts";

/** This checkout's root. */
export const REPO = join(import.meta.dirname, "..", "..");

/** The newest modification time of any file below `dir`, ms. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

/** True when dist/ was built after every source file and the build configuration last changed. */
export function distIsCurrent(): boolean {
  let built = 0;
  try {
    built = statSync(join(REPO, "dist", ".tsbuildinfo")).mtimeMs;
  } catch {
    return false;
  }
  const sources = Math.max(
    newestMtime(join(REPO, "src")),
    statSync(join(REPO, "tsconfig.build.json")).mtimeMs,
    statSync(join(REPO, "package.json")).mtimeMs,
  );
  return built > sources;
}

/** Compiles src/ into dist/ (incremental tsc) unless it is current. */
export async function ensureBuilt(): Promise<void> {
  if (distIsCurrent()) return;
  const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
  await runChecked(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: REPO, timeoutMs: 180_000 });
}
