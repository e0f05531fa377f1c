/**
 * A TLS 1.2 peer that asks for renegotiation: hsmkit's client refuses each HelloRequest
 * with a no_renegotiation warning and carries on, but a peer that keeps asking with no
 * data between is cut off, since every request costs a reply. The misbehaving server is
 * hsmkit's own, writing HelloRequest through its handshake IO after the handshake.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { connect } from "../../src/tls/client.ts";
import type { TlsSocket } from "../../src/tls/conn.ts";
import { HandshakeType } from "../../src/tls/constants.ts";
import { createServer, type TlsServer } from "../../src/tls/server.ts";
import { makePki, type Pki } from "../helpers/pki.ts";

let pki: Pki;
let key: PrivateKeyHandle;
let server: TlsServer;
let port: number;
/** What the server does with each connection once its handshake is done. */
let behave: (s: TlsSocket) => Promise<void> = async () => {};

before(async () => {
  pki = await makePki();
  key = await openKey(pki.server.keyPath);
  server = createServer({ cert: pki.server.chainPem, key, maxVersion: "1.2" });
  server.on("secureConnection", (s: TlsSocket) => {
    s.on("error", () => {});
    void behave(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  for (const s of server.sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  await key.close();
});

/** Connects hsmkit's client; resolves with what it received and how it ended. */
function client(): Promise<{ received: string; error: Error | undefined }> {
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port, servername: "localhost", ca: pki.root.certPem });
    let received = "";
    sock.on("data", (d: Buffer) => {
      received += d.toString();
    });
    sock.on("secureConnect", () => sock.write("hello"));
    sock.on("end", () => resolve({ received, error: undefined }));
    sock.on("error", (error: Error) => resolve({ received, error }));
  });
}

/** The server's side: HelloRequest `count` times, then, if it still can, an answer. */
function requestRenegotiation(count: number) {
  return async (s: TlsSocket) => {
    await new Promise((r) => s.once("data", r));
    for (let i = 0; i < count; i++) s.writeMessage(HandshakeType.hello_request, Buffer.alloc(0));
    await s.flush().catch(() => {});
    s.end("still talking");
  };
}

test("one HelloRequest: refused, and the connection carries on", async () => {
  behave = requestRenegotiation(1);
  const { received, error } = await client();
  assert.equal(error, undefined);
  assert.equal(received, "still talking");
});

test("HelloRequest after HelloRequest with no data between: cut off with unexpected_message", async () => {
  behave = requestRenegotiation(40);
  const { received, error } = await client();
  assert.ok(error, "the client gave up");
  assert.match(error.message, /too many HelloRequest messages/);
  assert.equal(received, "");
});
