/**
 * `hsmkit cert issue|pfx|revoke|show|verify`: thin commands over pki/ and, for verify,
 * over the TLS stack's own path validation (tls/x509 verifyChain), so scripts get exactly
 * the verdict a handshake would.
 */
import { readFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import { KEY_GEN_TYPES } from "../keys/index.ts";
import { exportPfx } from "../pki/export.ts";
import {
  CA_SIGNATURE_SCHEMES,
  describeFile,
  isCaSignatureScheme,
  issueCertificate,
  parseKeyType,
  parseReason,
  REVOCATION_REASONS,
  revokeCertificate,
} from "../pki/index.ts";
import {
  type Certificate,
  Crl,
  decodePemBlocks,
  loadPemCertificates,
  type Purpose,
  type ValidationProfile,
  verifyChain,
} from "../tls/x509/index.ts";
import { CliError } from "./errors.ts";
import { validationProfileOption } from "./profile_option.ts";

/** Parses a whole-number option, with the flag's name in the error. */
export function intOption(flag: string): (value: string) => number {
  return (value: string) => {
    if (!/^\d{1,9}$/.test(value)) throw new CliError(`${flag} must be a whole number, not '${value}'`);
    return Number(value);
  };
}

/** Exit status of `cert verify` when its inputs cannot be read (a refusal is 1). */
const VERIFY_INPUT_ERROR = 2;

interface IssueFlags {
  ca: string;
  profile: string;
  cn?: string;
  san?: string;
  key?: string;
  csr?: string;
  type?: string;
  out: string;
  days?: number;
  passwordFile?: string;
  caKey?: string;
  sigAlg?: string;
}

async function issueAction(flags: IssueFlags): Promise<void> {
  if (flags.profile !== "server" && flags.profile !== "client") {
    throw new CliError(`--profile must be server or client, not '${flags.profile}'`);
  }
  if (flags.sigAlg !== undefined && !isCaSignatureScheme(flags.sigAlg)) {
    throw new CliError(`unknown signature scheme '${flags.sigAlg}'`);
  }
  const issued = await issueCertificate({
    ca: flags.ca,
    profile: flags.profile,
    out: flags.out,
    ...(flags.cn !== undefined ? { cn: flags.cn } : {}),
    ...(flags.san !== undefined ? { san: flags.san } : {}),
    ...(flags.key !== undefined ? { key: flags.key } : {}),
    ...(flags.csr !== undefined ? { csr: flags.csr } : {}),
    ...(flags.type !== undefined ? { type: parseKeyType(flags.type) } : {}),
    ...(flags.days !== undefined ? { days: flags.days } : {}),
    ...(flags.passwordFile !== undefined ? { passwordFile: flags.passwordFile } : {}),
    ...(flags.caKey !== undefined ? { caKey: flags.caKey } : {}),
    ...(flags.sigAlg !== undefined && isCaSignatureScheme(flags.sigAlg) ? { signature: flags.sigAlg } : {}),
  });
  process.stdout.write(
    `issued ${flags.profile} certificate ${issued.certificate.subject}, serial ${issued.serial}\n`,
  );
  process.stdout.write(`wrote ${issued.certPath}${issued.keyPath ? ` and ${issued.keyPath}` : ""}\n`);
}

interface VerifyFlags {
  cacert: string;
  untrusted?: string[];
  host?: string;
  ip?: string;
  purpose: string;
  at?: string;
  maxDepth?: number;
  crl?: string[];
  profile: ValidationProfile;
}

function readCertificates(path: string): Certificate[] {
  try {
    return loadPemCertificates(path);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), VERIFY_INPUT_ERROR);
  }
}

