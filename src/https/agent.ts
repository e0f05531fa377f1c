/**
 * An http.Agent whose sockets are hsmkit TLS connections, so Node's http client (and
 * anything built on it) can do mutual TLS with a key that stays in a token or KMS.
 */
import { Agent, type AgentOptions } from "node:http";
import type { Duplex } from "node:stream";
import { type ConnectOptions, connect } from "../tls/client.ts";
import { certificateList } from "../tls/config.ts";
import { ClientSessionCache } from "../tls/psk.ts";

/** TLS settings shared by every connection the agent opens (host and port come per request). */
export type AgentTlsOptions = Omit<ConnectOptions, "host" | "port" | "socket">;

/** An http.Agent that opens hsmkit TLS sockets; use it with http.request on https URLs' host/port. */
export class HsmkitAgent extends Agent {
  /** TLS 1.3 tickets from this agent's connections, so new connections resume. */
  private readonly sessions = new ClientSessionCache();

  private readonly tls: AgentTlsOptions;

  constructor(tls: AgentTlsOptions, options: AgentOptions = {}) {
    super({ keepAlive: true, ...options });
    // Parse the trust anchors once, not on every connection.
    const ca = tls.ca === undefined ? undefined : certificateList(tls.ca);
    this.tls = { ...tls, ca };
  }

  /** Called by http for each new connection. */
  override createConnection(options: {
    host?: string | null;
    port?: number | null;
    servername?: string;
  }): Duplex {
    return connect({
      ...this.tls,
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 443,
      servername: this.tls.servername ?? options.servername,
      sessionCache: this.tls.sessionCache ?? this.sessions,
    });
  }
}
