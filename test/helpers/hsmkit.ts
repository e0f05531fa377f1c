/**
 * Helpers for driving hsmkit itself in tests: the CLI as a child process, and the HTTPS
 * client in-process, plus a token client identity (key in SoftHSM2, certificate from the
 * test PKI).
 */
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { type CurlRequest, curl } from "../../src/https/curl.ts";
import { openKey, publicKeyPem } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { distIsCurrent, REPO } from "./build.ts";
import { type ChainFiles, issueCert, type Pki } from "./pki.ts";
import { type RunResult, runCommand } from "./process.ts";
import { createToken, type TestToken, tokenKey } from "./softhsm.ts";

/**
 * The hsmkit CLI of this checkout: bin/hsmkit (the compiled dist/, which `npm test` builds first)
 * when dist/ is current, else the TypeScript sources through tsx, so a test never runs stale code.
 */
export const HSMKIT_BIN = distIsCurrent()
  ? join(REPO, "bin", "hsmkit")
  : join(import.meta.dirname, "hsmkit-src");

/** Runs the hsmkit CLI (from source) with ARGS; resolves whatever the exit code. */
export function hsmkit(
  args: readonly string[],
  options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return runCommand(HSMKIT_BIN, [...args], {
    input: options.input,
    timeoutMs: options.timeoutMs ?? 60_000,
    ...(options.env ? { env: options.env } : {}),
  });
}

/** The outcome of an in-process request. */
export interface Fetched {
  status: number;
  body: string;
  protocol: string | null;
  cipher: string | undefined;
}

/** One HTTPS request through hsmkit's TLS client, the body collected as text. */
export async function fetchVia(req: Omit<CurlRequest, "output">): Promise<Fetched> {
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on("data", (c: Buffer) => chunks.push(c));
  const res = await curl({ ...req, output });
  return {
    status: res.status,
    body: Buffer.concat(chunks).toString(),
    protocol: res.protocol,
    cipher: res.cipher,
  };
}

/** A client identity whose private key lives in a SoftHSM2 token. */
export interface TokenIdentity {
  token: TestToken;
  /** The pkcs11: key reference. */
  ref: string;
  handle: PrivateKeyHandle;
  /** Certificate chain issued by the test PKI's intermediate for the token key. */
  cert: ChainFiles;
}

/** Generates a key in a fresh token and has the test PKI certify it for client (or server) use. */
export async function tokenIdentity(
  pki: Pki,
  type: "rsa2048" | "ec-p256",
  commonName: string,
  profile: "client" | "server" = "client",
): Promise<TokenIdentity> {
  const token = await createToken();
  const ref = await tokenKey(token, commonName, type);
  const handle = await openKey(ref);
  const cert = await issueCert(pki, {
    name: commonName,
    profile,
    commonName,
    publicKeyPem: publicKeyPem(handle),
    dnsNames: profile === "server" ? ["localhost"] : undefined,
    ipAddresses: profile === "server" ? ["127.0.0.1"] : undefined,
  });
  return { token, ref, handle, cert };
}
