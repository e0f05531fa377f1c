/**
 * An hsmkit TLS server in the test process for interop tests: echoes "echo:" + what it
 * receives, records every accepted socket and every handshake failure, and closes
 * (sockets included) when asked.
 */

import type { TlsSocket } from "../../src/tls/conn.ts";
import { createServer, type TlsServer, type TlsServerOptions } from "../../src/tls/server.ts";

/** A running echo server. */
export interface EchoServer {
  server: TlsServer;
  port: number;
  /** Server-side sockets whose handshake completed, in order. */
  accepted: TlsSocket[];
  /** Messages of failed handshakes, in order. */
  failures: string[];
  close(): Promise<void>;
}

/** Starts an echo server on 127.0.0.1 with an ephemeral port. */
export async function startEchoServer(options: TlsServerOptions): Promise<EchoServer> {
  const server = createServer(options);
  const accepted: TlsSocket[] = [];
  const failures: string[] = [];
  server.on("secureConnection", (s: TlsSocket) => {
    accepted.push(s);
    s.on("error", () => {});
    s.on("data", (d: Buffer) => s.write(`echo:${d}`));
  });
  server.on("tlsClientError", (err: Error) => failures.push(err.message));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    accepted,
    failures,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of server.sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** OpenSSL's name for a suite at a version: TLS 1.1 needs security level 0 in OpenSSL 3. */
export function opensslCipherArg(opensslName: string, version: "1.1" | "1.2"): string {
  return version === "1.1" ? `${opensslName}:@SECLEVEL=0` : opensslName;
}
