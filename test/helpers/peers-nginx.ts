/**
 * nginx as a real mutual-TLS peer: a private prefix in a temp directory (config, logs, pid file,
 * temp paths), `daemon off; master_process on; worker_processes 1`, listening on 127.0.0.1 only.
 * Re-exported by `peers.ts`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type Peer, startPeer } from "./peer-process.ts";
import { waitUntil } from "./process.ts";

/** Options for `nginxServer`. */
export interface NginxOptions {
  /** Certificate chain file, leaf first (e.g. `pki.server.chainPath`: nginx sends all of it). */
  cert: string;
  /** Private key file. Ignored when `engineKey` is given. */
  key?: string;
  /** Trust anchors for client certificates (`ssl_client_certificate`; also the CA names sent). */
  clientCa?: string;
  /**
   * true: `ssl_verify_client on` (nginx completes the handshake but answers 400 "No required SSL
   * certificate was sent" / "The SSL certificate error" to a client without a valid certificate);
   * "optional": verify one if sent. Default: true when `clientCa` is given.
   */
  verifyClient?: boolean | "optional";
  /** `ssl_verify_depth`. Default 5 (nginx's own default of 1 rejects leaf + intermediate chains). */
  verifyDepth?: number;
  /**
   * `ssl_protocols`. Default ["1.2", "1.3"] (nginx 1.22's own default lacks 1.3). With "1.1",
   * `@SECLEVEL=0` is added to the cipher list, as OpenSSL 3 needs.
   */
  protocols?: Array<"1.1" | "1.2" | "1.3">;
  /** `ssl_ciphers` (OpenSSL names, TLS <= 1.2). */
  ciphers?: string;
  /** TLS 1.3 suites (`ssl_conf_command Ciphersuites`). */
  ciphersuites?: string;
  /** `ssl_crl` (PEM; needs a CRL for every CA of the chain, see `pki.crlPath`). */
  crl?: string;
  /** Directory served at /. Default: a temp directory whose index.html is `NGINX_INDEX_HTML`. */
  root?: string;
  /**
   * Server key inside a PKCS#11 token, loaded through libengine-pkcs11-openssl: nginx gets
   * `ssl_certificate_key engine:pkcs11:<uri>` (e.g. "pkcs11:token=T;object=O;type=private") and
   * an OPENSSL_CONF (mode 0600, in the prefix) that loads the engine with `modulePath` and `pin`.
   * `env` is passed to nginx and its workers (e.g. SOFTHSM2_CONF). OpenSSL 3.0 + libp11 can sign
   * with such a key (ECDHE suites, TLS 1.3) but not do TLS RSA key exchange with it.
   */
  engineKey?: { uri: string; modulePath: string; pin?: string; env?: Record<string, string> };
  /** More directives inside the `server { }` block. */
  extraServerConfig?: string;
}

/** One line of the access log (written as JSON by nginx). */
export interface NginxRequest {
  request: string;
  status: number;
  /** `$ssl_client_verify`: SUCCESS, NONE, or FAILED:reason. */
  verify: string;
  /** `$ssl_client_s_dn`, RFC 2253 order, e.g. "CN=hsmkit-test-client-rsa,O=hsmkit tests". */
  subject: string;
  /** `$ssl_client_i_dn`. */
  issuer: string;
  /** `$ssl_client_serial`, upper-case hex. */
  serial: string;
  /** `$ssl_protocol`, e.g. "TLSv1.2". */
  protocol: string;
  /** `$ssl_cipher`, OpenSSL name, e.g. "AES128-SHA256". */
  cipher: string;
}

/** A running nginx. `output()` is its error log (level info), which nginx writes to stderr. */
export interface NginxPeer extends Peer {
  /** The prefix directory (nginx.conf, access.log, error.log, nginx.pid, temp paths). */
  readonly prefix: string;
  /**
   * The access log, parsed; one entry per finished request. nginx writes a line just after the
   * response goes out, so a client can see its answer before the line exists: use
   * `waitForRequests` right after a request.
   */
  requests(): NginxRequest[];
  /** Resolves with the access log once it holds at least `count` entries; rejects after `timeoutMs` (default 5 s). */
  waitForRequests(count: number, timeoutMs?: number): Promise<NginxRequest[]>;
}

/** The body nginx serves at / when no `root` is given. */
export const NGINX_INDEX_HTML = "<!doctype html><title>hsmkit nginx peer</title><p>hello from nginx</p>\n";

/**
 * Starts nginx on 127.0.0.1 at a free port, with these locations:
 *   /        the `root` directory (index.html)
 *   /whoami  200 text/plain with what nginx saw: "verify=SUCCESS\nsubject=CN=...\nissuer=...\n
 *            serial=...\nprotocol=TLSv1.2\ncipher=AES128-SHA256\n"
 * and the access log (`requests()`) recording the same fields for every request.
 * As root, workers run as root too (`user root;`), so they can read keys in any temp directory.
 */
