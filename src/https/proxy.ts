/**
 * The reverse proxy behind `hsmkit serve --upstream`: each request goes to a plain HTTP
 * upstream with the TLS client's identity in X-Client-Subject and X-Client-Verify. Any
 * copy of those headers the client sent is removed first (including look-alikes that a
 * CGI-style upstream would read as the same name), as are hop-by-hop headers.
 */
import { Agent, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { ConfigError } from "../errors.ts";
import type { TlsSocket } from "../tls/conn.ts";
import { certificateFromDer } from "../tls/verify_peer.ts";
import { formatNameRfc4514 } from "../tls/x509/rfc4514.ts";

/** The identity headers the proxy sets; a client can never supply them. */
const IDENTITY_HEADERS: readonly string[] = ["x-client-subject", "x-client-verify"];

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** What the server knows about the TLS client behind a request. */
export interface ClientIdentity {
  /**
   * The verified client certificate's subject as an ASCII-only RFC 4514 string (last RDN
   * first, like nginx's $ssl_client_s_dn; see formatNameRfc4514), undefined when not verified.
   */
  subject: string | undefined;
  /** SUCCESS, NONE (no certificate) or FAILED:reason, as nginx's $ssl_client_verify. */
  verify: string;
}

/** Escapes free text (a verification failure reason) for an HTTP header: a backslash and bytes outside printable ASCII become \\HH. */
function headerSafe(text: string): string {
  let out = "";
  for (const b of Buffer.from(text, "utf8")) {
    out +=
      b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** The identity of the TLS client on this socket. */
export function clientIdentity(socket: Socket | TlsSocket): ClientIdentity {
  const tls = socket as TlsSocket;
  const chain = typeof tls.getPeerCertificateChain === "function" ? tls.getPeerCertificateChain() : [];
  if (chain.length === 0) return { subject: undefined, verify: "NONE" };
  if (!tls.authorized)
    return { subject: undefined, verify: `FAILED:${tls.authorizationError ?? "unverified"}` };
  let subject: string;
  try {
    subject = formatNameRfc4514(certificateFromDer(chain[0]!).subjectDer);
  } catch {
    return { subject: undefined, verify: "FAILED:unparsable certificate" };
  }
  return { subject, verify: "SUCCESS" };
}

/** True for a header name that names (or a CGI gateway would read as) one of ours. */
function isIdentityHeader(name: string): boolean {
  return IDENTITY_HEADERS.includes(name.toLowerCase().replaceAll("_", "-"));
}

/** The request headers to forward: end-to-end ones only, identity headers replaced by ours. */
function forwardedHeaders(req: IncomingMessage, identity: ClientIdentity): [string, string][] {
  const connectionTokens = new Set(
    (req.headers.connection ?? "")
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: [string, string][] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || connectionTokens.has(lower) || isIdentityHeader(name)) continue;
    if (lower === "x-forwarded-for" || lower === "x-forwarded-proto") continue;
    out.push([name, raw[i + 1]!]);
  }
  const previous = req.headers["x-forwarded-for"];
  const remote = req.socket.remoteAddress ?? "unknown";
  out.push(["X-Forwarded-For", previous ? `${previous}, ${remote}` : remote]);
  out.push(["X-Forwarded-Proto", "https"]);
  if (identity.subject !== undefined) out.push(["X-Client-Subject", identity.subject]);
  out.push(["X-Client-Verify", headerSafe(identity.verify)]);
  return out;
}

/** Response headers to pass back: everything but hop-by-hop ones. */
function returnedHeaders(res: IncomingMessage): [string, string][] {
  const out: [string, string][] = [];
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push([raw[i]!, raw[i + 1]!]);
  }
  return out;
}

/** Parses the `upstream` option: http://HOST:PORT with an optional base path. */
export function parseUpstream(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError((name) => `${name("upstream")} '${text}' is not a URL (expected http://HOST:PORT)`);
  }
  if (url.protocol !== "http:")
    throw new ConfigError((name) => `${name("upstream")} must be an http:// URL, got '${url.protocol}'`);
  if (url.username || url.password || url.search || url.hash)
    throw new ConfigError((name) => `${name("upstream")} takes no credentials, query or fragment`);
  return url;
}

function gatewayError(res: ServerResponse, status: 502 | 504): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = status === 502 ? "502 Bad Gateway\n" : "504 Gateway Timeout\n";
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": body.length });
  res.end(body);
}

/** A request handler forwarding to the upstream; close the returned agent on shutdown. */
export function reverseProxy(
  upstream: URL,
  timeoutMs = 60_000,
): { handler: (req: IncomingMessage, res: ServerResponse) => void; agent: Agent } {
  const agent = new Agent({ keepAlive: true, maxSockets: 128 });
  const base = upstream.pathname.replace(/\/+$/, "");
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const identity = clientIdentity(req.socket);
    const headers = forwardedHeaders(req, identity);
    // Raw header lists get no automatic Host; HTTP/1.0 clients may not have sent one.
    if (req.headers.host === undefined) headers.unshift(["Host", upstream.host]);
    const out = request({
      agent,
      host: upstream.hostname.replace(/^\[|\]$/g, ""),
      port: upstream.port || 80,
      method: req.method,
      path: base + (req.url ?? "/"),
      headers: headers.flat(),
      timeout: timeoutMs,
    });
    out.on("response", (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, returnedHeaders(up).flat());
      up.pipe(res);
      up.on("error", () => res.destroy());
    });
    out.on("timeout", () => {
      out.destroy();
      gatewayError(res, 504);
    });
    out.on("error", () => gatewayError(res, 502));
    res.on("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  };
  return { handler, agent };
}
