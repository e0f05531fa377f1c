/**
 * Node's own https server requiring client certificates from the test PKI, answering every
 * request with JSON that tells what it saw: the verified client's CN, the TCP connection
 * (remote port), whether the TLS session was resumed, the protocol and the path. Clients under
 * test prove mutual TLS, keep-alive and resumption by what comes back.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Pki } from "./pki.ts";

/** What the server saw of one request. */
export interface SeenRequest {
  /** The verified client certificate's subject CN. */
  client: string;
  /** The client's TCP port: equal for two requests on one connection. */
  remotePort: number | undefined;
  /** Whether the TLS session was resumed. */
  reused: boolean;
  protocol: string | null;
  path: string | undefined;
}

/** A running mutual-TLS server; `close()` stops it and ends kept-alive connections. */
export interface MutualTlsServer {
  /** `https://localhost:PORT` (the server certificate names localhost and 127.0.0.1). */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 with an ephemeral port, its certificate from `pki.server`. */
export async function mutualTlsServer(pki: Pki): Promise<MutualTlsServer> {
  const server = createServer(
    {
      cert: readFileSync(pki.server.chainPath),
      key: readFileSync(pki.server.keyPath),
      ca: readFileSync(pki.caFile),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const sock = req.socket as TLSSocket;
      const seen: SeenRequest = {
        client: String(sock.getPeerCertificate().subject?.CN),
        remotePort: sock.remotePort,
        reused: sock.isSessionReused(),
        protocol: sock.getProtocol(),
        path: req.url,
      };
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(seen));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://localhost:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
