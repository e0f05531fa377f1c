/**
 * fetch() over hsmkit TLS: undici's Agent with hsmkitConnector, the client key in a SoftHSM2
 * token, against Node's https server requiring client certificates; also Node's global fetch
 * given the same dispatcher.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { Agent, fetch as undiciFetch } from "undici";
import { hsmkitConnector } from "../../src/https/undici.ts";
import { type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { type MutualTlsServer, mutualTlsServer, type SeenRequest } from "../helpers/mtls-server.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

let pki: Pki;
let id: TokenIdentity;
let server: MutualTlsServer;

before(async () => {
  pki = await makePki();
  id = await tokenIdentity(pki, "ec-p256", "fetch-client");
  server = await mutualTlsServer(pki);
});

after(async () => {
  await server?.close();
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
      const res = await undiciFetch(`${server.url}/item/${i}`, { dispatcher });
      assert.equal(res.status, 200);
      const seen = (await res.json()) as SeenRequest;
      assert.deepEqual(
        { client: seen.client, path: seen.path, protocol: seen.protocol },
        { client: "fetch-client", path: `/item/${i}`, protocol: "TLSv1.3" },
      );
    }
  } finally {
    await dispatcher.close();
  }
});

test("Node's global fetch takes the same dispatcher", async () => {
  const dispatcher = agent();
  try {
    const res = await fetch(`${server.url}/global`, { dispatcher } as RequestInit);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as SeenRequest).client, "fetch-client");
  } finally {
    await dispatcher.close();
  }
});

test("a server outside the trusted CAs makes fetch fail with the verification reason", async () => {
  const dispatcher = new Agent({
    connect: hsmkitConnector({ ca: pki.otherCa.certPem, cert: id.cert.chainPem, key: id.handle }) as never,
  });
  try {
    await assert.rejects(undiciFetch(`${server.url}/`, { dispatcher }), (err: Error) => {
      const cause = (err as { cause?: Error }).cause;
      return /issuer|trust|root/i.test(`${err.message} ${cause?.message}`);
    });
  } finally {
    await dispatcher.close();
  }
});
