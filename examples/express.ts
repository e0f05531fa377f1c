/**
 * A Node web app behind a private key that never leaves its token (or KMS, or file), with
 * mutual TLS: hsmkit's TLS server feeds Node's own http server, so any request handler
 * runs unchanged.
 *
 * Express is not a dependency of hsmkit, so this example uses a plain Node request
 * handler. An Express app is a request handler of exactly this shape: with Express
 * installed, `const app = express(); app.get("/whoami", ...)` drops in where `app` is
 * passed to createHttpsServer below, and `req.socket.getPeerCertificate()` works in its
 * routes the same way.
 *
 *   node --import tsx examples/express.ts --cert server.pem \
 *     --key 'pkcs11:token=web;object=server;type=private?pin-source=/run/pin' \
 *     --client-ca ca.crt --listen 127.0.0.1:8443
 */

import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createHttpsServer } from "../src/https/serve.ts";
import { openKey } from "../src/keys/index.ts";
import type { TlsSocket } from "../src/tls/conn.ts";

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

/** The app: a tiny router, as an Express app would be. */
export function app(req: IncomingMessage, res: ServerResponse): void {
  const socket = req.socket as unknown as TlsSocket;
  const url = new URL(req.url ?? "/", "https://app.invalid");
  if (req.method === "GET" && url.pathname === "/whoami") {
    const peer = socket.getPeerCertificate();
    json(res, 200, {
      authorized: socket.authorized,
      subject: "subject" in peer ? peer.subject : null,
      protocol: socket.getProtocol(),
      cipher: socket.getCipher()?.standardName,
    });
  } else if (req.method === "GET" && url.pathname === "/hello") {
    json(res, 200, { hello: url.searchParams.get("name") ?? "world" });
  } else {
    json(res, 404, { error: "not found" });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cert: { type: "string" },
      key: { type: "string" },
      "client-ca": { type: "string" },
      listen: { type: "string", default: "127.0.0.1:8443" },
    },
  });
  if (!values.cert || !values.key)
    throw new Error("usage: express.ts --cert CHAIN.pem --key KEYREF [--client-ca CA.pem]");
  const [host, port] = [
    values.listen.slice(0, values.listen.lastIndexOf(":")),
    Number(values.listen.split(":").pop()),
  ];
  const key = await openKey(values.key);
  const server = createHttpsServer(
    {
      cert: readFileSync(values.cert, "utf8"),
      key,
      clientCa: values["client-ca"] ? readFileSync(values["client-ca"], "utf8") : undefined,
    },
    app,
  );
  const address = await server.listen(port, host);
  process.stdout.write(`listening on ${address.address}:${address.port}\n`);
  process.once("SIGTERM", () => {
    void server.close().finally(() => key.close());
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`express example: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
