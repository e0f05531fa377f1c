/**
 * TLS 1.3 KeyUpdate against `openssl s_server`: when the server updates its keys and asks us
 * to update ours ("K" on s_server's console), data keeps flowing both ways under the new keys.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { connect } from "../../src/tls/client.ts";
import { waitForOutput } from "../helpers/net.ts";
import { opensslServer } from "../helpers/peers.ts";
import { makePki } from "../helpers/pki.ts";

test("the server's KeyUpdate (update_requested) is followed, and both directions keep working", async () => {
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
  try {
    let received = "";
    sock.on("data", (c: Buffer) => {
      received += c.toString();
    });
    await new Promise<void>((resolve, reject) => {
      sock.once("secureConnect", resolve);
      sock.once("error", reject);
    });
    sock.write("before update\n");
    await waitForOutput(peer.process, /before update/, 5000);
    for (let round = 1; round <= 3; round++) {
      peer.process.write("K\n"); // s_server: send KeyUpdate with update_requested
      await waitForOutput(peer.process, new RegExp(`(SSL_do_handshake -> 1[\\s\\S]*){${round}}`), 5000);
      peer.process.write(`server says ${round}\n`);
      const deadline = Date.now() + 5000;
      while (!received.includes(`server says ${round}`) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      assert.match(received, new RegExp(`server says ${round}`));
      sock.write(`client says ${round}\n`);
      await waitForOutput(peer.process, new RegExp(`client says ${round}`), 5000);
    }
  } finally {
    sock.destroy();
    await peer.stop();
  }
});