/** Every CRL in a file: DER, or PEM with one or more "X509 CRL" blocks (as nginx's ssl_crl takes). */
async function readCrls(path: string): Promise<Crl[]> {
  try {
    const data = await readFile(path);
    const text = data.toString("latin1");
    if (!text.includes("-----BEGIN")) return [Crl.parse(new Uint8Array(data))];
    const crls = decodePemBlocks(text)
      .filter((b) => b.label === "X509 CRL")
      .map((b) => Crl.fromDer(b.der));
    if (crls.length === 0) throw new Error("no X509 CRL block in the file");
    return crls;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
    throw new CliError(`cannot use CRL ${path}: ${why}`, VERIFY_INPUT_ERROR);
  }
}

async function verifyAction(leafPath: string, flags: VerifyFlags): Promise<void> {
  if (flags.host !== undefined && flags.ip !== undefined) {
    throw new CliError("give --host or --ip, not both", VERIFY_INPUT_ERROR);
  }
  let at: Date | undefined;
  if (flags.at !== undefined) {
    at = new Date(flags.at);
    if (!/^\d{4}-\d\d-\d\d/.test(flags.at) || Number.isNaN(at.getTime())) {
      throw new CliError(`--at '${flags.at}' is not an ISO-8601 time`, VERIFY_INPUT_ERROR);
    }
  }
  const [leaf, ...rest] = readCertificates(leafPath);
  if (!leaf) throw new CliError(`${leafPath} holds no certificate`, VERIFY_INPUT_ERROR);
  const roots = readCertificates(flags.cacert);
  if (roots.length === 0) throw new CliError(`${flags.cacert} holds no certificate`, VERIFY_INPUT_ERROR);
  // Certificates after the leaf in its own file (a PREFIX.pem chain) are untrusted helpers too.
  const intermediates = [...rest, ...(flags.untrusted ?? []).flatMap(readCertificates)];
  const crls = (await Promise.all((flags.crl ?? []).map(readCrls))).flat();
  const result = verifyChain(leaf, {
    roots,
    intermediates,
    purpose: flags.purpose as Purpose,
    ...(flags.host !== undefined ? { host: flags.host } : {}),
    ...(flags.ip !== undefined ? { ip: flags.ip } : {}),
    ...(at ? { at } : {}),
    ...(flags.maxDepth !== undefined ? { maxDepth: flags.maxDepth } : {}),
    ...(crls.length > 0 ? { crls } : {}),
    profile: flags.profile,
  });
  if (result.ok) {
    process.stdout.write("OK\n");
    return;
  }
  if (result.code === "bad-input") throw new CliError(result.reason, VERIFY_INPUT_ERROR);
  process.stdout.write(`${result.reason} (${result.code})\n`);
  process.exitCode = 1;
}

/** `cert issue`. */
function registerIssue(cert: Command): void {
  cert
    .command("issue")
    .description("issue a server or client certificate; writes PREFIX.pem (leaf + chain) and PREFIX.key")
    .requiredOption("--ca <dir>", "the issuing CA directory")
    .addOption(
      new Option("--profile <profile>", "certificate profile")
        .choices(["server", "client"])
        .makeOptionMandatory(),
    )
    .option("--cn <name>", "subject common name (with --csr, defaults to the CSR's)")
    .option("--san <names>", "subject alternative names: DNS:host,IP:addr,...")
    .option("--key <keyref>", "certify this key (with --type: generate it there first)")
    .option(
      "--csr <file>",
      "certify the key of this PKCS#10 request (its signature is checked; the profile, not the request, decides the extensions)",
    )
    .addOption(
      new Option("--type <type>", "generate a key of this type into PREFIX.key").choices(
        Object.keys(KEY_GEN_TYPES),
      ),
    )
    .requiredOption("--out <prefix>", "output prefix")
    .option("--days <n>", "validity in days (default 365, within the CA's)", intOption("--days"))
    .option("--password-file <file>", "encrypt a generated PREFIX.key with this password")
    .option("--ca-key <keyref>", "the CA key reference, overriding ca.json (e.g. to give the PIN)")
    .addOption(
      new Option("--sig-alg <scheme>", "signature scheme, overriding the CA's").choices(CA_SIGNATURE_SCHEMES),
    )
    .action(issueAction);
}

