/**
 * Creating CAs: a self-signed root (`ca init`) and an intermediate signed by a parent CA
 * directory (`ca intermediate`). A new CA directory is built in a hidden staging
 * directory beside its target and renamed into place only when complete.
 */
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import * as x509 from "@peculiar/x509";
import { type PrivateKeyHandle, withoutPinValue } from "../keys/index.ts";
import { type KeySource, obtainKey, openIssuer } from "./ca_key.ts";
import {
  absoluteKeyReference,
  CA_FILES,
  type CaConfig,
  emptyIndex,
  encodeIndex,
  loadCaDirectory,
  locateCaDirectory,
  unusedSerial,
} from "./cadir.ts";
import { type Issuer, planValidity, randomSerial, signCertificate } from "./certificate.ts";
import { refuseOutsideNameConstraints } from "./constraints.ts";
import { PkiError } from "./errors.ts";
import { withIssued } from "./issue.ts";
import { withDirLock } from "./lock.ts";
import { type NameConstraint, parseNameConstraints, subjectName } from "./names.ts";
import { type CaSignatureScheme, checkSchemeForKey, defaultSchemeFor } from "./signer.ts";
import { withStagedWrites } from "./staged.ts";

/** Default lifetimes in days. */
export const ROOT_DAYS = 3650;
export const INTERMEDIATE_DAYS = 1825;

/** Options shared by `ca init` and `ca intermediate`. */
export interface NewCaOptions extends KeySource {
  /** The CA directory to create (absent or empty). */
  readonly dir: string;
  readonly cn: string;
  readonly days?: number;
  /** basicConstraints pathLenConstraint; root default none, intermediate default 0. */
  readonly pathLen?: number;
  /** Scheme this CA signs with; default from its key (SHA-256 PKCS#1 for RSA, or PSS with `pss`). */
  readonly signature?: CaSignatureScheme;
  readonly pss?: boolean;
  /** CRL distribution point URL to put into the certificates this CA issues. */
  readonly crlUrl?: string;
  /** Encrypts a generated file key (`--type` without `--key`) with this password file. */
  readonly passwordFile?: string;
}

/** `ca intermediate` options. */
export interface IntermediateOptions extends NewCaOptions {
  /** The parent CA directory. */
  readonly parent: string;
  /** Name constraints, e.g. `DNS:example.com,IP:10.0.0.0/8`. */
  readonly permitted?: string;
  readonly excluded?: string;
  /** Parent key reference overriding the parent's ca.json (e.g. to give the PIN). */
  readonly parentKey?: string;
}

/** What a created CA looks like. */
export interface CreatedCa {
  readonly dir: string;
  readonly certificate: x509.X509Certificate;
}

/** Checks what can be checked before a key is generated or opened. */
function checkNewCaOptions(options: NewCaOptions): void {
  checkPathLen(options.pathLen);
  checkCrlUrl(options.crlUrl);
  if (options.pss && options.type?.startsWith("ec")) {
    throw new PkiError("bad-input", (name) => `${name("pss")} needs an RSA CA key`);
  }
}

function checkPathLen(pathLen: number | undefined): void {
  if (pathLen !== undefined && (!Number.isInteger(pathLen) || pathLen < 0 || pathLen > 16)) {
    throw new PkiError(
      "bad-input",
      (name) => `${name("pathLen")} must be a whole number from 0 to 16, not ${pathLen}`,
    );
  }
}

function checkCrlUrl(url: string | undefined): void {
  if (url !== undefined && !/^https?:\/\/[^\s/]+\/\S*$/.test(url)) {
    throw new PkiError("bad-input", (name) => `${name("crlUrl")} '${url}' is not an http(s) URL`);
  }
}

