/**
 * fetch() with a key that stays in a token: a connector for undici's Agent (and so for
 * Node's global fetch through its `dispatcher` option) whose connections are hsmkit TLS
 * sockets. It needs nothing from undici itself, only its connector calling convention.
 */
import type { Duplex } from "node:stream";
import { connect } from "../tls/client.ts";
import { certificateList } from "../tls/config.ts";
import { ClientSessionCache } from "../tls/psk.ts";
import type { AgentTlsOptions } from "./agent.ts";

/** What undici passes to a connector. */
export interface ConnectorOptions {
  hostname: string;
  host?: string;
  protocol: string;
  port: string;
  servername?: string | null;
}

/** undici's connector callback. */
export type ConnectorCallback = (err: Error | null, socket: Duplex | null) => void;

/**
 * Returns a function for `new undici.Agent({ connect: hsmkitConnector(tls) })`: every
 * connection the agent opens runs hsmkit's TLS with these settings (client key, CAs,
 * versions, suites) and resumes TLS 1.3 sessions from tickets.
 */
export function hsmkitConnector(
  tls: AgentTlsOptions,
): (opts: ConnectorOptions, callback: ConnectorCallback) => void {
  const ca = tls.ca === undefined ? undefined : certificateList("ca", tls.ca);
  const sessionCache = tls.sessionCache ?? new ClientSessionCache();
  return (opts, callback) => {
    if (opts.protocol !== "https:") {
      callback(new Error(`hsmkit connector: only https URLs (got ${opts.protocol})`), null);
      return;
    }
    let sock: ReturnType<typeof connect>;
    try {
      sock = connect({
        ...tls,
        ca,
        sessionCache,
        host: opts.hostname.replace(/^\[|\]$/g, ""),
        port: Number(opts.port) || 443,
        servername: tls.servername ?? opts.servername ?? opts.hostname,
        ALPNProtocols: ["http/1.1"],
      });
    } catch (err) {
      callback(err as Error, null);
      return;
    }
    const onError = (err: Error) => callback(err, null);
    sock.once("error", onError);
    sock.once("secureConnect", () => {
      sock.off("error", onError);
      callback(null, sock);
    });
  };
}
