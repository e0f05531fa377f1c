/**
 * TLS 1.3 alerts go under the sender's current traffic keys (RFC 8446 §5, §6): hsmkit's client
 * and server, each refusing the other after the ServerHello, and the peer reading the alert
 * for what it is. A TLS 1.3 endpoint that has installed handshake keys refuses records in
 * clear, so an alert sent in clear would reach the peer as an unexpected_message of its own.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { TlsError } from "../../src/tls/alert.ts";
import { connect } from "../../src/tls/client.ts";
import { createServer, type TlsServer, type TlsServerOptions } from "../../src/tls/server.ts";
import { makePki, type Pki } from "../helpers/pki.ts";

let pki: Pki;
let serverKey: PrivateKeyHandle;
const servers: TlsServer[] = [];

before(async () => {
  pki = await makePki();
  serverKey = await openKey(pki.server.keyPath);
});

after(async () => {
  for (const server of servers) for (const s of server.sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  await serverKey.close();
});

/** A TLS 1.3 server; resolves its port and the first handshake failure it reports. */
async function start(options: Partial<TlsServerOptions> = {}) {
  const server = createServer({ cert: pki.server.chainPem, key: serverKey, minVersion: "1.3", ...options });
  servers.push(server);
  const failure = new Promise<Error>((resolve) => server.once("tlsClientError", resolve));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as { port: number }).port, failure };
}

/**
 * Connects hsmkit's TLS 1.3 client; resolves with the error that ends its connection (a TLS 1.3
 * client has finished its side before the server judges its certificate, so that error may
 * come after 'secureConnect').
 */
function clientFailure(port: number, ca: string): Promise<Error> {
  const socket = connect({ host: "127.0.0.1", port, servername: "localhost", ca, minVersion: "1.3" });
  return new Promise((resolve) => {
    socket.once("error", resolve);
    socket.once("close", () => resolve(new Error("closed without an error")));
  });
}

test("the client refuses the server's certificate: its alert is protected and the server reads it", async () => {
  const { port, failure } = await start();
  const clientError = await clientFailure(port, pki.otherCa.certPem);
  assert.ok(clientError instanceof TlsError && clientError.kind === "certificate", String(clientError));
  const serverError = await failure;
  assert.ok(serverError instanceof TlsError, String(serverError));
  assert.equal(serverError.kind, "peer-alert", serverError.message);
  assert.equal(serverError.alert, clientError.alert);
  assert.match(serverError.message, /^client sent alert /);
});

test("the server refuses a client without a certificate: its alert is protected and the client reads it", async () => {
  const { port, failure } = await start({ clientCa: pki.root.certPem });
  const clientError = await clientFailure(port, pki.root.certPem);
  const serverError = await failure;
  assert.ok(serverError instanceof TlsError && serverError.kind === "certificate", String(serverError));
  assert.ok(clientError instanceof TlsError, String(clientError));
  assert.equal(clientError.kind, "peer-alert", clientError.message);
  assert.match(clientError.message, /^server sent alert certificate_required/);
});
