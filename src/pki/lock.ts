/**
 * An exclusive lock on a CA directory, so two processes issuing at once never hand out
 * the same serial or lose an index update: a lock file created with O_EXCL, retried with
 * backoff, and taken over only when the process that made it no longer exists.
 */
import { randomInt } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { PkiError } from "./errors.ts";

/** Name of the lock file inside a CA directory. */
export const LOCK_FILE = ".lock";

/** How long to wait for another issuer before giving up. */
const DEFAULT_WAIT_MS = 60_000;

/** The lock file's text, or undefined when there is none. */
async function readLock(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

/** True when lock text names a live process on this host (or cannot be judged). */
function holderAlive(text: string): boolean {
  const [pidText, host] = text.split(" ");
  const pid = Number(pidText);
  // A half-written file or another host's lock: assume alive, let the timeout decide.
  if (!Number.isInteger(pid) || pid <= 0 || host?.trim() !== hostname()) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Runs `work` while holding the lock on `dir`. The lock is released whatever happens.
 */
export async function withDirLock<T>(
  dir: string,
  work: () => Promise<T>,
  waitMs = DEFAULT_WAIT_MS,
): Promise<T> {
  const path = join(dir, LOCK_FILE);
  const deadline = Date.now() + waitMs;
  let delay = 5;
  for (;;) {
    try {
      const file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        await file.writeFile(`${process.pid} ${hostname()}\n`);
      } finally {
        await file.close();
      }
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") throw new PkiError("ca-dir", `CA directory ${dir} does not exist`);
      if (code !== "EEXIST") throw new PkiError("io", `cannot lock CA directory ${dir}: ${code ?? err}`);
      const holder = await readLock(path);
      if (holder === undefined) continue; // released meanwhile
      if (!holderAlive(holder)) {
        // The holder died without unlocking. Remove its file only if it is still that
        // one (another waiter may already have replaced it), then race for a new one.
        if ((await readLock(path)) === holder) await rm(path, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new PkiError("locked", `CA directory ${dir} is locked by another process (${path})`);
      }
      await sleep(delay + randomInt(delay));
      delay = Math.min(delay * 2, 200);
    }
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}
