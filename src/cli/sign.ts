/**
 * `hsmkit sign` / `hsmkit verify`: detached signatures over files of any size with any key
 * reference (file, pkcs11:, kms://), compatible with `openssl dgst -sign / -verify`.
 */
import { createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import type { Command } from "commander";
import { openKey, redactKeyReference } from "../keys/index.ts";
import { assertExportablePublicKey } from "../keys/public_key.ts";
import { KeyError } from "../keys/types.ts";
import { FILE_ALGORITHMS } from "../sign/algorithms.ts";
import { progressBar } from "../sign/progress.ts";
import { signFile } from "../sign/sign_file.ts";
import { verifyFile } from "../sign/verify_file.ts";
import { CliError, messageWithFlags } from "./errors.ts";

const ALGS = Object.keys(FILE_ALGORITHMS).join(" | ");

function ioMessage(err: unknown, path: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return `${path}: no such file`;
  if (code === "EACCES") return `${path}: permission denied`;
  if (code === "EISDIR") return `${path}: is a directory`;
  return messageWithFlags(err);
}

async function sizeOf(command: string, path: string, exitCode: number): Promise<number> {
  try {
    const s = await stat(path);
    if (!s.isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
    return s.size;
  } catch (err) {
    throw new CliError(`${command}: ${ioMessage(err, path)}`, exitCode);
  }
}

async function readPem(path: string, exitCode: number): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new CliError(`verify: ${ioMessage(err, path)}`, exitCode);
  }
}

interface VerifyOptions {
  key?: string;
  pubkey?: string;
  cert?: string;
  alg: string;
  in: string;
  sig: string;
}

async function publicKeyFor(o: VerifyOptions): Promise<KeyObject> {
  const given = [o.key, o.pubkey, o.cert].filter((x) => x !== undefined);
  if (given.length !== 1) throw new CliError("verify: give exactly one of --key, --pubkey, --cert", 2);
  if (o.key !== undefined) {
    const handle = await openKey(o.key).catch((err: Error) => {
      throw new CliError(`verify: ${redactKeyReference(o.key ?? "")}: ${err.message}`, 2);
    });
    await handle.close();
    return handle.publicKey;
  }
  const path = (o.pubkey ?? o.cert) as string;
  const pem = await readPem(path, 2);
  try {
    const key = o.pubkey !== undefined ? createPublicKey(pem) : new X509Certificate(pem).publicKey;
    assertExportablePublicKey(key, path);
    return key;
  } catch (err) {
    if (err instanceof KeyError) throw new CliError(`verify: ${err.message}`, 2);
    throw new CliError(
      `verify: ${path} is not a PEM ${o.pubkey !== undefined ? "public key" : "certificate"}`,
      2,
    );
  }
}

/** Adds `sign`. */
function registerSign(program: Command): void {
  program
    .command("sign")
    .description("sign a file of any size; writes the raw signature (openssl dgst -verify compatible)")
    .requiredOption("--key <keyref>", "key reference: file, pkcs11:..., kms://...")
    .requiredOption("--alg <alg>", ALGS)
    .requiredOption("--in <file>", "file to sign")
    .requiredOption("--out <file>", "where to write the signature")
    .action(async (o: { key: string; alg: string; in: string; out: string }) => {
      const size = await sizeOf("sign", o.in, 1);
      const key = await openKey(o.key).catch((err: Error) => {
        throw new CliError(`sign: ${redactKeyReference(o.key)}: ${err.message}`);
      });
      const bar = progressBar("signing", size);
      try {
        await signFile({
          key,
          algorithm: o.alg,
          input: o.in,
          output: o.out,
          ...(bar ? { onProgress: bar.update } : {}),
        });
      } catch (err) {
        throw new CliError(`sign: ${ioMessage(err, o.in)}`);
      } finally {
        bar?.finish();
        await key.close();
      }
    });
}

/** Adds `verify`. */
function registerVerify(program: Command): void {
  program
    .command("verify")
    .description(
      "check a detached file signature; prints 'Verified OK' (exit 0) or 'Verification failure' (exit 1)",
    )
    .option("--key <keyref>", "the signing key's reference (its public half is used)")
    .option("--pubkey <pem>", "public key PEM file")
    .option("--cert <pem>", "certificate PEM file")
    .requiredOption("--alg <alg>", ALGS)
    .requiredOption("--in <file>", "signed file")
    .requiredOption("--sig <file>", "signature file")
    .action(async (o: VerifyOptions) => {
      const size = await sizeOf("verify", o.in, 2);
      const publicKey = await publicKeyFor(o);
      let signature: Buffer;
      try {
        signature = await readFile(o.sig);
      } catch (err) {
        throw new CliError(`verify: ${ioMessage(err, o.sig)}`, 2);
      }
      const bar = progressBar("verifying", size);
      let ok: boolean;
      try {
        ok = await verifyFile({
          publicKey,
          algorithm: o.alg,
          input: o.in,
          signature,
          ...(bar ? { onProgress: bar.update } : {}),
        });
      } catch (err) {
        throw new CliError(`verify: ${ioMessage(err, o.in)}`, 2);
      } finally {
        bar?.finish();
      }
      process.stdout.write(ok ? "Verified OK\n" : "Verification failure\n");
      if (!ok) process.exitCode = 1;
    });
}

/** Adds `sign` and `verify`. */
export function registerSignCommands(program: Command): void {
  registerSign(program);
  registerVerify(program);
}
