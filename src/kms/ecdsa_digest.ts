/**
 * ECDSA over a precomputed digest, which node:crypto cannot do (`crypto.sign(null, d, ecKey)`
 * hashes `d` again). OpenSSL can: `openssl pkeyutl` signs its input as a digest. So the
 * KMS hands the digest to a short-lived `openssl pkeyutl` child, with the private key passed
 * over a pipe, never through a file, argument or environment variable. (Node gives a child
 * socketpairs, which OpenSSL cannot open by /dev/fd path, so bash's process substitution
 * turns fd 3 and fd 4 into real pipes: `-inkey <(cat <&3)`.)
 *
 * The cost is one process per operation (a few milliseconds); it is only paid for EC keys
 * asked to sign or verify a DIGEST. Messages (MessageType RAW) are signed in process.
 */
import { spawn } from "node:child_process";
import type { KeyObject } from "node:crypto";
import { KmsServiceError } from "./errors.ts";

const OPENSSL = process.env.HSMKIT_OPENSSL ?? "openssl";
const TIMEOUT_MS = 10_000;
const MAX_PARALLEL = 4;

let running = 0;
const waiting: (() => void)[] = [];

async function slot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= MAX_PARALLEL) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

interface PkeyutlResult {
  code: number | null;
  stdout: Buffer;
}

/** Runs `openssl pkeyutl ARGS` with the key DER on fd 3, `extra` on fd 4, the digest on stdin. */
function pkeyutl(args: string[], keyDer: Buffer, digest: Uint8Array, extra?: Buffer): Promise<PkeyutlResult> {
  return new Promise((resolve, reject) => {
    const stdio: ("pipe" | "ignore")[] = ["pipe", "pipe", "pipe", "pipe"];
    if (extra) stdio.push("pipe");
    const script = `exec "$0" pkeyutl ${args.join(" ")}`;
    const child = spawn("bash", ["-c", script, OPENSSL], { stdio });
    const out: Buffer[] = [];
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    child.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      keyDer.fill(0);
      reject(
        err.code === "ENOENT"
          ? new KmsServiceError(
              "UnsupportedOperation",
              "ECDSA over a precomputed digest needs bash and the openssl command, and one is missing",
            )
          : err,
      );
    });
    child.stdout?.on("data", (c: Buffer) => out.push(c));
    child.stderr?.resume();
    child.once("close", (code) => {
      clearTimeout(timer);
      keyDer.fill(0);
      resolve({ code, stdout: Buffer.concat(out) });
    });
    const pipes = child.stdio as unknown as (NodeJS.WritableStream & {
      on(e: "error", f: () => void): void;
    })[];
    for (const p of pipes.slice(3)) p.on("error", () => {});
    pipes[3]?.end(keyDer);
    if (extra) pipes[4]?.end(extra);
    child.stdin?.on("error", () => {});
    child.stdin?.end(digest);
  });
}

/** ECDSA-signs `digest` with an EC private key; returns the DER `Ecdsa-Sig-Value`. */
export function ecdsaSignDigest(privateKey: KeyObject, digest: Uint8Array): Promise<Buffer> {
  return slot(async () => {
    const der = privateKey.export({ type: "pkcs8", format: "der" });
    const result = await pkeyutl(["-sign", "-keyform", "DER", "-inkey", "<(cat <&3)"], der, digest);
    if (result.code !== 0 || result.stdout.length === 0) {
      throw new KmsServiceError("InternalFailure", "ECDSA digest signing failed");
    }
    return result.stdout;
  });
}

/** Verifies a DER ECDSA signature over `digest` with an EC public key. */
export function ecdsaVerifyDigest(
  publicKey: KeyObject,
  digest: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return slot(async () => {
    const der = publicKey.export({ type: "spki", format: "der" });
    const args = ["-verify", "-pubin", "-keyform", "DER", "-inkey", "<(cat <&3)", "-sigfile", "<(cat <&4)"];
    const result = await pkeyutl(args, der, digest, Buffer.from(signature));
    return result.code === 0;
  });
}
