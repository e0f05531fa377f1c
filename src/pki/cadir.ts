/**
 * The CA directory on disk:
 *
 *   ca.crt      this CA's certificate (PEM)
 *   ca.json     settings: the key reference (never key bytes for a token or KMS key),
 *               signature scheme, CRL URL
 *   ca.key      only for a CA key generated into a file: PKCS#8, mode 0600
 *   chain.pem   intermediates only: ca.crt and its parents up to, not including, the root
 *   root.crt    intermediates only: the root at the top of the chain
 *   index.json  every certificate issued (serial, subject, validity, revocation) and the
 *               CRL number
 *   crl.pem     the last CRL published
 *
 * Loading checks every file strictly, so a corrupted directory is refused with a message
 * naming the bad file before any key is touched.
 */
import { readFile, stat } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import * as x509 from "@peculiar/x509";
import { parseFileRef } from "../keys/file.ts";
import { withoutPinValue } from "../keys/pkcs11_uri.ts";
import { normalizeSerial, randomSerial } from "./certificate.ts";
import { PkiError } from "./errors.ts";
import type { Profile } from "./profiles.ts";
import { type CaSignatureScheme, isCaSignatureScheme } from "./signer.ts";

/** File names inside a CA directory. */
export const CA_FILES = {
  certificate: "ca.crt",
  config: "ca.json",
  key: "ca.key",
  chain: "chain.pem",
  root: "root.crt",
  index: "index.json",
  crl: "crl.pem",
} as const;

/** ca.json. */
export interface CaConfig {
  readonly version: 1;
  readonly kind: "root" | "intermediate";
  /** Key reference; a relative file path is relative to the CA directory. */
  readonly key: string;
  /** How this CA signs certificates and CRLs. */
  readonly signature: CaSignatureScheme;
  /** CRL distribution point put into the certificates this CA issues. */
  readonly crlUrl?: string;
}

/** CRL reason codes (RFC 5280 §5.3.1) a user may give. */
export const REVOCATION_REASONS = [
  "unspecified",
  "keyCompromise",
  "cACompromise",
  "affiliationChanged",
  "superseded",
  "cessationOfOperation",
] as const;

/** A revocation reason name. */
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/** One certificate this CA issued. */
export interface IssuedCertificate {
  /** Lower-case hex, no leading zero bytes. */
  readonly serial: string;
  readonly profile: Profile;
  readonly subject: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuedAt: string;
  /** SHA-256 of the certificate DER, hex. */
  readonly sha256: string;
  readonly revoked?: { readonly at: string; readonly reason: RevocationReason };
}

/** index.json. */
export interface CaIndex {
  readonly version: 1;
  /** Number of the last CRL published (0: none yet). */
  readonly crlNumber: number;
  readonly certificates: readonly IssuedCertificate[];
}

/** A loaded, checked CA directory. */
export interface CaDirectory {
  readonly dir: string;
  readonly config: CaConfig;
  readonly certificate: x509.X509Certificate;
  /** Certificates sent with what this CA issues: ca.crt and its parents below the root (empty for a root). */
  readonly chain: readonly x509.X509Certificate[];
  /** The root certificate: ca.crt itself for a root. */
  readonly root: x509.X509Certificate;
  readonly index: CaIndex;
}

/** A fresh, empty index. */
export function emptyIndex(): CaIndex {
  return { version: 1, crlNumber: 0, certificates: [] };
}

function corrupted(dir: string, file: string, why: string): PkiError {
  return new PkiError("ca-dir", `CA directory ${dir} is corrupted: ${file} ${why}`);
}

async function readText(dir: string, file: string, optional = false): Promise<string | undefined> {
  try {
    return await readFile(join(dir, file), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && optional) return undefined;
    if (code === "ENOENT" && file === CA_FILES.certificate) {
      throw new PkiError("ca-dir", `${dir} is not a CA directory (no ${CA_FILES.certificate})`);
    }
    if (code === "ENOENT") throw corrupted(dir, file, "is missing");
    throw new PkiError("io", `cannot read ${join(dir, file)}: ${code ?? err}`);
  }
}

