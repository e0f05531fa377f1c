/**
 * https/: HTTP over hsmkit TLS. {@link HsmkitAgent} for Node's `https` module (and axios, got,
 * SDKs taking an agent), {@link hsmkitConnector} for undici and `fetch()`, {@link curl} for
 * one request, {@link createHttpsServer} / {@link startServe} for a mutual-TLS server and
 * reverse proxy whose key stays in a token or KMS.
 */
export { ConfigError, TimeoutError } from "../errors.ts";
export { type AgentTlsOptions, HsmkitAgent } from "./agent.ts";
export { type CurlRequest, type CurlResponse, curl } from "./curl.ts";
export { type ClientIdentity, clientIdentity, reverseProxy } from "./proxy.ts";
export {
  createHttpsServer,
  HttpsServer,
  type RunningServe,
  type ServeOptions,
  startServe,
} from "./serve.ts";
export { type ConnectorCallback, type ConnectorOptions, hsmkitConnector } from "./undici.ts";
