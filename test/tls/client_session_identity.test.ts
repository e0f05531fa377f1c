/**
 * A client session cache shared by connections with different client certificates (issue 9,
 * finding 9): each connection presents its own identity to a real server (Node's tls server
 * asking for a certificate reports the one it authenticated, also for a resumed session), and a
 * connection with the same identity as an earlier one still resumes.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import tls from "node:tls";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { connect } from "../../src/tls/client.ts";
import { ClientSessionCache } from "../../src/tls/psk.ts";
import { type LeafFiles, makePki, type Pki } from "../helpers/pki.ts";

let pki: Pki;
let server: tls.Server;
let port: number;
const keys: PrivateKeyHandle[] = [];

before(async () => {
  pki = await makePki();
  server = tls.createServer({
    key: readFileSync(pki.server.keyPath),
    cert: pki.server.chainPem,
    ca: readFileSync(pki.caFile),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.3",
  });
  // Tells the client whom the server authenticated and whether the session was resumed.
  server.on("secureConnection", (s) => {
    const cn = s.getPeerCertificate().subject?.CN ?? "none";
    s.end(`${cn} ${s.isSessionReused() ? "reused" : "new"}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  for (const k of keys) await k.close();
});

/** One connection as `who`, sharing `cache`; returns the server's "CN new|reused" line. */
async function as(who: LeafFiles, cache: ClientSessionCache): Promise<string> {
  const key = await openKey(who.keyPath);
  keys.push(key);
  const sock = connect({
    host: "127.0.0.1",
    port,
    servername: "localhost",
    ca: readFileSync(pki.caFile, "utf8"),
    key,
    cert: who.chainPem,
    sessionCache: cache,
  });
  return new Promise((resolve, reject) => {
    let text = "";
    sock.on("data", (d: Buffer) => {
      text += d.toString();
    });
    sock.on("end", () => resolve(text));
    sock.on("error", reject);
  });
}

test("connections with different client certificates sharing one cache each present their own identity", async () => {
  const cache = new ClientSessionCache();
  const rsa = pki.client.commonName;
  const ec = pki.clientEc.commonName;
  assert.notEqual(rsa, ec);
  assert.equal(await as(pki.client, cache), `${rsa} new`);
  assert.equal(await as(pki.clientEc, cache), `${ec} new`, "the second identity is not resumed as the first");
  assert.equal(await as(pki.client, cache), `${rsa} reused`, "the first identity still resumes");
  assert.equal(await as(pki.clientEc, cache), `${ec} reused`);
});
