/**
 * Static files for `hsmkit serve --root`: GET and HEAD only, paths resolved strictly
 * inside the root (no `..`, no NUL, no hidden files, no symlink leading out), regular
 * files only, an index.html for directories, never a directory listing.
 */
import { constants, type Stats } from "node:fs";
import { type FileHandle, open, readlink, realpath, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { ConfigError } from "../errors.ts";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".xml": "application/xml",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".wasm": "application/wasm",
  ".pdf": "application/pdf",
};

/**
 * Bytes read from a file at a time. Each read is one trip through libuv's thread pool and each
 * chunk one pass through http and the TLS record layer (then one writev of its records), so
 * larger reads cost less CPU per byte: 256 KiB took `hsmkit serve` from about 4 to under 3 ms of
 * CPU per MiB sent (bench/serve.ts). A client that stops reading holds two chunks in the server
 * (the two read buffers) and what the TLS and TCP sockets have queued, not the file.
 */
const READ_CHUNK = 256 * 1024;

/** The content type for a file name. */
function contentType(file: string): string {
  return TYPES[path.extname(file).toLowerCase()] ?? "application/octet-stream";
}

/** Why a request path is refused, or the path relative to the root (posix, no leading slash). */
type SafePath = { ok: true; relative: string } | { ok: false; status: 400 | 404 };

/**
 * Turns a request target into a path under the root: the query is dropped, %-escapes
 * decoded once, and anything that could step outside (`..`, backslashes, NUL, a hidden
 * segment) is refused before the file system is touched.
 */
function safeRequestPath(target: string): SafePath {
  const rawPath = target.split(/[?#]/, 1)[0]!;
  if (!rawPath.startsWith("/")) return { ok: false, status: 400 };
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return { ok: false, status: 400 };
  }
  if (decoded.includes("\0") || decoded.includes("\\")) return { ok: false, status: 400 };
  const segments = decoded.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.some((s) => s === "..")) return { ok: false, status: 400 };
  if (segments.some((s) => s.startsWith("."))) return { ok: false, status: 404 };
  return { ok: true, relative: segments.join("/") };
}

function sendStatus(res: ServerResponse, status: number, extra: Record<string, string> = {}): void {
  const body = `${status} ${statusText(status)}\n`;
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  for (const [name, value] of Object.entries(extra)) res.setHeader(name, value);
  res.writeHead(status);
  res.end(body);
}

function statusText(status: number): string {
  return { 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed" }[status] ?? "";
}

/** True when `child` is `parent` or inside it. */
function within(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** Resolves a safe relative path to a regular file inside the (real) root, following index.html. */
async function resolveFile(realRoot: string, relative: string): Promise<string | undefined> {
  let candidate = path.join(realRoot, relative);
  try {
    let info = await stat(candidate);
    if (info.isDirectory()) {
      candidate = path.join(candidate, "index.html");
      info = await stat(candidate);
    }
    if (!info.isFile()) return undefined;
    // A symlink inside the root must not lead outside it.
    const real = await realpath(candidate);
    return within(realRoot, real) ? real : undefined;
  } catch {
    return undefined;
  }
}

/** A request handler serving files from `root`. The root must exist (checked by {@link openRoot}). */
export function staticFiles(realRoot: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void serveFile(realRoot, req, res);
  };
}

async function serveFile(realRoot: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") return sendStatus(res, 405, { Allow: "GET, HEAD" });
  const safe = safeRequestPath(req.url ?? "");
  if (!safe.ok) return sendStatus(res, safe.status);
  const file = await resolveFile(realRoot, safe.relative);
  if (!file) return sendStatus(res, 404);
  const opened = await openInside(realRoot, file);
  if (!opened) return sendStatus(res, 404);
  const { handle, stats } = opened;
  try {
    // The size comes from the open file, so Content-Length and the bytes sent agree.
    const { size, mtime } = stats;
    // setHeader (not writeHead's object) keeps the headers readable for the access log.
    res.setHeader("Content-Type", contentType(file));
    res.setHeader("Content-Length", size);
    res.setHeader("Last-Modified", mtime.toUTCString());
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.writeHead(200);
    if (req.method === "HEAD") res.end();
    else await sendBody(handle, size, res);
  } catch {
    res.destroy();
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Opens a file that {@link resolveFile} found, refusing what may have been swapped in since:
 * a symlink as the last component (O_NOFOLLOW), a FIFO or device (O_NONBLOCK keeps a FIFO from
 * holding a thread-pool thread; the type is checked on the open file), and, where Linux tells
 * the opened file's path, anything outside the root reached through a swapped directory.
 * Returns the handle with the open file's stats (what the response's headers are made from).
 */
export async function openInside(
  realRoot: string,
  file: string,
): Promise<{ handle: FileHandle; stats: Stats } | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new Error("not a regular file");
    const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
    if (opened !== undefined && !within(realRoot, opened)) throw new Error("outside the root");
    return { handle, stats };
  } catch {
    await handle.close().catch(() => undefined);
    return undefined;
  }
}

/**
 * Sends `size` bytes of the file through two buffers, one read while the other is written, each
 * reused once its write has completed (after a write's callback the stream holds the chunk no
 * more). A ReadStream allocates a new buffer for every read; reusing two saves that allocation
 * and the page faults of filling fresh memory. A file that shrinks while it is sent ends the
 * response short, so the client sees a truncated body rather than other bytes.
 */
async function sendBody(handle: FileHandle, size: number, res: ServerResponse): Promise<void> {
  // One close listener settles every write still waiting (a race per chunk against one promise
  // would keep a handler per chunk alive until the response ends).
  const waiting = new Set<(ok: boolean) => void>();
  res.once("close", () => {
    for (const settle of waiting) settle(false);
    waiting.clear();
  });
  const written = (chunk: Buffer) =>
    new Promise<boolean>((resolve) => {
      if (res.destroyed) return resolve(false);
      const settle = (ok: boolean) => {
        waiting.delete(settle);
        resolve(ok);
      };
      waiting.add(settle);
      res.write(chunk, (err) => settle(!err));
    });
  const chunk = Math.min(READ_CHUNK, size);
  const buffers = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)] as const;
  const writes: [Promise<boolean>, Promise<boolean>] = [Promise.resolve(true), Promise.resolve(true)];
  let position = 0;
  for (let i = 0; position < size; i ^= 1) {
    if (!(await writes[i])) return;
    const buffer = buffers[i]!;
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
    if (bytesRead === 0) throw new Error("the file shrank while it was sent");
    position += bytesRead;
    writes[i] = written(buffer.subarray(0, bytesRead));
  }
  res.end();
}

/** Checks that `root` is a readable directory and returns its real path. */
export async function openRoot(root: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(root);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError((name) => `cannot open ${name("root")} '${root}': ${reason}`, { cause: err });
  }
  if (!(await stat(real)).isDirectory())
    throw new ConfigError((name) => `${name("root")} '${root}' is not a directory`);
  return real;
}
