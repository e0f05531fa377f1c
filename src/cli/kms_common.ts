/**
 * What every `hsmkit kms` command shares: the data directory, store and master key flags,
 * opening the instance around the work, and printing.
 */
import { type Command, Option } from "commander";
import { KmsInstance, type OpenOptions } from "../kms/instance.ts";
import { CliError, messageWithFlags } from "./errors.ts";

/** The options every `kms` command takes. */
export interface MasterOptions {
  data?: string;
  store?: string;
  passphraseFile?: string;
  masterKey?: string;
  auditAnchor?: string;
}

/** Adds the data directory or store, and the master key options, to a command. */
export function masterOptions(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "KMS data directory (the SQLite store; with --store, where ca.pem goes)")
    .addOption(
      new Option(
        "--store <url>",
        "keep the state in PostgreSQL, shared by every node: postgres://USER@HOST:PORT/DATABASE",
      ).env(STORE_ENV),
    )
    .option(
      "--passphrase-file <file>",
      "file holding the master key passphrase (else $HSMKIT_KMS_PASSPHRASE)",
    )
    .option("--master-key <pkcs11-uri>", "master key in a PKCS#11 token: pkcs11:token=T;object=O?pin-value=P")
    .option(
      "--audit-anchor <file>",
      "keep the audit log's newest head (count + MAC) in FILE and check it on 'audit verify' (catches a rolled-back database); give every command the same FILE, off the data disk",
    );
}

/** The environment form of --store. */
const STORE_ENV = "HSMKIT_KMS_STORE";

function urlHasPassword(url: string): boolean {
  try {
    return new URL(url).password !== "";
  } catch {
    return false;
  }
}

/** The instance options those flags ask for. */
export function openOptions(o: MasterOptions, create: boolean): OpenOptions {
  if (o.data === undefined && o.store === undefined)
    throw new CliError(`kms: give --data DIR or --store postgres://... (or set ${STORE_ENV})`);
  if (o.store !== undefined && !/^postgres(ql)?:\/\//.test(o.store))
    throw new CliError("kms: --store wants postgres://USER@HOST:PORT/DATABASE");
  if (o.store !== undefined && o.store !== process.env[STORE_ENV] && urlHasPassword(o.store)) {
    process.stderr.write(
      `kms: warning: the --store URL holds a password, which other users of this machine can read in the process list; give it through ${STORE_ENV}, PGPASSWORD or ~/.pgpass\n`,
    );
  }
  return {
    ...(o.data !== undefined ? { dataDir: o.data } : {}),
    ...(o.store !== undefined ? { store: o.store } : {}),
    create,
    ...(o.passphraseFile !== undefined ? { passphraseFile: o.passphraseFile } : {}),
    ...(o.masterKey !== undefined ? { pkcs11: o.masterKey } : {}),
    ...(o.auditAnchor !== undefined ? { auditAnchor: o.auditAnchor } : {}),
  };
}

/** Opens the instance those flags name; a failure becomes a one-line CliError. */
export async function openInstance(o: MasterOptions, create: boolean): Promise<KmsInstance> {
  const options = openOptions(o, create);
  try {
    return await KmsInstance.open(options);
  } catch (err) {
    throw new CliError(`kms: ${messageWithFlags(err)}`);
  }
}

/** Opens the data directory, runs `work`, closes it; every failure becomes a one-line CliError. */
export async function withInstance<T>(
  o: MasterOptions,
  work: (i: KmsInstance) => Promise<T> | T,
  create = false,
): Promise<T> {
  const instance = await openInstance(o, create);
  try {
    return await work(instance);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`kms: ${messageWithFlags(err)}`);
  } finally {
    await instance.close();
  }
}

/** One line on stdout. */
export const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
