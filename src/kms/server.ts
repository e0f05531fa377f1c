/**
 * The KMS instance endpoint: `POST /` over HTTPS (Node's https with the instance's own
 * certificate), protobuf in and out. Each request is bounded (seconds to send its headers and
 * its body, 16 KiB of headers with a cap per header, 3 MiB of body), authenticated, and only
 * then given one of the in-flight slots (over the cap: Rejected.Throttling), so clients that
 * stall or fail authentication cannot crowd out real ones. Authenticated requests are audited
 * one by one, the entry committed before the reply is written, so anything a client saw
 * acknowledged survives a crash; refusals before authentication are audited in aggregate
 * (refusals.ts) so that a flood cannot fill the disk.
 */
import { createPrivateKey, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { PROTOBUF_CONTENT_TYPE } from "./auth.ts";
import { type KmsErrorCode, KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import { encodeMessage } from "./proto.ts";
import { RefusalTally } from "./refusals.ts";
import { type Authenticated, authenticate, checkBodyHash, claimedAccessKeyId } from "./request_auth.ts";
import { KmsService, type RequestContext } from "./service.ts";

/** The body limit of the protocol. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Default bound on the TLS handshake plus the request headers, and on the body after them. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;

/** Default interval between audit entries that summarise refused requests. */
export const DEFAULT_REFUSAL_FLUSH_MS = 60_000;

/**
 * Longest value accepted per header the server reads. An RSA-8192 signature is 1368 base64
 * characters; every other value is a date, a hash, a name or an id far under 256.
 */
const HEADER_LIMITS: Readonly<Record<string, number>> = {
  authorization: 2048,
  date: 64,
  "content-sha256": 64,
  "content-type": 128,
  "content-length": 20,
};
const KMS_HEADER_LIMIT = 256;

/** Options for {@link KmsServer.start}. */
export interface KmsServerOptions {
  readonly instance: KmsInstance;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /** Extra names for the server certificate (localhost and 127.0.0.1 are always there). */
  readonly hostnames?: readonly string[];
  /** Authenticated requests handled at once before Rejected.Throttling; default 256. */
  readonly maxInflight?: number;
  /** Default 3 MiB. */
  readonly maxBodyBytes?: number;
  /** Bytes of request line plus headers; default 16 KiB (larger gets HTTP 431). */
  readonly maxHeaderBytes?: number;
  /** Milliseconds for the TLS handshake, then again for the request headers; default 10 s. */
  readonly headersTimeoutMs?: number;
  /** Milliseconds for the body once the headers are in; default 10 s. */
  readonly bodyTimeoutMs?: number;
  /** Milliseconds between audit entries summarising refused requests; default 60 s. */
  readonly refusalFlushMs?: number;
  /** Milliseconds since the epoch; default Date.now (tests move the clock). */
  readonly now?: () => number;
  /** One line per request (no secrets); default none. */
  readonly log?: (line: string) => void;
}

/** An authenticated request on its way to an answer: what its audit entry and log line need. */
interface Exchange {
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly source: string;
  readonly started: number;
  readonly operation: string;
  /** The access point's id and what the service filled in (key, detail). */
  readonly ctx: RequestContext;
}

/** A running KMS endpoint. */
export class KmsServer {
  private inflight = 0;
  private readonly refusals = new RefusalTally();
  private readonly flushTimer: NodeJS.Timeout;

  private constructor(
    private readonly server: https.Server,
    private readonly options: KmsServerOptions,
    private readonly service: KmsService,
  ) {
    this.flushTimer = setInterval(
      () => void this.flushRefusals(),
      options.refusalFlushMs ?? DEFAULT_REFUSAL_FLUSH_MS,
    );
    this.flushTimer.unref();
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(options: KmsServerOptions): Promise<KmsServer> {
    const creds = await options.instance.serverCredentials(options.hostnames ?? []);
    const key = createPrivateKey({ key: creds.keyDer, format: "der", type: "pkcs8" });
    creds.keyDer.fill(0);
    const headersTimeout = options.headersTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
    const bodyTimeout = options.bodyTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
    const server = https.createServer({
      cert: creds.certChainPem,
      key: key.export({ type: "pkcs8", format: "pem" }),
      minVersion: "TLSv1.2",
      keepAliveTimeout: 30_000,
      // Node's defaults (120 s handshake, 300 s request) let idle connections pile up for minutes.
      handshakeTimeout: headersTimeout,
      headersTimeout,
      requestTimeout: headersTimeout + bodyTimeout,
      // The timeouts above are only as precise as this sweep (Node's default is 30 s).
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.min(headersTimeout, bodyTimeout) / 4)),
      maxHeaderSize: options.maxHeaderBytes ?? 16 * 1024,
    });
    const kms = new KmsServer(server, options, new KmsService(options.instance));
    server.on("request", (req: IncomingMessage, res: ServerResponse) => void kms.onRequest(req, res));
    server.on("tlsClientError", () => {}); // a bad handshake is the client's problem, not ours
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    // Walked now, the audit log does not make the first request wait (audit_walk.ts); a log that
    // is not whole is said at once, and requests that need it are refused as they come.
    options.instance.audit
      .walk()
      .catch((err: unknown) => options.log?.(`audit log at start: ${(err as Error).message}`));
    return kms;
  }

  /** The bound address. */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** `host:port` as clients configure it. */
  get endpoint(): string {
    const { host, port } = this.address;
    return `${host.includes(":") ? `[${host}]` : host}:${port}`;
  }

  /** Stops accepting, closes idle connections, waits for in-flight requests, audits pending refusals. */
  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    await this.flushRefusals();
  }

  private async flushRefusals(): Promise<void> {
    const events = this.refusals.drain();
    try {
      await Promise.all(events.map((e) => this.options.instance.audit.appendSoon(e)));
    } catch (err) {
      this.options.log?.(
        `audit append of ${events.length} refusal summaries failed: ${(err as Error).message}`,
      );
    }
    for (const e of events)
      this.options.log?.(
        `${new Date().toISOString()} ${e.source} ${e.actor} ${e.operation} ${e.outcome} ${e.detail}`,
      );
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const started = Date.now();
    const source = req.socket.remoteAddress ?? "";
    const headers = singleHeaders(req);
    let admitted: { who: Authenticated; body: Buffer };
    try {
      admitted = await this.admit(req, headers, source);
    } catch (err) {
      // Nothing is trusted yet: count it, answer, and drop the connection (no keep-alive for strangers).
      const error = this.serviceError(requestId, err, " before authentication");
      const claimedActor = headers ? claimedAccessKeyId(headers) : "";
      this.refusals.record({
        source,
        claimedActor,
        actorExists: claimedActor !== "" && (await this.knownAccessPoint(claimedActor)),
        claimedOperation: headers?.["x-kms-apiname"] ?? "",
        outcome: error.code,
      });
      res.setHeader("connection", "close");
      this.reply(res, requestId, error);
      return;
    }
    const { who, body } = admitted;
    const abandoned = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished)
        abandoned.abort(new KmsServiceError("Rejected.Throttling", "The client left before the answer."));
    });
    const ctx: RequestContext = {
      accessPoint: who.accessPoint,
      requestId,
      keyId: "",
      detail: "",
      abandoned: abandoned.signal,
    };
    const exchange: Exchange = { res, requestId, source, started, operation: who.operation, ctx };
    // The slot is only ever held by authenticated work whose body is already in memory.
    if (this.inflight >= (this.options.maxInflight ?? 256)) {
      await this.finish(exchange, new KmsServiceError("Rejected.Throttling", "Too many requests."));
      return;
    }
    this.inflight++;
    let outcome: Buffer | unknown;
    try {
      outcome = await this.service.handle(who.operation, body, ctx);
    } catch (err) {
      outcome = err;
    }
    try {
      await this.finish(exchange, outcome);
    } finally {
      this.inflight--;
    }
  }

  /** Whether an access point exists (false when the store cannot say: it is only for refusal tallies). */
  private async knownAccessPoint(id: string): Promise<boolean> {
    try {
      return (await this.options.instance.accessPoints.find(id)) !== undefined;
    } catch {
      return false;
    }
  }

  /** Everything before a request is trusted: shape, header bounds, signature, then the body (bounded) against the signed hash. */
  private async admit(
    req: IncomingMessage,
    headers: Record<string, string> | undefined,
    source: string,
  ): Promise<{ who: Authenticated; body: Buffer }> {
    if (req.method !== "POST" || (req.url ?? "/") !== "/") {
      throw new KmsServiceError("InvalidParam", "Only POST / is served.");
    }
    if (!headers) throw new KmsServiceError("InvalidParam", "A protocol header is repeated.");
    checkHeaderLengths(headers);
    const now = (this.options.now ?? Date.now)();
    // Changes committed by any node or admin command before this request reach its lookups.
    await this.options.instance.store.checkForChanges();
    const who = await authenticate(
      { method: "POST", headers, sourceAddress: source },
      this.options.instance.accessPoints,
      now,
    );
    const body = await readBody(req, this.options.maxBodyBytes ?? MAX_BODY_BYTES);
    checkBodyHash(headers, body);
    return { who, body };
  }

  /**
   * What the client is told of `err`: a refusal as it is, anything else as a generic failure,
   * whose reason (a gap in the audit log...) the operator gets in the log instead.
   */
  private serviceError(requestId: string, err: unknown, when: string): KmsServiceError {
    if (err instanceof Error && !(err instanceof KmsServiceError))
      this.options.log?.(`${requestId} internal failure${when}: ${err.message.split("\n")[0]}`);
    return toServiceError(err);
  }

  /** Audits, then replies (the order that makes acknowledged requests durable). */
  private async finish(exchange: Exchange, outcome: Buffer | unknown): Promise<void> {
    const { res, requestId, source, started, operation, ctx } = exchange;
    const actor = ctx.accessPoint.id;
    const error = Buffer.isBuffer(outcome) ? undefined : this.serviceError(requestId, outcome, "");
    const code: KmsErrorCode | "ok" = error ? error.code : "ok";
    try {
      await this.options.instance.audit.appendSoon({
        actor,
        source,
        operation,
        keyId: ctx.keyId,
        outcome: code,
        requestId,
        detail: ctx.detail,
      });
    } catch (err) {
      // Without an audit entry the request must not succeed.
      this.reply(res, requestId, toServiceError(err));
      this.options.log?.(`${requestId} audit append failed: ${(err as Error).message}`);
      return;
    }
    this.reply(res, requestId, error ?? (outcome as Buffer));
    this.options.log?.(
      `${new Date().toISOString()} ${requestId} ${actor} ${operation} ${ctx.keyId || "-"} ${code} ${Date.now() - started}ms`,
    );
  }

  private reply(res: ServerResponse, requestId: string, outcome: Buffer | KmsServiceError): void {
    if (res.headersSent || res.destroyed) return;
    const isError = !Buffer.isBuffer(outcome);
    const body = isError
      ? encodeMessage("Error", {
          StatusCode: outcome.status,
          ErrorCode: outcome.code,
          ErrorMessage: outcome.message,
          RequestId: requestId,
        })
      : outcome;
    res.writeHead(isError ? outcome.status : 200, {
      "content-type": PROTOBUF_CONTENT_TYPE,
      "content-length": body.length,
      "x-kms-requestid": requestId,
    });
    res.end(body);
  }
}