/** Parses a PEM file of one or more certificates, refusing anything else. */
export function parseCertificates(pem: string, dir: string, file: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const rest = pem.replace(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g, "").trim();
  if (rest !== "") throw corrupted(dir, file, "holds something other than certificates");
  try {
    return blocks.map((block) => new x509.X509Certificate(block));
  } catch {
    throw corrupted(dir, file, "holds a certificate that cannot be parsed");
  }
}

function isCaCertificate(cert: x509.X509Certificate): boolean {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  return bc?.ca === true && (!ku || (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0);
}

function parseJson(text: string, dir: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupted(dir, file, "is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw corrupted(dir, file, "is not an object");
  return value as Record<string, unknown>;
}

function checkConfig(raw: Record<string, unknown>, dir: string): CaConfig {
  const bad = (why: string) => corrupted(dir, CA_FILES.config, why);
  if (raw.version !== 1) throw bad("has an unknown version");
  if (raw.kind !== "root" && raw.kind !== "intermediate") throw bad("has no valid 'kind'");
  if (typeof raw.key !== "string" || raw.key === "") throw bad("has no key reference");
  if (typeof raw.signature !== "string" || !isCaSignatureScheme(raw.signature))
    throw bad("has no valid 'signature'");
  if (raw.crlUrl !== undefined && typeof raw.crlUrl !== "string") throw bad("has an invalid 'crlUrl'");
  if (withoutPinValue(raw.key) !== raw.key) {
    // Written by an hsmkit that kept the PIN; still used as it is, but the user should know.
    process.stderr.write(
      `hsmkit: warning: ${join(dir, CA_FILES.config)} holds a PIN (pin-value); replace it with pin-source=FILE, or remove it and set HSMKIT_PIN\n`,
    );
  }
  return {
    version: 1,
    kind: raw.kind,
    key: raw.key,
    signature: raw.signature,
    ...(raw.crlUrl !== undefined ? { crlUrl: raw.crlUrl as string } : {}),
  };
}

const PROFILES = new Set(["root", "intermediate", "server", "client"]);
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function checkIndex(raw: Record<string, unknown>, dir: string): CaIndex {
  const bad = (why: string) => corrupted(dir, CA_FILES.index, why);
  if (raw.version !== 1) throw bad("has an unknown version");
  if (typeof raw.crlNumber !== "number" || !Number.isSafeInteger(raw.crlNumber) || raw.crlNumber < 0) {
    throw bad("has an invalid 'crlNumber'");
  }
  if (!Array.isArray(raw.certificates)) throw bad("has no 'certificates' list");
  const seen = new Set<string>();
  const certificates = raw.certificates.map((entry: unknown, i): IssuedCertificate => {
    const e = entry as Record<string, unknown>;
    const ok =
      typeof e === "object" &&
      e !== null &&
      typeof e.serial === "string" &&
      /^[0-9a-f]+$/.test(e.serial) &&
      typeof e.profile === "string" &&
      PROFILES.has(e.profile) &&
      typeof e.subject === "string" &&
      typeof e.sha256 === "string" &&
      [e.notBefore, e.notAfter, e.issuedAt].every((t) => typeof t === "string" && ISO.test(t)) &&
      (e.revoked === undefined || checkRevocation(e.revoked));
    if (!ok) throw bad(`has an invalid entry #${i + 1}`);
    if (seen.has(e.serial as string)) throw bad(`lists serial ${e.serial} twice`);
    seen.add(e.serial as string);
    return e as unknown as IssuedCertificate;
  });
  return { version: 1, crlNumber: raw.crlNumber, certificates };
}

function checkRevocation(value: unknown): boolean {
  const r = value as Record<string, unknown>;
  return (
    typeof r === "object" &&
    r !== null &&
    typeof r.at === "string" &&
    ISO.test(r.at) &&
    (REVOCATION_REASONS as readonly string[]).includes(r.reason as string)
  );
}

/**
 * The absolute path of a CA directory, after a cheap check that it is one (it holds
 * ca.crt): enough to take its lock without touching a directory that is not a CA's. The
 * full check ({@link loadCaDirectory}) runs under the lock.
 */
export async function locateCaDirectory(dirArg: string): Promise<string> {
  const dir = resolve(dirArg);
  try {
    await stat(join(dir, CA_FILES.certificate));
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code === "ENOENT" ||
      (err as NodeJS.ErrnoException).code === "ENOTDIR"
    ) {
      throw new PkiError("ca-dir", `${dir} is not a CA directory (no ${CA_FILES.certificate})`);
    }
    throw new PkiError("io", `cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return dir;
}

/** Loads and checks a CA directory. Nothing is written. */
export async function loadCaDirectory(dirArg: string): Promise<CaDirectory> {
  const dir = resolve(dirArg);
  const certPem = (await readText(dir, CA_FILES.certificate)) ?? "";
  const [certificate, ...extra] = parseCertificates(certPem, dir, CA_FILES.certificate);
  if (!certificate || extra.length > 0)
    throw corrupted(dir, CA_FILES.certificate, "must hold exactly one certificate");
  if (!isCaCertificate(certificate)) throw corrupted(dir, CA_FILES.certificate, "is not a CA certificate");
  const config = checkConfig(
    parseJson((await readText(dir, CA_FILES.config)) ?? "", dir, CA_FILES.config),
    dir,
  );
  const index = checkIndex(parseJson((await readText(dir, CA_FILES.index)) ?? "", dir, CA_FILES.index), dir);

  let chain: x509.X509Certificate[] = [];
  let root = certificate;
  if (config.kind === "intermediate") {
    chain = parseCertificates((await readText(dir, CA_FILES.chain)) ?? "", dir, CA_FILES.chain);
    if (!chain[0] || !Buffer.from(chain[0].rawData).equals(Buffer.from(certificate.rawData))) {
      throw corrupted(dir, CA_FILES.chain, `does not start with ${CA_FILES.certificate}`);
    }
    const [rootCert, ...more] = parseCertificates(
      (await readText(dir, CA_FILES.root)) ?? "",
      dir,
      CA_FILES.root,
    );
    if (!rootCert || more.length > 0)
      throw corrupted(dir, CA_FILES.root, "must hold exactly one certificate");
    root = rootCert;
  } else if (certificate.subject !== certificate.issuer) {
    throw corrupted(dir, CA_FILES.certificate, "is not self-signed but ca.json says this is a root");
  }
  return { dir, config, certificate, chain, root, index };
}

/** The key reference of a CA, with a relative file path made absolute against the directory. */
export function caKeyReference(ca: { readonly dir: string; readonly config: CaConfig }): string {
  return absoluteKeyReference(ca.config.key, ca.dir);
}

/**
 * Makes the paths in a file key reference absolute against `base` (token and KMS
 * references are returned unchanged), so a stored reference works from any directory.
 */
export function absoluteKeyReference(ref: string, base: string): string {
  if (/^(pkcs11:|kms:\/\/)/i.test(ref)) return ref;
  const parsed = parseFileRef(ref);
  const path = isAbsolute(parsed.path) ? parsed.path : resolve(base, parsed.path);
  const pass = parsed.passphraseFile;
  return `file:${path}${pass ? `?passphrase-file=${isAbsolute(pass) ? pass : resolve(base, pass)}` : ""}`;
}

/** The serialised index, one entry per line for readable diffs. */
export function encodeIndex(index: CaIndex): string {
  const entries = index.certificates.map((c) => `    ${JSON.stringify(c)}`).join(",\n");
  return `{\n  "version": 1,\n  "crlNumber": ${index.crlNumber},\n  "certificates": [${
    entries ? `\n${entries}\n  ` : ""
  }]\n}\n`;
}

/** A fresh random serial this CA has not used (for anything it issued, or its own). */
export function unusedSerial(ca: CaDirectory): string {
  const used = (serial: string) =>
    normalizeSerial(ca.certificate.serialNumber) === serial ||
    ca.index.certificates.some((c) => c.serial === serial);
  let serial = randomSerial();
  while (used(serial)) serial = randomSerial();
  return serial;
}
