/**
 * Real TLS peers for interop tests, on 127.0.0.1 with ephemeral ports: `openssl s_server`,
 * nginx (`peers-nginx.ts`), `gnutls-serv`, and one-shot clients (`openssl s_client`, curl).
 * Every server is its own process group, stopped by `stop()` and, failing that, when the test
 * process exits. Typical use:
 *
 *   const pki = await makePki();
 *   const server = await opensslServer({ cert: pki.server.certPath, key: pki.server.keyPath,
 *     chain: pki.intermediate.certPath, caFile: pki.caFile, verifyClient: true, www: true });
 *   t.after(() => server.stop());
 *   ... connect to server.port ...
 *   assert.deepEqual(await waitForVerifications(server, opensslClientVerifications, 1),
 *     [{ subject: "O = hsmkit tests, CN = hsmkit-test-client-rsa", ok: true }]);
 */
import { existsSync } from "node:fs";
import { type Peer, startPeer } from "./peer-process.ts";
import { type RunResult, runCommand, waitUntil } from "./process.ts";

export type { Peer } from "./peer-process.ts";
export {
  NGINX_INDEX_HTML,
  type NginxOptions,
  type NginxPeer,
  type NginxRequest,
  nginxServer,
} from "./peers-nginx.ts";

/** A TLS protocol version as the helpers spell it. */
export type TlsVersion = "1.1" | "1.2" | "1.3";

/** Options for `opensslServer`. */
export interface OpensslServerOptions {
  /** Server certificate, PEM. s_server reads only the first certificate of this file. */
  cert: string;
  key: string;
  /** Extra certificates to send after the leaf (the intermediates, e.g. `pki.intermediate.certPath`). */
  chain?: string;
  /** Trust anchors for client certificates (also the CA names sent in CertificateRequest). */
  caFile?: string;
  /**
   * true: require a valid client certificate (`-Verify N -verify_return_error`; no certificate or a
   * bad one fails the handshake). "optional": ask for one, verify it if sent (`-verify N`).
   */
  verifyClient?: boolean | "optional";
  /** Maximum client chain depth. Default 5. */
  verifyDepth?: number;
  /** Only this version (`-tls1_1` / `-tls1_2` / `-tls1_3`). */
  tls?: TlsVersion;
  /**
   * OpenSSL cipher list for TLS <= 1.2 (`-cipher`), e.g. "AES128-SHA256". With `tls: "1.1"`,
   * ":@SECLEVEL=0" is appended unless present (OpenSSL 3 refuses TLS 1.1 at level 1 and up).
   */
  ciphers?: string;
  /** TLS 1.3 suites (`-ciphersuites`), e.g. "TLS_AES_128_GCM_SHA256". */
  ciphersuites?: string;
  /**
   * Answer any HTTP GET with 200 and an HTML page describing the session, including "Client
   * certificate" and its text when one was sent (`-www`). Without it s_server echoes what it
   * receives to its output and sends what is written to `peer.process.write()`.
   */
  www?: boolean;
  /** CRL file (PEM); enables `-crl_check_all`, so it needs a CRL from every CA of the chain. */
  crl?: string;
  /** Appended as is. */
  extraArgs?: string[];
}

/**
 * Starts `openssl s_server` on 127.0.0.1, port chosen by the kernel (read from its "ACCEPT" line).
 *
 * To assert that it verified a client certificate, use `opensslClientVerifications(output)`: it
 * reads the verify callback's lines, which s_server prints for every certificate of the client's
 * chain, top first, e.g.
 *
 *   depth=0 O = hsmkit tests, CN = hsmkit-test-client-rsa
 *   verify return:1                       <- verified
 *   depth=0 O = hsmkit tests, CN = hsmkit-test-client-of-other-ca
 *   verify error:num=20:unable to get local issuer certificate   <- refused
 */
export function opensslServer(options: OpensslServerOptions): Promise<Peer> {
  const args = ["s_server", "-accept", "127.0.0.1:0", "-cert", options.cert, "-key", options.key];
  if (options.chain) args.push("-cert_chain", options.chain);
  if (options.caFile) args.push("-CAfile", options.caFile);
  const depth = String(options.verifyDepth ?? 5);
  if (options.verifyClient === true) args.push("-Verify", depth, "-verify_return_error");
  else if (options.verifyClient === "optional") args.push("-verify", depth);
  if (options.tls) args.push(`-tls${options.tls.replace(".", "_")}`);
  const ciphers = options.tls === "1.1" ? withSeclevel0(options.ciphers ?? "DEFAULT") : options.ciphers;
  if (ciphers) args.push("-cipher", ciphers);
  if (options.ciphersuites) args.push("-ciphersuites", options.ciphersuites);
  if (options.www) args.push("-www");
  if (options.crl) args.push("-CRL", options.crl, "-crl_check_all");
  args.push(...(options.extraArgs ?? []));
  return startPeer({
    name: "openssl s_server",
    ...lineBuffered("openssl", args),
    portFromOutput: /^ACCEPT \S+:(\d+)$/m,
  });
}

