/**
 * The KMS instance endpoint: `POST /` over HTTPS (Node's https with the instance's own
 * certificate), protobuf in and out. Each request is bounded (3 MiB body, an in-flight cap
 * answered with Rejected.Throttling), authenticated, dispatched, and audited: the audit entry
 * is committed before the reply is written, so anything a client saw acknowledged survives a
 * crash.
 */
import { createPrivateKey, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { PROTOBUF_CONTENT_TYPE } from "./auth.ts";
import { type KmsErrorCode, KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import { encodeMessage } from "./proto.ts";
import { authenticate, claimedAccessKeyId } from "./request_auth.ts";
import { KmsService, type RequestContext } from "./service.ts";

/** The body limit of the protocol. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Options for {@link KmsServer.start}. */
export interface KmsServerOptions {
  readonly instance: KmsInstance;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /** Extra names for the server certificate (localhost and 127.0.0.1 are always there). */
  readonly hostnames?: readonly string[];
  /** Requests handled at once before Rejected.Throttling; default 256. */
  readonly maxInflight?: number;
  /** Default 3 MiB. */
  readonly maxBodyBytes?: number;
  /** Milliseconds since the epoch; default Date.now (tests move the clock). */
  readonly now?: () => number;
  /** One line per request (no secrets); default none. */
  readonly log?: (line: string) => void;
}

/** A running KMS endpoint. */
export class KmsServer {
  private inflight = 0;

  private constructor(
    private readonly server: https.Server,
    private readonly options: KmsServerOptions,
    private readonly service: KmsService,
  ) {}

  /** Starts listening; resolves once the port is bound. */
  static async start(options: KmsServerOptions): Promise<KmsServer> {
    const creds = await options.instance.serverCredentials(options.hostnames ?? []);
    const key = createPrivateKey({ key: creds.keyDer, format: "der", type: "pkcs8" });
    creds.keyDer.fill(0);
    const server = https.createServer({
      cert: creds.certChainPem,
      key: key.export({ type: "pkcs8", format: "pem" }),
      minVersion: "TLSv1.2",
      keepAliveTimeout: 30_000,
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

  /** Stops accepting, closes idle connections, waits for in-flight requests. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const started = Date.now();
    const source = req.socket.remoteAddress ?? "";
    const headers = singleHeaders(req);
    const audit = {
      actor: headers ? claimedAccessKeyId(headers) : "",
      keyId: "",
      detail: "",
      operation: headers?.["x-kms-apiname"] ?? "",
    };
    if (this.inflight >= (this.options.maxInflight ?? 256)) {
      // Do not read the body: refuse and close, the client retries.
      res.setHeader("connection", "close");
      req.resume();
      await this.finish(
        res,
        requestId,
        audit,
        source,
        started,
        new KmsServiceError("Rejected.Throttling", "Too many requests."),
      );
      return;
    }
    this.inflight++;
    try {
      if (req.method !== "POST" || (req.url ?? "/") !== "/") {
        throw new KmsServiceError("InvalidParam", "Only POST / is served.");
      }
      if (!headers) throw new KmsServiceError("InvalidParam", "A protocol header is repeated.");
      const body = await readBody(req, this.options.maxBodyBytes ?? MAX_BODY_BYTES);
      const now = (this.options.now ?? Date.now)();
      const who = authenticate(
        { method: req.method, headers, body, sourceAddress: source },
        this.options.instance.store,
        now,
      );
      audit.actor = who.accessPoint.id;
      const ctx: RequestContext = { accessPoint: who.accessPoint, requestId, keyId: "", detail: "" };
      try {
        const reply = await this.service.handle(who.operation, body, ctx);
        await this.finish(
          res,
          requestId,
          { ...audit, keyId: ctx.keyId, detail: ctx.detail },
          source,
          started,
          reply,
        );
      } catch (err) {
        await this.finish(
          res,
          requestId,
          { ...audit, keyId: ctx.keyId, detail: ctx.detail },
          source,
          started,
          err,
        );
      }
    } catch (err) {
      if (err instanceof KmsServiceError && err.code === "RequestEntityTooLarge")
        res.setHeader("connection", "close");
      await this.finish(res, requestId, audit, source, started, err);
    } finally {
      this.inflight--;
    }
  }

  /** Audits, then replies (the order that makes acknowledged requests durable). */
  private async finish(
    res: ServerResponse,
    requestId: string,
    audit: { actor: string; keyId: string; detail: string; operation: string },
    source: string,
    started: number,
    outcome: Buffer | unknown,
  ): Promise<void> {
    const error = Buffer.isBuffer(outcome) ? undefined : toServiceError(outcome);
    const code: KmsErrorCode | "ok" = error ? error.code : "ok";
    try {
      await this.options.instance.audit.appendSoon({
        actor: audit.actor || "(none)",
        source,
        operation: audit.operation || "(none)",
        keyId: audit.keyId,
        outcome: code,
        requestId,
        detail: audit.detail,
      });
    } catch (err) {
      // Without an audit entry the request must not succeed.
      this.reply(res, requestId, toServiceError(err));
      this.options.log?.(`${requestId} audit append failed: ${(err as Error).message}`);
      return;
    }
    this.reply(res, requestId, error ?? (outcome as Buffer));
    this.options.log?.(
      `${new Date().toISOString()} ${requestId} ${audit.actor || "-"} ${audit.operation || "-"} ${audit.keyId || "-"} ${code} ${Date.now() - started}ms`,
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
    req.on("error", () => reject(new KmsServiceError("InvalidParam", "The request body could not be read.")));
  });
}
