/**
 * TLS 1.3 resumption from tickets: hsmkit's client keeps the tickets `openssl s_server`
 * issues and resumes with them (s_server reports "Reused"), also across a HelloRetryRequest,
 * and the PSK binder it sends is one OpenSSL accepts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { connect } from "../../src/tls/client.ts";
import { ClientSessionCache } from "../../src/tls/psk.ts";
import { opensslServer, type Peer } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";

let pki: Pki;
const peers: Peer[] = [];

before(async () => {
  pki = await makePki();
});
after(async () => {
  for (const p of peers) await p.stop();
});

/** One HTTP/1.0 GET over hsmkit TLS; returns s_server's "New, ..." or "Reused, ..." line. */
function session(port: number, cache: ClientSessionCache | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: readFileSync(pki.caFile, "utf8"),
      sessionCache: cache,
    });
    let body = "";
    sock.on("secureConnect", () => sock.write("GET / HTTP/1.0\r\n\r\n"));
    sock.on("data", (c: Buffer) => {
      body += c.toString();
    });
    sock.on("end", () => resolve(body.split("\n").find((l) => /^(New|Reused), /.test(l)) ?? body));
    sock.on("error", reject);
  });
}

async function server(extra: string[] = []): Promise<number> {
  const p = await opensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediate.certPath,
    tls: "1.3",
    www: true,
    extraArgs: extra,
  });
  peers.push(p);
  return p.port;
}

test("the second and third connections resume with tickets", async () => {
  const port = await server();
  const cache = new ClientSessionCache();
  assert.match(await session(port, cache), /^New, TLSv1\.3/);
  assert.match(await session(port, cache), /^Reused, TLSv1\.3/);
  assert.match(await session(port, cache), /^Reused, TLSv1\.3/);
});

test("without a cache every connection is a full handshake", async () => {
  const port = await server();
  assert.match(await session(port, undefined), /^New, /);
  assert.match(await session(port, undefined), /^New, /);
});

test("resumption survives a HelloRetryRequest (the binder is recomputed over the new transcript)", async () => {
  const port = await server(["-groups", "P-256"]);
  const cache = new ClientSessionCache();
  assert.match(await session(port, cache), /^New, /);
  assert.match(await session(port, cache), /^Reused, /);
});

test("a ticket from one server is not offered to another", async () => {
  const a = await server();
  const b = await server();
  const cache = new ClientSessionCache();
  assert.match(await session(a, cache), /^New, /);
  assert.match(await session(b, cache), /^New, /);
  assert.match(await session(a, cache), /^Reused, /);
});

/** Like `session`, with explicit trust settings; resolves with the line or the error message. */
function attempt(
  port: number,
  cache: ClientSessionCache,
  ca: string,
  rejectUnauthorized: boolean,
): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca,
      rejectUnauthorized,
      sessionCache: cache,
    });
    let body = "";
    sock.on("secureConnect", () => sock.write("GET / HTTP/1.0\r\n\r\n"));
    sock.on("data", (c: Buffer) => {
      body += c.toString();
    });
    sock.on("end", () =>
      resolve(
        `${sock.authorized ? "authorized" : "unauthorized"} ${body.split("\n").find((l) => /^(New|Reused), /.test(l))}`,
      ),
    );
    sock.on("error", (e: Error) => resolve(`error: ${e.message}`));
  });
}

test("a resumed session is only as trusted as its chain is now: a cache shared with other trust settings grants nothing", async () => {
  const port = await server();
  const cache = new ClientSessionCache();
  const good = readFileSync(pki.caFile, "utf8");
  const wrong = pki.otherCa.certPem;
  assert.match(await attempt(port, cache, good, true), /^authorized New, /);
  // The ticket from the trusted session, offered by a connection that trusts another CA: refused.
  assert.match(await attempt(port, cache, wrong, true), /^error: .*(issuer|trust|root)/i);
});

test("no ticket is kept from a session whose server was not authenticated (-k)", async () => {
  const port = await server();
  const cache = new ClientSessionCache();
  const wrong = pki.otherCa.certPem;
  assert.match(await attempt(port, cache, wrong, false), /^unauthorized New, /);
  assert.match(await attempt(port, cache, wrong, false), /^unauthorized New, /);
});