/** Options for `gnutlsServer`. */
export interface GnutlsServerOptions {
  /** Certificate chain file, PEM (leaf first; gnutls sends all of it, so `server.pem` works). */
  cert: string;
  key: string;
  /** Trust anchors for client certificates. */
  caFile?: string;
  /**
   * true: a client without a valid certificate fails the handshake (`--require-client-cert
   * --verify-client-cert`). false: a certificate is asked for and, when `caFile` is set, verified if sent.
   */
  requireClientCert?: boolean;
  /** GnuTLS priority string, e.g. "NORMAL:-VERS-ALL:+VERS-TLS1.2". */
  priority?: string;
  /**
   * true (default): answer HTTP GETs with 200 and a page describing the session (`--http`);
   * false: echo what the client sends (`--echo`).
   */
  http?: boolean;
  /** CRL file (PEM). */
  crl?: string;
  extraArgs?: string[];
}

/**
 * Starts `gnutls-serv` on a free port. gnutls-serv has no bind-address option: it listens on
 * every address, IPv4 and IPv6; tests connect to 127.0.0.1. To assert on client verification,
 * use `gnutlsClientVerifications(output)`: for each connection gnutls-serv prints
 * "- Status: The certificate is trusted." (or "... NOT trusted ...") and the client chain as
 * "- Certificate[0] info:" ... "Subject: CN=hsmkit-test-client-rsa,O=hsmkit tests".
 */
export function gnutlsServer(options: GnutlsServerOptions): Promise<Peer> {
  return startPeer({
    name: "gnutls-serv",
    ...lineBuffered("gnutls-serv", [], (port) => {
      const args = ["-p", String(port), "--x509certfile", options.cert, "--x509keyfile", options.key];
      if (options.caFile) args.push("--x509cafile", options.caFile);
      if (options.requireClientCert) args.push("--require-client-cert", "--verify-client-cert");
      else if (options.caFile) args.push("--verify-client-cert");
      if (options.priority) args.push("--priority", options.priority);
      if (options.crl) args.push("--x509crlfile", options.crl);
      args.push(options.http === false ? "--echo" : "--http");
      return [...args, ...(options.extraArgs ?? [])];
    }),
    readyPattern: /listening on IPv4 .* port \d+\.\.\.done/,
  });
}

/** One client verification as a server logged it. */
export interface ClientVerification {
  /** The client leaf's subject as the server printed it. */
  subject: string;
  ok: boolean;
  /** The server's reason when `ok` is false. */
  error?: string;
}

/**
 * Resolves with `parse(peer.output())` once it lists at least `count` verifications; rejects
 * after `timeoutMs` (default 5 s) with the output. Use it instead of reading `output()` right
 * after a client finished: the server's log reaches us through a pipe, a moment later.
 */
export async function waitForVerifications(
  peer: Peer,
  parse: (output: string) => ClientVerification[],
  count: number,
  timeoutMs = 5000,
): Promise<ClientVerification[]> {
  if (!(await waitUntil(() => parse(peer.output()).length >= count, timeoutMs))) {
    throw new Error(
      `fewer than ${count} client verifications logged within ${timeoutMs} ms:\n${peer.output()}`,
    );
  }
  return parse(peer.output());
}

/** The client leaf certificates `openssl s_server` verified (or refused), in order, from its output. */
export function opensslClientVerifications(output: string): ClientVerification[] {
  const results: ClientVerification[] = [];
  const lines = output.split("\n");
  lines.forEach((line, i) => {
    const leaf = /^depth=0 (.*)$/.exec(line);
    if (!leaf) return;
    for (const next of lines.slice(i + 1)) {
      const error = /^verify error:num=\d+:(.*)$/.exec(next);
      if (error) {
        results.push({ subject: leaf[1]!, ok: false, error: error[1]! });
        return;
      }
      if (next === "verify return:1") {
        results.push({ subject: leaf[1]!, ok: true });
        return;
      }
      if (next.startsWith("depth=")) return;
    }
  });
  return results;
}

