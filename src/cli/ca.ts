/**
 * `hsmkit ca init|intermediate|crl|list`: thin commands over pki/. Also registers the
 * `cert` group (cert.ts), which belongs with the CA.
 */
import { type Command, Option } from "commander";
import { KEY_GEN_TYPES } from "../keys/index.ts";
import {
  CA_SIGNATURE_SCHEMES,
  type CaSignatureScheme,
  createIntermediate,
  initCa,
  isCaSignatureScheme,
  loadCaDirectory,
  parseKeyType,
  publishCrl,
} from "../pki/index.ts";
import { intOption, registerCertCommands } from "./cert.ts";
import { CliError } from "./errors.ts";

/** Options shared by `ca init` and `ca intermediate`. */
interface CaKeyFlags {
  dir: string;
  cn: string;
  key?: string;
  type?: string;
  days?: number;
  pathLen?: number;
  sigAlg?: string;
  rsaPss?: boolean;
  crlUrl?: string;
  passwordFile?: string;
}

function addCaKeyOptions(command: Command): Command {
  return command
    .requiredOption("--dir <dir>", "the CA directory to create (absent or empty)")
    .requiredOption("--cn <name>", "the CA's common name")
    .option("--key <keyref>", "the CA key: pkcs11:..., kms://... or a file (with --type: generate it there)")
    .addOption(new Option("--type <type>", "generate a key of this type").choices(Object.keys(KEY_GEN_TYPES)))
    .option("--days <n>", "validity in days", intOption("--days"))
    .option("--path-len <n>", "basicConstraints path length", intOption("--path-len"))
    .addOption(
      new Option("--sig-alg <scheme>", "signature scheme the CA signs with").choices(CA_SIGNATURE_SCHEMES),
    )
    .option("--rsa-pss", "sign with RSA-PSS (RSA keys)")
    .option("--crl-url <url>", "CRL distribution point put into the certificates this CA issues")
    .option("--password-file <file>", "encrypt a generated CA key file with this password");
}

function newCaOptions(flags: CaKeyFlags) {
  if (flags.key === undefined && flags.type === undefined)
    throw new CliError("give --key KEYREF or --type TYPE");
  let signature: CaSignatureScheme | undefined;
  if (flags.sigAlg !== undefined) {
    if (!isCaSignatureScheme(flags.sigAlg)) throw new CliError(`unknown signature scheme '${flags.sigAlg}'`);
    signature = flags.sigAlg;
  }
  return {
    dir: flags.dir,
    cn: flags.cn,
    ...(flags.key !== undefined ? { key: flags.key } : {}),
    ...(flags.type !== undefined ? { type: parseKeyType(flags.type) } : {}),
    ...(flags.days !== undefined ? { days: flags.days } : {}),
    ...(flags.pathLen !== undefined ? { pathLen: flags.pathLen } : {}),
    ...(signature ? { signature } : {}),
    ...(flags.rsaPss ? { pss: true } : {}),
    ...(flags.crlUrl !== undefined ? { crlUrl: flags.crlUrl } : {}),
    ...(flags.passwordFile !== undefined ? { passwordFile: flags.passwordFile } : {}),
  };
}

/** ca.json never keeps a PIN; tell the user how the CA's key will get one later. */
function notePinNotKept(flags: CaKeyFlags): void {
  if (flags.key !== undefined && /[?&]pin-value=/i.test(flags.key)) {
    process.stderr.write(
      "hsmkit: note: ca.json keeps the key reference without its pin-value; when this CA signs, give the PIN with pin-source=FILE in --ca-key/--parent-key, or HSMKIT_PIN\n",
    );
  }
}

function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Adds `ca init`. */
function registerCaInit(ca: Command): void {
  addCaKeyOptions(
    ca.command("init").description("create a root CA directory with a self-signed certificate"),
  ).action(async (flags: CaKeyFlags) => {
    const created = await initCa(newCaOptions(flags));
    notePinNotKept(flags);
    process.stdout.write(`created root CA ${created.certificate.subject} in ${created.dir}\n`);
  });
}

/** Adds `ca intermediate`. */
function registerCaIntermediate(ca: Command): void {
  addCaKeyOptions(ca.command("intermediate").description("create an intermediate CA signed by a parent CA"))
    .requiredOption("--parent <dir>", "the parent CA directory")
    .option(
      "--parent-key <keyref>",
      "the parent's key reference, overriding its ca.json (e.g. to give the PIN)",
    )
    .option(
      "--permit <names>",
      "name constraints: permitted subtrees, e.g. DNS:example.com,IP:10.0.0.0/8,DN:O=Acme",
    )
    .option("--exclude <names>", "name constraints: excluded subtrees")
    .action(
      async (
        flags: CaKeyFlags & { parent: string; parentKey?: string; permit?: string; exclude?: string },
      ) => {
        const created = await createIntermediate({
          ...newCaOptions(flags),
          parent: flags.parent,
          ...(flags.parentKey !== undefined ? { parentKey: flags.parentKey } : {}),
          ...(flags.permit !== undefined ? { permitted: flags.permit } : {}),
          ...(flags.exclude !== undefined ? { excluded: flags.exclude } : {}),
        });
        notePinNotKept(flags);
        process.stdout.write(`created intermediate CA ${created.certificate.subject} in ${created.dir}\n`);
      },
    );
}

/** Adds `ca crl`. */
function registerCaCrl(ca: Command): void {
  ca.command("crl")
    .description("sign a CRL of every certificate revoked so far")
    .requiredOption("--dir <dir>", "the CA directory")
    .requiredOption("--out <file>", "where to write the CRL (PEM)")
    .option("--days <n>", "days until the next update (default 7)", intOption("--days"))
    .option("--ca-key <keyref>", "the CA key reference, overriding ca.json")
    .action(async (flags: { dir: string; out: string; days?: number; caKey?: string }) => {
      const crl = await publishCrl({
        dir: flags.dir,
        out: flags.out,
        ...(flags.days !== undefined ? { days: flags.days } : {}),
        ...(flags.caKey !== undefined ? { caKey: flags.caKey } : {}),
      });
      process.stdout.write(`wrote CRL with ${crl.entries.length} revoked certificate(s) to ${flags.out}\n`);
    });
}

/** Adds `ca list`. */
function registerCaList(ca: Command): void {
  ca.command("list")
    .description("list the certificates a CA issued")
    .requiredOption("--dir <dir>", "the CA directory")
    .action(async (flags: { dir: string }) => {
      const dir = await loadCaDirectory(flags.dir);
      for (const c of dir.index.certificates) {
        const state = c.revoked
          ? `revoked ${c.revoked.at} (${c.revoked.reason})`
          : `valid until ${c.notAfter}`;
        process.stdout.write(`${c.serial}  ${c.profile.padEnd(12)}  ${c.subject}  ${state}\n`);
      }
      if (dir.index.certificates.length === 0) {
        process.stdout.write(
          `no certificates issued yet by ${dir.certificate.subject} (CA valid until ${iso(dir.certificate.notAfter)})\n`,
        );
      }
    });
}

/** Adds the `ca` and `cert` command groups to the program. */
export function registerCaCommands(program: Command): void {
  const ca = program
    .command("ca")
    .description("run a private CA whose keys stay in a token, the KMS or a file");
  registerCaInit(ca);
  registerCaIntermediate(ca);
  registerCaCrl(ca);
  registerCaList(ca);
  registerCertCommands(program);
}