export async function nginxServer(options: NginxOptions): Promise<NginxPeer> {
  const prefix = await mkdtemp(path.join(os.tmpdir(), "hsmkit-nginx-"));
  let root = options.root;
  if (!root) {
    root = path.join(prefix, "html");
    await mkdir(root);
    await writeFile(path.join(root, "index.html"), NGINX_INDEX_HTML);
  }
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.engineKey?.env };
  if (options.engineKey) {
    env.OPENSSL_CONF = path.join(prefix, "openssl-engine.cnf");
    await writeFile(env.OPENSSL_CONF, engineConfig(options.engineKey.modulePath, options.engineKey.pin), {
      mode: 0o600,
    });
  }
  const confPath = path.join(prefix, "nginx.conf");
  const peer = await startPeer({
    name: "nginx",
    command: "nginx",
    args: (port) => {
      // Written here because the port is only known now (and changes on a retry).
      writeFileSync(confPath, nginxConfig(prefix, root, port, options));
      return ["-p", `${prefix}/`, "-c", confPath, "-e", "stderr"];
    },
    env,
    tempDir: prefix,
  });
  const requests = (): NginxRequest[] => parseAccessLog(path.join(prefix, "access.log"));
  return {
    ...peer,
    prefix,
    requests,
    async waitForRequests(count, timeoutMs = 5000) {
      if (!(await waitUntil(() => requests().length >= count, timeoutMs))) {
        throw new Error(`nginx logged ${requests().length} of ${count} requests within ${timeoutMs} ms`);
      }
      return requests();
    },
  };
}

function nginxConfig(prefix: string, root: string, port: number, o: NginxOptions): string {
  const p = (name: string): string => q(path.join(prefix, name));
  const verify = o.verifyClient ?? o.clientCa !== undefined;
  const tls11 = o.protocols?.includes("1.1") ?? false;
  const ciphers = tls11
    ? `${o.ciphers ?? "DEFAULT"}${o.ciphers?.includes("@SECLEVEL") ? "" : ":@SECLEVEL=0"}`
    : o.ciphers;
  const key = o.engineKey ? `engine:pkcs11:${o.engineKey.uri}` : (o.key ?? "");
  const ssl = [
    `ssl_certificate ${q(o.cert)};`,
    `ssl_certificate_key ${q(key)};`,
    o.clientCa ? `ssl_client_certificate ${q(o.clientCa)};` : "",
    verify ? `ssl_verify_client ${verify === true ? "on" : "optional"};` : "",
    `ssl_verify_depth ${o.verifyDepth ?? 5};`,
    `ssl_protocols ${(o.protocols ?? ["1.2", "1.3"]).map((v) => `TLSv${v}`).join(" ")};`,
    ciphers ? `ssl_ciphers ${q(ciphers)};` : "",
    o.ciphersuites ? `ssl_conf_command Ciphersuites ${q(o.ciphersuites)};` : "",
    o.crl ? `ssl_crl ${q(o.crl)};` : "",
  ];
  const seen =
    "verify=$ssl_client_verify\\nsubject=$ssl_client_s_dn\\nissuer=$ssl_client_i_dn\\n" +
    "serial=$ssl_client_serial\\nprotocol=$ssl_protocol\\ncipher=$ssl_cipher\\n";
  const envNames = Object.keys(o.engineKey?.env ?? {});
  return `${[
    "daemon off;",
    "master_process on;",
    "worker_processes 1;",
    process.getuid?.() === 0 ? "user root;" : "",
    `pid ${p("nginx.pid")};`,
    `lock_file ${p("nginx.lock")};`,
    "error_log stderr info;",
    `error_log ${p("error.log")} info;`,
    ...(o.engineKey ? ["env OPENSSL_CONF;", ...envNames.map((n) => `env ${n};`)] : []),
    "events { worker_connections 64; }",
    "http {",
    "  types { text/html html; text/plain txt; }",
    "  default_type application/octet-stream;",
    '  log_format hsmkit escape=json \'{"request":"$request","status":$status,' +
      '"verify":"$ssl_client_verify","subject":"$ssl_client_s_dn","issuer":"$ssl_client_i_dn",' +
      '"serial":"$ssl_client_serial","protocol":"$ssl_protocol","cipher":"$ssl_cipher"}\';',
    `  access_log ${p("access.log")} hsmkit;`,
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${p(`temp-${t}`)};`),
    "  server {",
    `    listen 127.0.0.1:${port} ssl;`,
    "    server_name localhost;",
    ...ssl.filter(Boolean).map((line) => `    ${line}`),
    `    root ${q(root)};`,
    `    location = /whoami { default_type text/plain; return 200 "${seen}"; }`,
    o.extraServerConfig ?? "",
    "  }",
    "}",
  ]
    .filter(Boolean)
    .join("\n")}\n`;
}

/** An openssl.cnf that loads the libp11 engine with the given PKCS#11 module (and PIN). */
function engineConfig(modulePath: string, pin: string | undefined): string {
  return [
    "openssl_conf = openssl_init",
    "[openssl_init]",
    "engines = engine_section",
    "[engine_section]",
    "pkcs11 = pkcs11_section",
    "[pkcs11_section]",
    "engine_id = pkcs11",
    `MODULE_PATH = ${modulePath}`,
    ...(pin === undefined ? [] : [`PIN = ${pin}`]),
    // nginx calls ENGINE_load_private_key without ENGINE_init: the config must initialise it.
    "init = 1",
    "",
  ].join("\n");
}

function parseAccessLog(file: string): NginxRequest[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return []; // no request yet
  }
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as NginxRequest);
}

/** Quotes a config value for nginx (double quotes, backslash escapes). */
function q(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}
