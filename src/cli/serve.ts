/**
 * `hsmkit serve`: an HTTPS server (mutual TLS with --client-ca) whose private key stays
 * in a file, a PKCS#11 token or a KMS, serving static files or proxying to an upstream
 * that receives the verified client subject. Prints 'listening on HOST:PORT', one line
 * per request, and stops gracefully on SIGTERM / SIGINT.
 */
import type { Command } from "commander";
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, startServe } from "../https/serve.ts";
import { openKey } from "../keys/index.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { CliError } from "./errors.ts";
import { parseListen, readTextFile, stopSignal, tlsVersionFlag } from "./input.ts";
import { type ValidationProfile, validationProfileOption } from "./profile_option.ts";

interface ServeFlags {
  cert: string;
  key: string;
  clientCa?: string;
  listen: string;
  root?: string;
  upstream?: string;
  tlsMin?: string;
  tlsMax?: string;
  ciphers?: string;
  tickets: boolean;
  profile: ValidationProfile;
  maxConnections: string;
  idleTimeout: string;
}

/** A whole number from 1 to `max` given to `flag`, or a usage error. */
function wholeNumber(flag: string, value: string, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max)
    throw new CliError(`${flag} must be a whole number from 1 to ${max}, not '${value}'`, 2);
  return n;
}

/** Adds `hsmkit serve`. */
export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description(
      "HTTPS server and reverse proxy (mutual TLS with --client-ca); the key stays in its token, KMS or file",
    )
    .requiredOption("--cert <file>", "server certificate chain (PEM, leaf first)")
    .requiredOption("--key <keyref>", "server key: file path, pkcs11: URI or kms:// reference")
    .option("--client-ca <file>", "require client certificates issued by these CAs (PEM)")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8443")
    .option("--root <dir>", "serve static files from this directory")
    .option("--upstream <url>", "reverse proxy to this http://HOST:PORT")
    .option("--tls-min <version>", "lowest TLS version: 1.1, 1.2 or 1.3 (default 1.2)")
    .option("--tls-max <version>", "highest TLS version: 1.1, 1.2 or 1.3")
    .option("--ciphers <list>", "comma-separated IANA (or OpenSSL) cipher suite names, in preference order")
    .addOption(validationProfileOption("client chains (with --client-ca)"))
    .option("--no-tickets", "do not issue TLS session tickets (the session-ID cache stays)")
    .option(
      "--max-connections <n>",
      "connections open at once; more are closed at accept",
      String(DEFAULT_MAX_CONNECTIONS),
    )
    .option(
      "--idle-timeout <seconds>",
      "close a connection that neither reads nor writes for this long",
      String(DEFAULT_IDLE_TIMEOUT_MS / 1000),
    )
    .action(runServe);
}

/** Runs `hsmkit serve` until SIGTERM or SIGINT. */
async function runServe(flags: ServeFlags): Promise<void> {
  if ((flags.root === undefined) === (flags.upstream === undefined))
    throw new CliError("give exactly one of --root DIR or --upstream http://HOST:PORT", 2);
  const listen = parseListen(flags.listen);
  if (!listen) throw new CliError(`bad --listen '${flags.listen}' (expected HOST:PORT)`, 2);
  const { host, port } = listen;
  const maxConnections = wholeNumber("--max-connections", flags.maxConnections, 1_000_000);
  const idleTimeoutMs = wholeNumber("--idle-timeout", flags.idleTimeout, 86_400) * 1000;
  const minVersion = tlsVersionFlag(flags.tlsMin);
  const maxVersion = tlsVersionFlag(flags.tlsMax);
  const cert = readTextFile(flags.cert, "certificate file", 2);
  const clientCa = flags.clientCa ? readTextFile(flags.clientCa, "client CA file", 2) : undefined;
  let key: PrivateKeyHandle | undefined;
  try {
    key = await openKey(flags.key);
    const running = await startServe({
      tls: {
        cert,
        key,
        clientCa,
        minVersion,
        maxVersion,
        ciphers: flags.ciphers,
        sessions: { tickets: flags.tickets },
        profile: flags.profile,
        handshakeTimeout: 15_000,
      },
      host,
      port,
      root: flags.root,
      upstream: flags.upstream,
      maxConnections,
      idleTimeoutMs,
      log: (line) => process.stdout.write(`${line}\n`),
      warn: (line) => process.stderr.write(`${line}\n`),
    });
    const shown = running.address.address.includes(":")
      ? `[${running.address.address}]`
      : running.address.address;
    process.stdout.write(`listening on ${shown}:${running.address.port}\n`);
    const signal = await stopSignal();
    process.stderr.write(`${signal}: finishing requests in flight, then stopping\n`);
    await running.stop();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") throw new CliError(`cannot listen on ${flags.listen}: address in use`, 1);
    if (code === "EACCES") throw new CliError(`cannot listen on ${flags.listen}: permission denied`, 1);
    throw err;
  } finally {
    await key?.close();
  }
}
