/**
 * The static handler and the connection's idle timeout under clients an attacker controls: a
 * client that stops reading a large download is cut off after the idle timeout and its file
 * handle is closed (it held read buffers, queued records and the file for as long as it liked),
 * and a path swapped for a FIFO or a symlink out of the root after the handler resolved it is
 * never opened as a file to send.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import https from "node:https";
import { createConnection, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { type RunningServe, startServe } from "../../src/https/serve.ts";
import { openInside } from "../../src/https/static.ts";
import { openKey } from "../../src/keys/index.ts";
import { HSMKIT_BIN } from "../helpers/hsmkit.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { runCommand } from "../helpers/process.ts";

let pki: Pki;
let dir: string;
let root: string;
let serve: RunningServe;
/** Access log lines, each handed to whoever waits for the next. */
const logWaiters: Array<(line: string) => void> = [];

/** Paths of the files this process holds open. */
function openFiles(): string[] {
  return readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return [];
    }
  });
}

before(async () => {
  pki = await makePki();
  dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-serve-idle-"));
  root = path.join(dir, "www");
  await mkdir(root);
  await writeFile(path.join(root, "big.bin"), Buffer.alloc(64 * 1024 * 1024, 0x5a));
  serve = await startServe({
    tls: { cert: pki.server.chainPem, key: await openKey(pki.server.keyPath), clientCa: pki.root.certPem },
    host: "127.0.0.1",
    port: 0,
    root,
    idleTimeoutMs: 1000,
    log: (line) => logWaiters.shift()?.(line),
    warn: () => {},
  });
});

after(async () => {
  await serve?.stop(100);
  await rm(dir, { recursive: true, force: true });
});

test("a client that stops reading is cut off after the idle timeout, and the file is closed", async () => {
  const big = path.join(await realpath(root), "big.bin");
  const started = Date.now();
  const logged = new Promise<string>((resolve) => logWaiters.push(resolve));
  const req = https.get(
    {
      host: "127.0.0.1",
      port: serve.address.port,
      servername: "localhost",
      path: "/big.bin",
      agent: false,
      ca: pki.root.certPem,
      cert: pki.client.chainPem,
      key: pki.client.keyPem,
    },
    (res) => res.once("data", () => res.pause()),
  );
  req.on("error", () => undefined);
  try {
    const line = await Promise.race([
      logged,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("the stalled client was never cut off")), 20_000).unref(),
      ),
    ]);
    const cutAfter = Date.now() - started;
    // The paused client cannot see the close; the server's access log and its sockets tell it.
    assert.match(line, /"GET \/big\.bin HTTP\/1\.1" 200\(aborted\)/);
    assert.ok(cutAfter >= 900, `cut off after ${cutAfter} ms, before the idle timeout`);
    for (let i = 0; i < 50 && (openFiles().includes(big) || serve.server.tls.sockets.size > 0); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(!openFiles().includes(big), "the file handle stayed open");
    assert.equal(serve.server.tls.sockets.size, 0, "the server kept the connection");
  } finally {
    req.destroy();
  }
});

test("the file opener refuses a FIFO, a symlink and a path leading out of the root, without blocking", async () => {
  const real = await realpath(root);
  const outside = path.join(dir, "outside.txt");
  await writeFile(outside, "secret\n");
  await writeFile(path.join(real, "plain.txt"), "ok\n");
  execFileSync("mkfifo", [path.join(real, "fifo")]);
  await symlink(outside, path.join(real, "link.txt"));
  await symlink(dir, path.join(real, "up"));
  const plain = await openInside(real, path.join(real, "plain.txt"));
  assert.ok(plain, "a regular file inside the root opens");
  await plain.handle.close();
  // A FIFO opened for reading would wait for a writer forever, holding a thread-pool thread.
  assert.equal(await openInside(real, path.join(real, "fifo")), undefined);
  assert.equal(await openInside(real, path.join(real, "link.txt")), undefined);
  assert.equal(await openInside(real, path.join(real, "up", "outside.txt")), undefined);
});

test("connections past maxConnections are closed as they are accepted; a freed slot is usable again", async () => {
  const capped = await startServe({
    tls: { cert: pki.server.chainPem, key: await openKey(pki.server.keyPath), clientCa: pki.root.certPem },
    host: "127.0.0.1",
    port: 0,
    root,
    maxConnections: 2,
    log: () => {},
    warn: () => {},
  });
  const port = capped.address.port;
  /** A TCP connection that sends nothing: it holds a slot while its handshake waits. */
  const hold = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ host: "127.0.0.1", port }, () => resolve(s));
      s.on("error", reject);
    });
  /** Whether the server ends a fresh connection within 2 s, before any byte is sent. */
  const endedAtOnce = () =>
    new Promise<boolean>((resolve) => {
      const s = createConnection({ host: "127.0.0.1", port });
      const timer = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 2000);
      s.on("error", () => undefined);
      s.once("close", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  try {
    const [a, b] = [await hold(), await hold()];
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await endedAtOnce(), true, "a third connection was kept");
    a.destroy();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await endedAtOnce(), false, "a freed slot was not reused");
    b.destroy();
  } finally {
    await capped.stop(100);
  }
});

test("hsmkit serve refuses a malformed --max-connections or --idle-timeout with a usage error", async () => {
  for (const [flag, value] of [
    ["--max-connections", "0"],
    ["--idle-timeout", "ten"],
  ] as const) {
    const result = await runCommand(HSMKIT_BIN, [
      "serve",
      "--cert",
      pki.server.chainPath,
      "--key",
      pki.server.keyPath,
      "--root",
      root,
      "--listen",
      "127.0.0.1:0",
      flag,
      value,
    ]);
    assert.equal(result.exitCode, 2);
    assert.match(
      result.stderr,
      new RegExp(`^hsmkit: ${flag} must be a whole number from 1 to \\d+, not '${value}'`),
    );
  }
});
