/**
 * fetch() over hsmkit TLS: undici's Agent with hsmkitConnector, the client key in a SoftHSM2
 * token, against Node's https server requiring client certificates; also Node's global fetch
 * given the same dispatcher.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import type { TLSSocket } from "node:tls";
import { Agent, fetch as undiciFetch } from "undici";
import { hsmkitConnector } from "../../src/https/undici.ts";
import { type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

let pki: Pki;
let id: TokenIdentity;
let server: Server;
let port: number;

before(async () => {
  pki = await makePki();
  id = await tokenIdentity(pki, "ec-p256", "fetch-client");
  server = createServer(
    {
      cert: readFileSync(pki.server.chainPath),
      key: readFileSync(pki.server.keyPath),
      ca: readFileSync(pki.caFile),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const sock = req.socket as TLSSocket;
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          client: sock.getPeerCertificate().subject?.CN,
          path: req.url,
          protocol: sock.getProtocol(),
        }),
      );
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server?.close();
  await id?.handle.close();
});

/** undici types its connector as returning net.Socket; a TlsSocket is a Duplex with the same face. */
function agent(): Agent {
  return new Agent({
    connect: hsmkitConnector({
      ca: readFileSync(pki.caFile, "utf8"),
      cert: id.cert.chainPem,
      key: id.handle,
    }) as never,
  });
}

test("undici fetch with a token key: JSON back, the server saw the client certificate", async () => {
  const dispatcher = agent();
  try {
    for (let i = 0; i < 3; i++) {
      const res = await undiciFetch(`https://localhost:${port}/item/${i}`, { dispatcher });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { client: "fetch-client", path: `/item/${i}`, protocol: "TLSv1.3" });
    }
  } finally {
    await dispatcher.close();
  }
});

test("Node's global fetch takes the same dispatcher", async () => {
  const dispatcher = agent();
  try {
    const res = await fetch(`https://localhost:${port}/global`, { dispatcher } as RequestInit);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { client: string }).client, "fetch-client");
  } finally {
    await dispatcher.close();
  }
});

test("a server outside the trusted CAs makes fetch fail with the verification reason", async () => {
  const dispatcher = new Agent({
    connect: hsmkitConnector({ ca: pki.otherCa.certPem, cert: id.cert.chainPem, key: id.handle }) as never,
  });
  try {
    await assert.rejects(undiciFetch(`https://localhost:${port}/`, { dispatcher }), (err: Error) => {
      const cause = (err as { cause?: Error }).cause;
      return /issuer|trust|root/i.test(`${err.message} ${cause?.message}`);
    });
  } finally {
    await dispatcher.close();
  }
});
