/**
 * TLS 1.3 KeyUpdate against `openssl s_server`: when the server updates its keys and asks us
 * to update ours ("K" on s_server's console), data keeps flowing both ways under the new keys.
 * A server that floods KeyUpdates with no data between them is cut off.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { connect } from "../../src/tls/client.ts";
import { waitForOutput } from "../helpers/net.ts";
import { opensslServer } from "../helpers/peers.ts";
import { makePki } from "../helpers/pki.ts";

/** `openssl s_server` on TLS 1.3 and our client connecting to it. */
async function connectToOpensslServer13() {
  const pki = await makePki();
  const peer = await opensslServer({
    cert: pki.server.certPath,
    key: pki.server.keyPath,
    chain: pki.intermediate.certPath,
    tls: "1.3",
  });
  const sock = connect({
    host: "127.0.0.1",
    port: peer.port,
    servername: "localhost",
    ca: readFileSync(pki.caFile, "utf8"),
  });
  return { peer, sock };
}

/** KeyUpdates s_server has sent: it reports each as a completed SSL_do_handshake. */
function keyUpdatesDone(output: string): number {
  return output.match(/SSL_do_handshake -> 1/g)?.length ?? 0;
}

test("40 server KeyUpdates (update_requested) with data between are followed, and both directions keep working", async () => {
  const { peer, sock } = await connectToOpensslServer13();
  try {
    let received = "";
    sock.on("data", (c: Buffer) => {
      received += c.toString();
    });
    // An error after the handshake would otherwise pass unseen (the connect wait's listener takes it).
    let failure = "";
    sock.on("error", (e: Error) => {
      failure = e.message;
    });
    await new Promise<void>((resolve, reject) => {
      sock.once("secureConnect", resolve);
      sock.once("error", reject);
    });
    sock.write("before update\n");
    await waitForOutput(peer.process, /before update/, 5000);
    // More rounds than the limit on records without data (32): data between updates resets it.
    for (let round = 1; round <= 40; round++) {
      peer.process.write("K\n"); // s_server: send KeyUpdate with update_requested
      // The data line must reach s_server in a read of its own (a "K" line read together with it
      // swallows it): wait until s_server reports this round's update done.
      const updated = Date.now() + 5000;
      while (keyUpdatesDone(peer.output()) < round && Date.now() < updated)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(keyUpdatesDone(peer.output()), round, peer.output().slice(-400));
      peer.process.write(`server says ${round}\n`);
      const deadline = Date.now() + 5000;
      while (!received.includes(`server says ${round}\n`) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      assert.ok(
        received.includes(`server says ${round}\n`),
        `round ${round}: ${failure} ${received.slice(-200)}`,
      );
      sock.write(`client says ${round}\n`);
      await waitForOutput(peer.process, new RegExp(`client says ${round}\n`), 5000);
    }
    // s_server reports each KeyUpdate it sent as a completed SSL_do_handshake.
    assert.ok(keyUpdatesDone(peer.output()) >= 40, peer.output().slice(-400));
  } finally {
    sock.destroy();
    await peer.stop();
  }
});

test("a server that floods KeyUpdates without sending data is cut off with unexpected_message", async () => {
  const { peer, sock } = await connectToOpensslServer13();
  try {
    const failed = new Promise<Error>((resolve) => sock.once("error", resolve));
    await new Promise<void>((resolve, reject) => {
      sock.once("secureConnect", resolve);
      sock.once("error", reject);
    });
    let error: Error | undefined;
    void failed.then((e) => {
      error = e;
    });
    // Each "K" must reach s_server in its own read, so the commands are paced.
    for (let i = 0; i < 40 && !error; i++) {
      peer.process.write("K\n");
      await new Promise((r) => setTimeout(r, 40));
    }
    const err = await Promise.race([failed, new Promise<undefined>((r) => setTimeout(r, 5000))]);
    assert.ok(err, "the client gave up on the flood");
    assert.match(err.message, /too many KeyUpdate messages/);
    await waitForOutput(peer.process, /unexpected message/i, 5000);
  } finally {
    sock.destroy();
    await peer.stop();
  }
});
