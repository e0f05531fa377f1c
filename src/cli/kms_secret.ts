/**
 * `hsmkit kms secret ...`: secrets GetSecretValue serves (create, put-value, list, get,
 * delete). Values come from a file, never from the command line (it would show in `ps` and
 * shell history); text values lose one trailing newline, as passphrase files do.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { fsReason, readSecretFile, warnIfSecretFileExposed } from "../keys/secret_file.ts";
import {
  adminCreateSecret,
  adminDeleteSecret,
  adminGetSecretValue,
  adminPutSecretValue,
  formatTable,
  secretTable,
} from "../kms/admin.ts";
import { MAX_SECRET_BYTES } from "../kms/secrets.ts";
import { CliError, messageWithFlags } from "./errors.ts";
import { type MasterOptions, masterOptions, out, withInstance } from "./kms_common.ts";

/** A value file: text minus one trailing newline, or with --binary the exact bytes. */
async function readValue(path: string, binary: boolean): Promise<Buffer> {
  if (!binary) return readSecretFile(path, "secret value file", "not-found", MAX_SECRET_BYTES);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new CliError(`kms: cannot read secret value file '${path}': ${fsReason(err)}`);
  }
  warnIfSecretFileExposed(path, "secret value file");
  return data;
}

/** Reads the value, runs `use`, zeroes the value. */
async function withValue<T>(path: string, binary: boolean, use: (value: Buffer) => Promise<T>): Promise<T> {
  let value: Buffer;
  try {
    value = await readValue(path, binary);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`kms: ${messageWithFlags(err)}`);
  }
  try {
    return await use(value);
  } finally {
    value.fill(0);
  }
}

/** Adds `kms secret create`. */
function registerSecretCreate(secret: Command): void {
  masterOptions(secret.command("create").description("create a secret with its first value (ACSCurrent)"))
    .requiredOption("--name <name>", "secret name (letters, digits, _ / + = . @ -)")
    .requiredOption("--value-file <file>", "file holding the value")
    .option("--key <id|alias>", "AES key that seals the values (default: the instance's secrets key)")
    .option("--version-id <id>", "id of the first version (default: a random UUID)")
    .option("--binary", "store the file's exact bytes (GetSecretValue returns them base64)")
    .option("--description <text>", "description", "")
    .action(
      (
        o: MasterOptions & {
          name: string;
          valueFile: string;
          key?: string;
          versionId?: string;
          binary?: boolean;
          description: string;
        },
      ) =>
        withValue(o.valueFile, o.binary === true, (value) =>
          withInstance(o, async (i) => {
            const version = await adminCreateSecret(i, {
              name: o.name,
              value,
              binary: o.binary === true,
              description: o.description,
              ...(o.key !== undefined ? { keyId: o.key } : {}),
              ...(o.versionId !== undefined ? { versionId: o.versionId } : {}),
            });
            out(version.versionId);
          }),
        ),
    );
}

/** Adds `kms secret put-value`. */
function registerSecretPutValue(secret: Command): void {
  masterOptions(
    secret
      .command("put-value")
      .description("store a new value; it becomes ACSCurrent, the old one ACSPrevious"),
  )
    .requiredOption("--name <name>", "secret name")
    .requiredOption("--value-file <file>", "file holding the value")
    .option("--version-id <id>", "id of the new version (default: a random UUID)")
    .action((o: MasterOptions & { name: string; valueFile: string; versionId?: string }) =>
      withInstance(o, async (i) => {
        const binary = (await i.secrets.require(o.name)).dataType === "binary";
        await withValue(o.valueFile, binary, async (value) =>
          out((await adminPutSecretValue(i, o.name, value, o.versionId)).versionId),
        );
      }),
    );
}

/** Adds `kms secret list`. */
function registerSecretList(secret: Command): void {
  masterOptions(secret.command("list").description("list secrets (never their values)")).action(
    (o: MasterOptions) =>
      withInstance(o, async (i) =>
        out(formatTable(["SECRET", "TYPE", "KEY", "VERSIONS", "CURRENT", "CREATED"], await secretTable(i))),
      ),
  );
}

/** Adds `kms secret get`. */
function registerSecretGet(secret: Command): void {
  masterOptions(secret.command("get").description("write a secret's value to stdout (audited)"))
    .requiredOption("--name <name>", "secret name")
    .option("--version-id <id>", "a version by id")
    .option("--version-stage <stage>", "a version by stage (default ACSCurrent)")
    .action((o: MasterOptions & { name: string; versionId?: string; versionStage?: string }) =>
      withInstance(o, async (i) => {
        const read = await adminGetSecretValue(i, o.name, {
          ...(o.versionId !== undefined ? { versionId: o.versionId } : {}),
          ...(o.versionStage !== undefined ? { stage: o.versionStage } : {}),
        });
        // Zeroed once written: the stream may still hold the buffer when write() returns.
        await new Promise<void>((resolve) => process.stdout.write(read.value, () => resolve()));
        read.value.fill(0);
      }),
    );
}

/** Adds `kms secret delete`. */
function registerSecretDelete(secret: Command): void {
  masterOptions(secret.command("delete").description("delete a secret and every value, for good"))
    .requiredOption("--name <name>", "secret name")
    .action((o: MasterOptions & { name: string }) =>
      withInstance(o, async (i) => {
        await adminDeleteSecret(i, o.name);
        out(`${o.name} deleted`);
      }),
    );
}

/** Adds `kms secret`. */
export function registerSecrets(kms: Command): void {
  const secret = kms.command("secret").description("manage secrets (GetSecretValue)");
  registerSecretCreate(secret);
  registerSecretPutValue(secret);
  registerSecretList(secret);
  registerSecretGet(secret);
  registerSecretDelete(secret);
}
