/**
 * HsmkitAgent as an agent for the `https` module: https.get, https.request, axios
 * (`httpsAgent`) and got (`agent: { https }`) do mutual TLS with a SoftHSM2-held client key
 * against Node's https server requiring client certificates. Each client makes three
 * requests: the second rides the first's connection (keep-alive) and asks the server to close
 * it, so the third opens a new connection that resumes the TLS 1.3 session from its ticket.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { get, type RequestOptions, request } from "node:https";
import { after, before, test } from "node:test";
import axios from "axios";
import got from "got";
import { HsmkitAgent } from "../../src/https/agent.ts";
import { type TokenIdentity, tokenIdentity } from "../helpers/hsmkit.ts";
import { type MutualTlsServer, mutualTlsServer, type SeenRequest as Seen } from "../helpers/mtls-server.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { softHsm } from "../helpers/softhsm.ts";

softHsm();

let pki: Pki;
let id: TokenIdentity;
let server: MutualTlsServer;

before(async () => {
  pki = await makePki();
  id = await tokenIdentity(pki, "rsa2048", "agent-client");
  server = await mutualTlsServer(pki);
});

after(async () => {
  await server?.close();
  await id?.handle.close();
});

/** One GET through a client library; `close` asks for the connection to end after it. */
type Client = (agent: HsmkitAgent, url: string, close: boolean) => Promise<Seen>;

/** Reads a Node response as JSON. */
function nodeClient(send: (url: string, options: RequestOptions) => ReturnType<typeof get>): Client {
  return (agent, url, close) =>
    new Promise<Seen>((resolve, reject) => {
      const req = send(url, { agent, headers: close ? { connection: "close" } : {} });
      req.on("response", (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => resolve(JSON.parse(text) as Seen));
        res.on("error", reject);
      });
      req.on("error", reject);
    });
}

const CLIENTS: Record<string, Client> = {
  "https.get": nodeClient((url, options) => get(url, options)),
  "https.request": nodeClient((url, options) => request(url, { ...options, method: "GET" }).end()),
  "axios (httpsAgent)": async (agent, url, close) =>
    (await axios.get<Seen>(url, { httpsAgent: agent, headers: close ? { connection: "close" } : {} })).data,
  "got (agent.https)": (agent, url, close) =>
    got(url, {
      agent: { https: agent },
      headers: close ? { connection: "close" } : {},
      retry: { limit: 0 },
    }).json<Seen>(),
};

for (const [name, client] of Object.entries(CLIENTS)) {
  test(`${name} over HsmkitAgent: mutual TLS with a token key, keep-alive, then TLS 1.3 resumption`, async () => {
    const agent = new HsmkitAgent({
      ca: readFileSync(pki.caFile, "utf8"),
      cert: id.cert.chainPem,
      key: id.handle,
    });
    try {
      const first = await client(agent, `${server.url}/one`, false);
      const second = await client(agent, `${server.url}/two`, true);
      const third = await client(agent, `${server.url}/three`, false);
      for (const [seen, path] of [
        [first, "/one"],
        [second, "/two"],
        [third, "/three"],
      ] as const) {
        assert.equal(seen.client, "agent-client", "the server verified the token-held client certificate");
        assert.equal(seen.protocol, "TLSv1.3");
        assert.equal(seen.path, path);
      }
      assert.equal(second.remotePort, first.remotePort, "the second request reused the first connection");
      assert.equal(first.reused, false);
      assert.notEqual(third.remotePort, first.remotePort, "the third request opened a new connection");
      assert.equal(third.reused, true, "the new connection resumed the TLS 1.3 session");
    } finally {
      agent.destroy();
    }
  });
}
