/**
 * A server that shares no cipher suite or TLS version with the client refuses its ClientHello
 * with a fatal alert; `hsmkit curl` then says so in one line, names what it offered and the
 * flags that could help (exit 35), and the library error names the API options.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { NegotiationError } from "../../src/tls/alert.ts";
import { connect } from "../../src/tls/client.ts";
import { hsmkit } from "../helpers/hsmkit.ts";
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

/** openssl s_server with the test PKI's RSA server, speaking only what `options` allow. */
async function serve(options: { tls: "1.1" | "1.2"; ciphers: string }): Promise<number> {
  const p = await opensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediate.certPath,
    www: true,
    ...options,
  });
  peers.push(p);
  return p.port;
}

/** The last line of stderr, which must be hsmkit's one-line error. */
function errorLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  assert.doesNotMatch(stderr, /\bat .*\.ts:\d+/, "no stack trace");
  return lines.at(-1)!;
}

test("hsmkit curl -v against a server with only an RSA key-exchange suite: says nothing is shared and what helps", async () => {
  const port = await serve({ tls: "1.2", ciphers: "AES128-SHA256" });
  const url = `https://localhost:${port}/`;
  const res = await hsmkit(["curl", url, "--cacert", pki.caFile, "-v"]);
  assert.equal(res.exitCode, 35, res.output);
  const line = errorLine(res.stderr);
  assert.match(
    line,
    /^hsmkit: TLS handshake failed: server sent alert handshake_failure: no cipher suite or TLS version in common/,
  );
  assert.match(line, /offered TLS 1\.2 to TLS 1\.3 with TLS_AES_128_GCM_SHA256,/);
  assert.match(line, /--ciphers/);
  assert.match(line, /--tls-max/);
  // The advice works: naming the suite connects.
  const ok = await hsmkit([
    "curl",
    url,
    "--cacert",
    pki.caFile,
    "--ciphers",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
  ]);
  assert.equal(ok.exitCode, 0, ok.output);
});

test("hsmkit curl against a TLS 1.1-only server: the same line, for the version", async () => {
  const port = await serve({ tls: "1.1", ciphers: "AES128-SHA" });
  const res = await hsmkit(["curl", `https://localhost:${port}/`, "--cacert", pki.caFile]);
  assert.equal(res.exitCode, 35, res.output);
  const line = errorLine(res.stderr);
  assert.match(line, /server sent alert protocol_version: no cipher suite or TLS version in common/);
  assert.match(line, /--tls-min/);
});

test("the library error is a NegotiationError naming the options", async () => {
  const port = await serve({ tls: "1.2", ciphers: "AES128-SHA256" });
  const sock = connect({ port, servername: "localhost", ca: readFileSync(pki.caFile, "utf8") });
  const err = await new Promise<Error>((resolve) => {
    sock.once("error", resolve);
    sock.once("secureConnect", () => resolve(new Error("handshake unexpectedly succeeded")));
  });
  assert.ok(err instanceof NegotiationError, String(err));
  assert.equal(err.offeredVersions, "TLS 1.2 to TLS 1.3");
  assert.ok(err.offeredSuites.includes("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
  assert.match(err.message, /`ciphers` option/);
  assert.match(err.message, /`minVersion`\/`maxVersion`/);
});
