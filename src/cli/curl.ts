/**
 * `hsmkit curl`: an HTTPS request with mutual TLS whose client key may live in a token
 * or KMS. Exit codes follow curl: 0 ok, 22 HTTP >= 400, 35 TLS failure, 60 certificate
 * verification failure, 58 client key/certificate problem, 7 connection failure, 28 timeout.
 */
import { createWriteStream, readFileSync } from "node:fs";
import type { Command } from "commander";
import { TimeoutError } from "../errors.ts";
import { curl } from "../https/curl.ts";
import { openKey } from "../keys/index.ts";
import { KeyError, type PrivateKeyHandle } from "../keys/types.ts";
import { alertName, NegotiationError, TlsError } from "../tls/alert.ts";
import { CliError, messageWithFlags } from "./errors.ts";
import { readTextFile, tlsVersionFlag } from "./input.ts";
import { type ValidationProfile, validationProfileOption } from "./profile_option.ts";

interface CurlFlags {
  request?: string;
  data?: string;
  header: string[];
  output?: string;
  verbose?: boolean;
  cacert?: string;
  cert?: string;
  key?: string;
  tlsMin?: string;
  tlsMax?: string;
  ciphers?: string;
  servername?: string;
  insecure?: boolean;
  profile: ValidationProfile;
}

function parseHeaders(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i <= 0) throw new CliError(`bad header '${line}' (expected 'Name: value')`, 2);
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** Maps a failure to curl's exit code and a one-line message. */
export function curlFailure(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof NegotiationError) {
    return new CliError(
      `TLS handshake failed: server sent alert ${alertName(err.alert)}: no cipher suite or TLS version in common ` +
        `(offered ${err.offeredVersions} with ${err.offeredSuites.join(",")}); try --ciphers with a suite the ` +
        "server has (RSA key-exchange suites are offered only when named) or --tls-min/--tls-max",
      35,
    );
  }
  if (err instanceof TlsError) {
    const message = messageWithFlags(err);
    if (err.kind === "certificate")
      return new CliError(`server certificate verification failed: ${message}`, 60);
    if (err.kind === "key") return new CliError(message, 58);
    return new CliError(`TLS handshake failed: ${message}`, 35);
  }
  if (err instanceof KeyError) return new CliError(err.message, 58);
  const code = (err as NodeJS.ErrnoException).code;
  const message = messageWithFlags(err);
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EHOSTUNREACH") {
    return new CliError(`failed to connect: ${message}`, 7);
  }
  if (err instanceof TimeoutError) return new CliError(message, 28);
  if (code === "ECONNRESET" || code === "EPIPE") return new CliError(`connection reset: ${message}`, 56);
  return new CliError(message, 1);
}

/** Adds `hsmkit curl`. */
export function registerCurlCommand(program: Command): void {
  program
    .command("curl")
    .description("HTTPS request with mutual TLS; the client key may stay in a PKCS#11 token or KMS")
    .argument("<url>", "https URL")
    .option("-X, --request <method>", "HTTP method")
    .option("-d, --data <data>", "request body, or @FILE to read it from a file")
    .option(
      "-H, --header <header>",
      "extra header 'Name: value' (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option("-o, --output <file>", "write the body to FILE instead of stdout")
    .option("-v, --verbose", "tell TLS version, suite and server certificate on stderr")
    .option("--cacert <file>", "CA certificates (PEM) to trust instead of the system store")
    .option("--cert <file>", "client certificate chain (PEM, leaf first)")
    .option("--key <keyref>", "client key: file path, pkcs11: URI or kms:// reference")
    .option("--tls-min <version>", "lowest TLS version: 1.1, 1.2 or 1.3")
    .option("--tls-max <version>", "highest TLS version: 1.1, 1.2 or 1.3")
    .option("--ciphers <list>", "comma-separated IANA (or OpenSSL) cipher suite names")
    .option("--servername <name>", "name for SNI and certificate checks")
    .option("-k, --insecure", "do not verify the server certificate")
    .addOption(validationProfileOption("the server's chain"))
    .action(runCurl);
}

/** Runs `hsmkit curl`: one request, the body to stdout or --output; failures exit as curl's do. */
async function runCurl(url: string, flags: CurlFlags): Promise<void> {
  let key: PrivateKeyHandle | undefined;
  try {
    if (flags.cert && !flags.key) throw new CliError("--cert needs --key", 2);
    if (flags.key && !flags.cert) throw new CliError("--key needs --cert (the client certificate chain)", 2);
    const minVersion = tlsVersionFlag(flags.tlsMin);
    const maxVersion = tlsVersionFlag(flags.tlsMax);
    const body =
      flags.data === undefined
        ? undefined
        : flags.data.startsWith("@")
          ? readFileSync(flags.data.slice(1))
          : Buffer.from(flags.data);
    const headers = parseHeaders(flags.header);
    if (body && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
      headers["Content-Type"] = "application/x-www-form-urlencoded";
    }
    const ca = flags.cacert ? readTextFile(flags.cacert, "CA file", 58) : undefined;
    const cert = flags.cert ? readTextFile(flags.cert, "certificate file", 58) : undefined;
    key = flags.key ? await openKey(flags.key) : undefined;
    const output = flags.output ? createWriteStream(flags.output) : process.stdout;
    const log = flags.verbose ? (line: string) => process.stderr.write(`${line}\n`) : undefined;
    const res = await curl({
      url,
      method: flags.request,
      headers,
      body,
      ca,
      cert,
      key,
      minVersion,
      maxVersion,
      ciphers: flags.ciphers,
      servername: flags.servername,
      profile: flags.profile,
      insecure: flags.insecure,
      output,
      log,
    });
    if (output !== process.stdout) await new Promise<void>((r) => output.end(r));
    if (res.status >= 400) throw new CliError(`The requested URL returned error: ${res.status}`, 22);
  } catch (err) {
    throw curlFailure(err);
  } finally {
    await key?.close();
  }
}
