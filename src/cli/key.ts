/**
 * `hsmkit key generate` and `hsmkit key public`: thin commands over keys/.
 */
import { type Command, Option } from "commander";
import {
  generateKey,
  isKeyGenType,
  KEY_GEN_TYPES,
  KeyError,
  type KeyErrorKind,
  openKey,
  type PrivateKeyHandle,
  publicKeyPem,
} from "../keys/index.ts";
import { CliError } from "./errors.ts";

/** Words put before a KeyError's message where the message alone would not say what failed. */
const KIND_PREFIX: Partial<Record<KeyErrorKind, string>> = {
  "bad-reference": "bad key reference: ",
  unsupported: "unsupported: ",
  backend: "key backend failed: ",
};

/** Turns a key failure into a one-line CliError; other errors pass through unchanged. */
export function keyErrorToCli(err: unknown): unknown {
  if (!(err instanceof KeyError)) return err;
  const message = err.message.split("\n")[0] ?? err.message;
  return new CliError(`${KIND_PREFIX[err.kind] ?? ""}${message}`);
}

/** Opens a key for a command, with CLI-shaped errors. */
export async function openKeyForCli(ref: string): Promise<PrivateKeyHandle> {
  try {
    return await openKey(ref);
  } catch (err) {
    throw keyErrorToCli(err);
  }
}

async function printPublicKey(handle: PrivateKeyHandle): Promise<void> {
  try {
    process.stdout.write(publicKeyPem(handle));
  } finally {
    await handle.close();
  }
}

/** Adds `key generate` and `key public` to the program. */
export function registerKeyCommands(program: Command): void {
  const key = program.command("key").description("generate key pairs and show public keys");
  const types = Object.keys(KEY_GEN_TYPES);

  key
    .command("generate")
    .description(
      "generate a key pair in a token (non-extractable) or a new key file; prints the public key PEM",
    )
    .requiredOption("--key <keyref>", "where the key goes: FILE, file:FILE?passphrase-file=P, or pkcs11:...")
    .addOption(new Option("--type <type>", "key type").choices(types).makeOptionMandatory())
    .action(async (opts: { key: string; type: string }) => {
      if (!isKeyGenType(opts.type)) throw new CliError(`unknown key type '${opts.type}'`);
      let handle: PrivateKeyHandle;
      try {
        handle = await generateKey(opts.key, opts.type);
      } catch (err) {
        throw keyErrorToCli(err);
      }
      await printPublicKey(handle);
    });

  key
    .command("public")
    .description("print the public key PEM of a key")
    .requiredOption("--key <keyref>", "the key: FILE, file:FILE?passphrase-file=P, pkcs11:... or kms://...")
    .action(async (opts: { key: string }) => {
      await printPublicKey(await openKeyForCli(opts.key));
    });
}
