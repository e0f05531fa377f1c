/**
 * `hsmkit serve` sending large files: every byte arrives in order on TLS 1.3 and 1.2 (files
 * larger than the static handler's read size and of no round length), and a client that stops
 * reading does not make the server read the file into memory (backpressure end to end: static
 * handler, http, TLS record layer, TCP).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { makePki, type Pki } from "../helpers/pki.ts";
import { type ServeProcess, startServe } from "./serve_fixture.ts";

const MiB = 1024 * 1024;
/** Not a multiple of any read or record size. */
const ODD_SIZE = 5 * MiB + 12_345;
const BIG_SIZE = 96 * MiB;

let pki: Pki;
let dir: string;
let serve: ServeProcess;
let oddSha256: string;

before(async () => {
  pki = await makePki();
  dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-serve-bulk-"));
  const root = path.join(dir, "www");
  await mkdir(root);
  const odd = randomBytes(ODD_SIZE);
  oddSha256 = createHash("sha256").update(odd).digest("hex");
  await writeFile(path.join(root, "odd.bin"), odd);
  await writeFile(path.join(root, "big.bin"), Buffer.alloc(BIG_SIZE, 0x5a));
  serve = await startServe([
    "--cert",
    pki.server.chainPath,
    "--key",
    pki.server.keyPath,
    "--client-ca",
    pki.caFile,
    "--root",
    root,
  ]);
});

after(async () => {
  await serve?.stop();
  await rm(dir, { recursive: true, force: true });
});

function options(file: string, version: "TLSv1.2" | "TLSv1.3"): https.RequestOptions {
  return {
    host: "127.0.0.1",
    servername: "localhost",
    port: serve.port,
    path: file,
    agent: false,
    ca: pki.root.certPem,
    cert: pki.client.chainPem,
    key: pki.client.keyPem,
    minVersion: version,
    maxVersion: version,
  };
}

for (const version of ["TLSv1.3", "TLSv1.2"] as const) {
  test(`${version}: a file larger than one read arrives byte for byte`, async () => {
    const { status, length, sha256 } = await new Promise<{ status: number; length: number; sha256: string }>(
      (resolve, reject) => {
        https
          .get(options("/odd.bin", version), (res) => {
            const hash = createHash("sha256");
            let length = 0;
            res.on("data", (d: Buffer) => {
              hash.update(d);
              length += d.length;
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, length, sha256: hash.digest("hex") }));
            res.on("error", reject);
          })
          .on("error", reject);
      },
    );
    assert.equal(status, 200);
    assert.equal(length, ODD_SIZE);
    assert.equal(sha256, oddSha256);
  });
}

test("clients that stop reading a large file do not make the server buffer it", async () => {
  const clients = 4;
  const before = serve.rssKiB();
  const requests: Array<ReturnType<typeof https.get>> = [];
  try {
    // Each client reads the response head and the first chunk, then stops reading for good.
    await Promise.all(
      Array.from(
        { length: clients },
        () =>
          new Promise<void>((resolve, reject) => {
            const req = https.get(options("/big.bin", "TLSv1.3"), (res) => {
              assert.equal(res.statusCode, 200);
              res.once("data", () => {
                res.pause();
                resolve();
              });
            });
            req.on("error", reject);
            requests.push(req);
          }),
      ),
    );
    // Unbounded buffering would pull all 4 x 96 MiB into the server within this window; sample
    // its memory while it has the chance to.
    let peak = before;
    for (let i = 0; i < 15; i++) {
      await new Promise((r) => setTimeout(r, 200));
      peak = Math.max(peak, serve.rssKiB());
    }
    const grewMiB = (peak - before) / 1024;
    assert.ok(grewMiB < 64, `server memory grew by ${grewMiB.toFixed(0)} MiB for ${clients} stalled clients`);
  } finally {
    for (const req of requests) req.destroy();
  }
});
