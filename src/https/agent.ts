/**
 * An https.Agent whose sockets are hsmkit TLS connections, so Node's https client and every
 * library that picks the `https` module by URL (axios's `httpsAgent`, got's `agent.https`,
 * node-fetch, cloud SDKs) do mutual TLS with a key that stays in a token or KMS.
 */
import { Agent, type AgentOptions } from "node:https";
import type { Duplex } from "node:stream";
import { type ConnectOptions, connect } from "../tls/client.ts";
import { certificateList } from "../tls/config.ts";
import { ClientSessionCache } from "../tls/psk.ts";

/** TLS settings shared by every connection the agent opens (host and port come per request). */
export type AgentTlsOptions = Omit<ConnectOptions, "host" | "port" | "socket">;

/**
 * `new HsmkitAgent({ ca, cert, key })` for `https.request(url, { agent })`. Keep-alive is on
 * by default and TLS 1.3 sessions resume from the tickets earlier connections received. TLS
 * settings come from the agent only: per-request TLS options (`ca`, `rejectUnauthorized`, ...)
 * are ignored, because the key handle and trust anchors belong to the agent.
 */
export class HsmkitAgent extends Agent {
  /** TLS 1.3 tickets from this agent's connections, so new connections resume. */
  private readonly sessions = new ClientSessionCache();

  private readonly tls: AgentTlsOptions;

  constructor(tls: AgentTlsOptions, options: AgentOptions = {}) {
    super({ keepAlive: true, ...options });
    // Parse the trust anchors once, not on every connection.
    const ca = tls.ca === undefined ? undefined : certificateList("ca", tls.ca);
    this.tls = { ...tls, ca };
  }

  /** Called by the https module for each new connection. */
  override createConnection(options: {
    host?: string | null;
    port?: number | null;
    servername?: string;
  }): Duplex {
    return connect({
      ...this.tls,
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 443,
      // Node leaves servername empty for IP addresses; the certificate check then uses the host.
      servername: this.tls.servername ?? (options.servername || undefined),
      sessionCache: this.tls.sessionCache ?? this.sessions,
    });
  }
}