/** `cert pfx`. */
function registerPfx(cert: Command): void {
  cert
    .command("pfx")
    .description("export a certificate chain and its file key as PKCS#12 (PFX)")
    .requiredOption("--cert <file>", "PEM chain, leaf first (PREFIX.pem)")
    .requiredOption("--key <keyref>", "the leaf's key file (token and KMS keys cannot be exported)")
    .requiredOption("--out <file>", "the PFX to write")
    .requiredOption("--password-file <file>", "file holding the PFX password")
    .option("--legacy", "3DES and a SHA-1 MAC, for older Windows")
    .option("--name <friendly>", "friendly name (default: the leaf's CN)")
    .action(
      async (flags: {
        cert: string;
        key: string;
        out: string;
        passwordFile: string;
        legacy?: boolean;
        name?: string;
      }) => {
        const out = await exportPfx({
          cert: flags.cert,
          key: flags.key,
          out: flags.out,
          passwordFile: flags.passwordFile,
          legacy: flags.legacy === true,
          ...(flags.name !== undefined ? { name: flags.name } : {}),
        });
        process.stdout.write(`wrote ${flags.legacy ? "legacy " : ""}PFX ${out}\n`);
      },
    );
}

/** `cert revoke`. */
function registerRevoke(cert: Command): void {
  cert
    .command("revoke")
    .description("revoke a certificate the CA issued (publish with 'ca crl')")
    .requiredOption("--ca <dir>", "the issuing CA directory")
    .requiredOption("--serial <hex>", "serial number in hex")
    .addOption(new Option("--reason <reason>", "revocation reason").choices(REVOCATION_REASONS))
    .action(async (flags: { ca: string; serial: string; reason?: string }) => {
      const entry = await revokeCertificate({
        ca: flags.ca,
        serial: flags.serial,
        ...(flags.reason !== undefined ? { reason: parseReason(flags.reason) } : {}),
      });
      process.stdout.write(`revoked ${entry.serial} (${entry.subject})\n`);
    });
}

/** `cert show`. */
function registerShow(cert: Command): void {
  cert
    .command("show")
    .description("summarise the certificates or CRLs in a file")
    .argument("<file>", "PEM or DER file")
    .action(async (file: string) => {
      let data: Buffer;
      try {
        data = await readFile(file);
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
      }
      process.stdout.write(`${describeFile(data, file)}\n`);
    });
}

/** Collects a repeatable option's values. */
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `cert verify`. */
function registerVerify(cert: Command): void {
  cert
    .command("verify")
    .description("validate a certificate path as the TLS stack does; prints OK or the reason")
    .argument("<leaf>", "PEM file whose first certificate is the leaf (the rest are untrusted intermediates)")
    .requiredOption("--cacert <file>", "trusted roots (PEM)")
    .option("--untrusted <file>", "untrusted intermediates (PEM); repeatable", collect)
    .option("--host <name>", "host name the certificate must match")
    .option("--ip <address>", "IP address the certificate must match")
    .addOption(
      new Option("--purpose <purpose>", "TLS server or client")
        .choices(["server", "client"])
        .default("server"),
    )
    .option("--at <time>", "verify at this ISO-8601 time instead of now")
    .option("--max-depth <n>", "most intermediates allowed", intOption("--max-depth"))
    .option("--crl <file>", "check revocation with this CRL; repeatable", collect)
    .addOption(validationProfileOption("the chain"))
    .action(verifyAction);
}

/** Adds the `cert` command group to the program (called from registerCaCommands). */
export function registerCertCommands(program: Command): void {
  const cert = program.command("cert").description("issue, export, revoke, show and verify certificates");
  registerIssue(cert);
  registerPfx(cert);
  registerRevoke(cert);
  registerShow(cert);
  registerVerify(cert);
}