/** Makes a hidden staging directory beside `dir`, after checking `dir` is free. */
async function stageNewDir(dirArg: string): Promise<{ dir: string; staging: string }> {
  const dir = resolve(dirArg);
  try {
    const info = await stat(dir);
    if (!info.isDirectory() || (await readdir(dir)).length > 0) {
      throw new PkiError("bad-input", `${dir} already exists and is not an empty directory`);
    }
  } catch (err) {
    if (err instanceof PkiError) throw err;
    if ((err as NodeJS.ErrnoException).code !== "ENOENT")
      throw new PkiError("io", `cannot use ${dir}: ${err}`);
  }
  try {
    await mkdir(dirname(dir), { recursive: true });
    return { dir, staging: await mkdtemp(join(dirname(dir), `.${basename(dir)}.tmp-`)) };
  } catch (err) {
    throw new PkiError("io", `cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

/** The key for a new CA, generated into the staging directory when only a type is given. */
async function newCaKey(
  options: NewCaOptions,
  staging: string,
): Promise<{ key: PrivateKeyHandle; ref: string }> {
  const pass = options.passwordFile ? `?passphrase-file=${resolve(options.passwordFile)}` : "";
  const key = await obtainKey(options, () => `file:${join(staging, CA_FILES.key)}${pass}`, "the CA key");
  // A generated file key is referenced relative to the CA directory, so the directory can move.
  // ca.json never holds a PIN: a token reference is kept without pin-value.
  const ref =
    options.key !== undefined
      ? withoutPinValue(absoluteKeyReference(options.key, process.cwd()))
      : `${CA_FILES.key}${pass}`;
  return { key, ref };
}

function schemeFor(options: NewCaOptions, key: PrivateKeyHandle): CaSignatureScheme {
  if (options.pss && key.type !== "rsa")
    throw new PkiError("bad-input", (name) => `${name("pss")} needs an RSA CA key`);
  const scheme = options.signature ?? defaultSchemeFor(key, options.pss);
  checkSchemeForKey(key, scheme);
  return scheme;
}

/** Writes the files of a new CA into its staging directory. */
async function writeCaFiles(
  staging: string,
  config: CaConfig,
  certificate: x509.X509Certificate,
  parentChain: readonly x509.X509Certificate[],
  root: x509.X509Certificate | undefined,
): Promise<void> {
  const pem = (c: x509.X509Certificate) => `${c.toString("pem")}\n`;
  await writeFile(join(staging, CA_FILES.certificate), pem(certificate), { mode: 0o644 });
  // ca.json names where the key is (never a PIN); owner-only all the same.
  await writeFile(join(staging, CA_FILES.config), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await writeFile(join(staging, CA_FILES.index), encodeIndex(emptyIndex()), { mode: 0o644 });
  if (root) {
    await writeFile(join(staging, CA_FILES.chain), [certificate, ...parentChain].map(pem).join(""), {
      mode: 0o644,
    });
    await writeFile(join(staging, CA_FILES.root), pem(root), { mode: 0o644 });
  }
}

/** `ca init`: a new root CA with a self-signed certificate. */
export async function initCa(options: NewCaOptions): Promise<CreatedCa> {
  checkNewCaOptions(options);
  const subject = subjectName(options.cn);
  const validity = planValidity({ days: options.days, defaultDays: ROOT_DAYS });
  const { dir, staging } = await stageNewDir(options.dir);
  try {
    const { key, ref } = await newCaKey(options, staging);
    try {
      const scheme = schemeFor(options, key);
      const certificate = await signCertificate(
        { certificate: undefined, key, scheme },
        {
          profile: "root",
          subject,
          serial: randomSerial(),
          validity,
          spki: key.spki,
          keyType: key.type,
          ...opt(options),
        },
      );
      const config: CaConfig = { version: 1, kind: "root", key: ref, signature: scheme, ...crl(options) };
      await writeCaFiles(staging, config, certificate, [], undefined);
      await rename(staging, dir);
      return { dir, certificate };
    } finally {
      await key.close();
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function opt(options: NewCaOptions): { pathLen?: number } {
  return options.pathLen !== undefined ? { pathLen: options.pathLen } : {};
}

function crl(options: NewCaOptions): { crlUrl?: string } {
  return options.crlUrl !== undefined ? { crlUrl: options.crlUrl } : {};
}

/** The path length an intermediate gets, checked against its parent's constraint. */
function intermediatePathLen(parent: x509.X509Certificate, requested: number | undefined): number {
  const limit = parent.getExtension(x509.BasicConstraintsExtension)?.pathLength;
  if (limit === 0) {
    throw new PkiError(
      "bad-input",
      "the parent CA has path length 0: it may not sign further CA certificates",
    );
  }
  const pathLen = requested ?? 0;
  if (limit !== undefined && pathLen >= limit) {
    throw new PkiError(
      "bad-input",
      (name) => `${name("pathLen")} ${pathLen} must be below the parent CA's path length (${limit})`,
    );
  }
  return pathLen;
}

