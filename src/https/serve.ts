/**
 * HTTPS on hsmkit TLS: Node's own http server, fed with TlsSockets whose handshakes the
 * key handle (file, token, KMS) signs and decrypts for. Any Node request handler runs
 * behind it unchanged (Express apps are request handlers). `startServe` adds what
 * `hsmkit serve` needs: static files or a reverse proxy, one log line per request and a
 * graceful stop.
 */
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type RequestListener,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../errors.ts";
import type { TlsSocket } from "../tls/conn.ts";
import { createServer as createTlsServer, type TlsServer, type TlsServerOptions } from "../tls/server.ts";
import { clientIdentity, parseUpstream, reverseProxy } from "./proxy.ts";
import { openRoot, staticFiles } from "./static.ts";

/**
 * Seconds a connection may go without reading or writing a byte before it is closed (as nginx's
 * send_timeout and client_body_timeout): a client that stops reading a large download otherwise
 * holds its read buffers, its queued records and a file handle for as long as it likes.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/**
 * Connections `hsmkit serve` keeps open at once (as nginx's worker_connections): each costs
 * memory (up to about 0.75 MiB while it downloads a large file), so past this bound a new
 * connection is closed as it is accepted instead of growing the process without limit.
 */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/** HTTP-level settings of an {@link HttpsServer}. */
export interface HttpSettings {
  /** Closes a connection idle this long, in milliseconds (default {@link DEFAULT_IDLE_TIMEOUT_MS}). */
  idleTimeoutMs?: number;
}

/** Node's http server running over hsmkit's TLS server. */
export class HttpsServer {
  /** The TLS server that accepts TCP connections and runs handshakes. */
  readonly tls: TlsServer;
  /** The http server that reads requests from established TlsSockets (it never listens itself). */
  readonly http: HttpServer;
  private closing = false;
  private readonly busy = new Map<TlsSocket, number>();

  constructor(options: TlsServerOptions, handler: RequestListener, settings: HttpSettings = {}) {
    this.tls = createTlsServer({ ALPNProtocols: ["http/1.1"], ...options });
    this.http = createHttpServer((req, res) => this.onRequest(req, res, handler));
    this.http.timeout = settings.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.tls.on("secureConnection", (socket: TlsSocket) => {
      if (this.closing) {
        socket.end();
        return;
      }
      this.http.emit("connection", socket);
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, handler: RequestListener): void {
    const socket = req.socket as unknown as TlsSocket;
    this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
    if (this.closing) res.setHeader("Connection", "close");
    res.once("close", () => {
      const left = (this.busy.get(socket) ?? 1) - 1;
      if (left > 0) this.busy.set(socket, left);
      else this.busy.delete(socket);
      if (this.closing && left <= 0) socket.end();
    });
    handler(req, res);
  }

  /** Starts listening; resolves with the bound address. */
  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.tls.once("error", onError);
      this.tls.listen(port, host, () => {
        this.tls.off("error", onError);
        resolve(this.tls.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops gracefully: no new connections, idle connections closed at once, requests in
   * flight allowed `graceMs` to finish (their connections then close), the rest cut.
   */
  close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.tls.close(() => resolve()));
    for (const socket of this.tls.sockets) {
      if (!this.busy.has(socket) && socket.getProtocol() !== null) socket.end();
    }
    const timer = setTimeout(() => {
      for (const socket of this.tls.sockets) socket.destroy();
    }, graceMs);
    timer.unref();
    return closed.finally(() => clearTimeout(timer));
  }
}

/** Creates an HTTPS server for any Node request handler (an Express app included). */
export function createHttpsServer(
  options: TlsServerOptions,
  handler: RequestListener,
  settings?: HttpSettings,
): HttpsServer {
  return new HttpsServer(options, handler, settings);
}

/** What `hsmkit serve` is asked to do. */
export interface ServeOptions {
  tls: TlsServerOptions;
  host: string;
  port: number;
  /** Serve files from this directory ... */
  root?: string;
  /** ... or forward to this http:// upstream. */
  upstream?: string;
  /** Receives one line per request. */
  log: (line: string) => void;
  /** Receives one line per failed handshake. */
  warn: (line: string) => void;
  /** See {@link HttpSettings.idleTimeoutMs}. */
  idleTimeoutMs?: number;
  /** Connections open at once; more are closed when accepted (default {@link DEFAULT_MAX_CONNECTIONS}). */
  maxConnections?: number;
}

/** A running `hsmkit serve`. */
export interface RunningServe {
  server: HttpsServer;
  address: AddressInfo;
  /** Graceful stop (see {@link HttpsServer.close}). */
  stop(graceMs?: number): Promise<void>;
}

function peerLabel(socket: { remoteAddress?: string; remotePort?: number }): string {
  const host = socket.remoteAddress ?? "-";
  return `${host.includes(":") ? `[${host}]` : host}:${socket.remotePort ?? "-"}`;
}

/** The access log line for a finished request. */
function accessLogLine(req: IncomingMessage, res: ServerResponse, startedAt: bigint): string {
  const socket = req.socket as unknown as TlsSocket;
  const ms = Number((process.hrtime.bigint() - startedAt) / 1_000_000n);
  const id = clientIdentity(socket);
  const length = res.getHeader("content-length") ?? "-";
  const requestLine = JSON.stringify(`${req.method} ${req.url} HTTP/${req.httpVersion}`);
  const tls = `${socket.getProtocol?.() ?? "-"} ${socket.getCipher?.()?.name ?? "-"}`;
  const status = res.writableFinished ? res.statusCode : `${res.statusCode}(aborted)`;
  return `${new Date().toISOString()} ${peerLabel(socket)} ${requestLine} ${status} ${length} ${ms}ms ${tls} verify=${id.verify.split(":")[0]} subject=${JSON.stringify(id.subject ?? "-")}`;
}

/** Starts `hsmkit serve`: static files or a reverse proxy, on hsmkit TLS. */
export async function startServe(options: ServeOptions): Promise<RunningServe> {
  if ((options.root === undefined) === (options.upstream === undefined))
    throw new ConfigError(
      (name) => `give exactly one of ${name("root", "DIR")} or ${name("upstream", "http://HOST:PORT")}`,
    );
  let handler: RequestListener;
  let cleanup = (): void => {};
  if (options.root !== undefined) {
    handler = staticFiles(await openRoot(options.root));
  } else {
    const proxy = reverseProxy(parseUpstream(options.upstream!));
    handler = proxy.handler;
    cleanup = () => proxy.agent.destroy();
  }
  const server = createHttpsServer(
    options.tls,
    (req, res) => {
      const startedAt = process.hrtime.bigint();
      res.once("close", () => options.log(accessLogLine(req, res, startedAt)));
      handler(req, res);
    },
    { idleTimeoutMs: options.idleTimeoutMs },
  );
  server.tls.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.tls.on("tlsClientError", (err: Error, socket: TlsSocket) => {
    options.warn(`${peerLabel(socket)} TLS handshake failed: ${err.message}`);
  });
  server.http.on("clientError", (err: Error, socket) => {
    options.warn(`${peerLabel(socket as unknown as TlsSocket)} bad HTTP request: ${err.message}`);
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  const address = await server.listen(options.port, options.host);
  return {
    server,
    address,
    stop: (graceMs?: number) => server.close(graceMs).finally(cleanup),
  };
}