/** The client certificates `gnutls-serv` verified (or refused), one per connection that sent one. */
export function gnutlsClientVerifications(output: string): ClientVerification[] {
  const results: ClientVerification[] = [];
  for (const connection of output.split("* Accepted connection").slice(1)) {
    const status = /^- Status: (.*)$/m.exec(connection);
    const leafInfo = connection.split("- Certificate[0] info:")[1];
    const subject = leafInfo ? /^\s*Subject: (.*)$/m.exec(leafInfo)?.[1] : undefined;
    if (!status || !subject) continue;
    const ok = /^The certificate is trusted\.\s*$/.test(status[1]!);
    results.push(ok ? { subject, ok } : { subject, ok, error: status[1]!.trim() });
  }
  return results;
}

/** Options for `opensslClient`. */
export interface OpensslClientOptions {
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** SNI name (`-servername`). */
  servername?: string;
  /**
   * Everything after `s_client -connect HOST:PORT`, e.g. ["-CAfile", ca, "-cert", leaf, "-key", k,
   * "-cert_chain", intermediate, "-tls1_2"]. s_client's `-cert` reads only the first certificate of
   * a file: send intermediates with `-cert_chain`.
   */
  args?: string[];
  /**
   * Written to stdin, then stdin is closed. s_client ends the connection at end of input unless
   * "-ign_eof" is in `args` (then it waits for the server to close: use it for HTTP requests).
   */
  input?: string | Buffer;
  /** Default 15 s; on timeout the client is killed and the promise rejects with its output. */
  timeoutMs?: number;
}

/**
 * Runs `openssl s_client` against a server (for server tests). Resolves with its exit code and
 * output whatever the outcome; a failed handshake shows as a non-zero exit code and
 * `Verify return code` / alert lines in the output.
 */
export function opensslClient(options: OpensslClientOptions): Promise<RunResult> {
  const args = ["s_client", "-connect", `${options.host ?? "127.0.0.1"}:${options.port}`];
  if (options.servername) args.push("-servername", options.servername);
  args.push(...(options.args ?? []));
  return runCommand("openssl", args, { input: options.input, timeoutMs: options.timeoutMs ?? 15_000 });
}

/** Options for `curl`. */
export interface CurlOptions {
  cacert?: string;
  /** Client certificate chain file (`--cert`). */
  cert?: string;
  /** Client key file (`--key`). */
  key?: string;
  /** More curl arguments, e.g. ["--tlsv1.2", "--tls-max", "1.2", "-H", "X: y"]. */
  args?: string[];
  /** Default 15 s (passed to curl as --max-time too). */
  timeoutMs?: number;
}

/**
 * Runs `curl -sS URL` (add "-f", "-i", "-v" via `args`). Resolves whatever the exit code:
 * 0 ok, 35 TLS handshake failure, 56 failure receiving (e.g. a TLS alert after the handshake),
 * 60 server certificate not trusted, 22 HTTP >= 400 with "-f". The body is `stdout`.
 */
export function curl(url: string, options: CurlOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const args = ["-sS", "--max-time", String(Math.ceil(timeoutMs / 1000))];
  if (options.cacert) args.push("--cacert", options.cacert);
  if (options.cert) args.push("--cert", options.cert);
  if (options.key) args.push("--key", options.key);
  args.push(...(options.args ?? []), url);
  return runCommand("curl", args, { timeoutMs: timeoutMs + 5000 });
}

const STDBUF = ["/usr/bin/stdbuf", "/bin/stdbuf"].find((p) => existsSync(p));

/**
 * Command and arguments that run `command` with line-buffered stdio (via stdbuf, which execs,
 * so the pid stays the peer's): output piped to us would otherwise sit in a 4 KiB buffer.
 */
function lineBuffered(
  command: string,
  fixedArgs: string[],
  portArgs?: (port: number) => string[],
): { command: string; args: (port: number) => string[] } {
  const all = (port: number): string[] => [...fixedArgs, ...(portArgs ? portArgs(port) : [])];
  if (!STDBUF) return { command, args: all };
  return { command: STDBUF, args: (port) => ["-oL", "-eL", command, ...all(port)] };
}

function withSeclevel0(ciphers: string): string {
  return ciphers.includes("@SECLEVEL") ? ciphers : `${ciphers}:@SECLEVEL=0`;
}