/** `ca intermediate`: a new CA signed by the CA in `parent`, recorded in the parent's index. */
export async function createIntermediate(options: IntermediateOptions): Promise<CreatedCa> {
  checkNewCaOptions(options);
  const request: IntermediateRequest = {
    subject: subjectName(options.cn),
    permitted: options.permitted ? parseNameConstraints(options.permitted) : [],
    excluded: options.excluded ? parseNameConstraints(options.excluded) : [],
  };
  const parentDir = await locateCaDirectory(options.parent);
  if (resolve(options.dir) === parentDir)
    throw new PkiError("bad-input", (name) => `${name("dir")} and ${name("parent")} are the same directory`);
  const target = await stageNewDir(options.dir);
  try {
    return await withDirLock(parentDir, () => createUnderParent(options, request, parentDir, target));
  } finally {
    await rm(target.staging, { recursive: true, force: true });
  }
}

/** What `ca intermediate` asks for, parsed before the parent is locked. */
interface IntermediateRequest {
  readonly subject: x509.Name;
  readonly permitted: NameConstraint[];
  readonly excluded: NameConstraint[];
}

/**
 * Under the parent's lock: checks the request against the parent, makes the key, has the parent
 * sign, writes the new directory in `staging` and moves it into place with the parent's index.
 */
async function createUnderParent(
  options: IntermediateOptions,
  request: IntermediateRequest,
  parentDir: string,
  target: { dir: string; staging: string },
): Promise<CreatedCa> {
  const parent = await loadCaDirectory(parentDir);
  const pathLen = intermediatePathLen(parent.certificate, options.pathLen);
  refuseOutsideNameConstraints(request.subject, [], [...parent.chain, parent.root]);
  const validity = planValidity({
    days: options.days,
    defaultDays: INTERMEDIATE_DAYS,
    issuer: parent.certificate,
  });
  const issuer: Issuer = await openIssuer(parent, options.parentKey);
  try {
    const { key, ref } = await newCaKey(options, target.staging);
    try {
      const scheme = schemeFor(options, key);
      const serial = unusedSerial(parent);
      const certificate = await signCertificate(issuer, {
        profile: "intermediate",
        ...request,
        serial,
        validity,
        spki: key.spki,
        keyType: key.type,
        pathLen,
        ...(parent.config.crlUrl ? { crlUrl: parent.config.crlUrl } : {}),
      });
      const config: CaConfig = {
        version: 1,
        kind: "intermediate",
        key: ref,
        signature: scheme,
        ...crl(options),
      };
      await writeCaFiles(target.staging, config, certificate, parent.chain, parent.root);
      await withStagedWrites(async (batch) => {
        const index = withIssued(parent, certificate, serial, "intermediate");
        await batch.add(join(parentDir, CA_FILES.index), encodeIndex(index));
        // The new directory goes into place first; if that fails the parent index is untouched.
        await rename(target.staging, target.dir);
      });
      return { dir: target.dir, certificate };
    } finally {
      await key.close();
    }
  } finally {
    await issuer.key.close();
  }
}
