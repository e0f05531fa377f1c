/**
 * A curl-like HTTPS request over hsmkit TLS: Node's http client on a TlsSocket.
 * The CLI (`hsmkit curl`) is a thin layer over {@link curl}.
 */
import { type IncomingMessage, request } from "node:http";
import type { Writable } from "node:stream";
import { TimeoutError } from "../errors.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import type { TlsError } from "../tls/alert.ts";
import { type ConnectOptions, connect } from "../tls/client.ts";
import type { TlsSocket } from "../tls/conn.ts";

/** A request as curl describes one. */
export interface CurlRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** CA certificates (PEM) to trust; default: the system store. */
  ca?: string;
  /** Client certificate chain (PEM) and its key, for mutual TLS. */
  cert?: string;
  key?: PrivateKeyHandle;
  minVersion?: ConnectOptions["minVersion"];
  maxVersion?: ConnectOptions["maxVersion"];
  ciphers?: string;
  servername?: string;
  /** Skip server certificate verification (-k). */
  insecure?: boolean;
  /** Certificate profile the server chain must meet (default strict). */
  profile?: ConnectOptions["profile"];
  /** Where the response body goes. */
  output: Writable;
  /** Receives -v lines (without the trailing newline). */
  log?: (line: string) => void;
  /** Whole-exchange timeout in milliseconds (default 60 s). */
  timeout?: number;
}

/** The outcome of a completed exchange. */
export interface CurlResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  protocol: string | null;
  cipher: string | undefined;
}

function describeTls(sock: TlsSocket, log: (line: string) => void, insecure: boolean): void {
  log(`* TLS connection using ${sock.getProtocol()} / ${sock.getCipher()?.standardName}`);
  const cert = sock.getPeerCertificate();
  if ("subject" in cert) {
    log("* Server certificate:");
    log(
      `*  subject: ${Object.entries(cert.subject)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")}`,
    );
    log(
      `*  issuer: ${Object.entries(cert.issuer)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")}`,
    );
    log(`*  start date: ${cert.valid_from}`);
    log(`*  expire date: ${cert.valid_to}`);
    if (cert.subjectaltname) log(`*  subjectAltName: ${cert.subjectaltname}`);
    log(`*  SHA-256 fingerprint: ${cert.fingerprint256}`);
  }
  log(insecure ? "* SSL certificate verify result: skipped (-k)" : "* SSL certificate verify ok.");
}

/** The TLS connection to the URL's host and port, with the -v lines about it. */
function connectTo(req: CurlRequest, url: URL, log: (line: string) => void): TlsSocket {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port ? Number(url.port) : 443;
  const sock = connect({
    host,
    port,
    servername: req.servername ?? host,
    ca: req.ca,
    cert: req.cert,
    key: req.key,
    minVersion: req.minVersion,
    maxVersion: req.maxVersion,
    ciphers: req.ciphers,
    rejectUnauthorized: !req.insecure,
    profile: req.profile,
    ALPNProtocols: ["http/1.1"],
  });
  log(`*   Trying ${host}:${port}...`);
  sock.transport.once("connect", () => log(`* Connected to ${url.hostname} port ${port}`));
  return sock;
}

/** The headers sent: Host, User-Agent and Accept (the caller's override them), Content-Length. */
function requestHeaders(req: CurlRequest, url: URL): Record<string, string> {
  const headers: Record<string, string> = {
    Host: url.host,
    "User-Agent": "hsmkit-curl/0.1",
    Accept: "*/*",
    ...req.headers,
  };
  if (req.body) headers["Content-Length"] = String(req.body.length);
  return headers;
}

/** Logs the status line and headers, streams the body to `output`, resolves when it ends. */
function receive(
  res: IncomingMessage,
  sock: TlsSocket,
  output: Writable,
  log: (line: string) => void,
): Promise<CurlResponse> {
  log(`< HTTP/${res.httpVersion} ${res.statusCode} ${res.statusMessage}`);
  for (let i = 0; i < res.rawHeaders.length; i += 2) log(`< ${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
  return new Promise((resolve, reject) => {
    res.pipe(output, { end: false });
    res.on("error", reject);
    res.on("end", () =>
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        protocol: sock.getProtocol(),
        cipher: sock.getCipher()?.standardName,
      }),
    );
  });
}

/** Performs one HTTPS exchange. Rejects with the TLS or network error on failure. */
export function curl(req: CurlRequest): Promise<CurlResponse> {
  const url = new URL(req.url);
  if (url.protocol !== "https:") throw new Error(`unsupported URL scheme '${url.protocol}' (only https)`);
  const log = req.log ?? (() => {});
  return new Promise<CurlResponse>((resolve, reject) => {
    let sock: TlsSocket;
    try {
      sock = connectTo(req, url, log);
    } catch (err) {
      reject(err);
      return;
    }
    const method = req.method ?? (req.body ? "POST" : "GET");
    const path = `${url.pathname}${url.search}`;
    const headers = requestHeaders(req, url);
    // http.request hands `timeout` to net.createConnection, which arms it; ours must arm it itself.
    const timeoutMs = req.timeout ?? 60_000;
    sock.setTimeout(timeoutMs);
    const r = request({ method, path, headers, createConnection: () => sock, timeout: timeoutMs });
    let tlsError: TlsError | undefined;
    sock.once("error", (err: TlsError) => {
      tlsError = err;
    });
    r.on("timeout", () =>
      r.destroy(new TimeoutError(`operation timed out after ${timeoutMs} ms`, timeoutMs)),
    );
    r.on("error", (err) => reject(tlsError ?? err));
    r.on("response", (res) => receive(res, sock, req.output, log).then(resolve, reject));
    sock.once("secureConnect", () => {
      describeTls(sock, log, req.insecure === true);
      log(`> ${method} ${path} HTTP/1.1`);
      for (const [k, v] of Object.entries(headers)) log(`> ${k}: ${v}`);
    });
    r.end(req.body);
  });
}