function toServiceError(err: unknown): KmsServiceError {
  if (err instanceof KmsServiceError) return err;
  // Internal details stay in the server; the client gets a generic failure.
  return new KmsServiceError("InternalFailure", "The server failed to process the request.");
}

/** Refuses a header the server reads whose value is longer than any honest client sends. */
function checkHeaderLengths(headers: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(headers)) {
    const limit = HEADER_LIMITS[name] ?? (name.startsWith("x-kms-") ? KMS_HEADER_LIMIT : undefined);
    if (limit !== undefined && value.length > limit) {
      throw new KmsServiceError(
        "InvalidParam",
        `The header ${name.slice(0, 64)} is longer than ${limit} characters.`,
      );
    }
  }
}

/** Headers whose repetition makes a request ambiguous (what was signed is unclear). */
const SINGLE_VALUED = new Set(["date", "content-sha256", "authorization"]);

/**
 * Header values by lower-case name (the first of repeated ones); undefined if a header that
 * matters is repeated. Walks rawHeaders once: `headersDistinct` would build an array per
 * header on every request.
 */
function singleHeaders(req: IncomingMessage): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (Object.hasOwn(out, name)) {
      if (name.startsWith("x-kms-") || SINGLE_VALUED.has(name)) return undefined;
      continue;
    }
    out[name] = raw[i + 1] as string;
  }
  return out;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > limit) {
      reject(new KmsServiceError("RequestEntityTooLarge", `The body exceeds ${limit} bytes.`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new KmsServiceError("RequestEntityTooLarge", `The body exceeds ${limit} bytes.`));
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    // A body cut short (the client went away, or the server's request timeout closed the
    // connection) ends in 'error' or just 'close'; either way the wait must end.
    const cut = () => reject(new KmsServiceError("InvalidParam", "The request body could not be read."));
    req.on("error", cut);
    req.on("close", () => {
      if (!req.complete) cut();
    });
  });
}
