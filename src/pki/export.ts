/**
 * `cert pfx`: a PFX file from a PEM chain and a file key, written 0600 (it holds the key,
 * encrypted) and only once complete.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import {
  PfxError,
  type Pkcs12Contents,
  writeLegacyPfxContents,
  writeModernPfx,
} from "../keys/pkcs12/index.ts";
import { parseCertificates } from "./cadir.ts";
import { PkiError } from "./errors.ts";
import { readFileKey, readPasswordFile } from "./keyfile.ts";
import { withStagedWrites } from "./staged.ts";

/** `cert pfx` options. */
export interface PfxExportOptions {
  /** PEM file: the leaf first, then its chain. */
  readonly cert: string;
  /** File key reference of the leaf's key. */
  readonly key: string;
  readonly out: string;
  readonly passwordFile: string;
  /** 3DES + SHA-1 MAC instead of AES-256 + SHA-256. */
  readonly legacy?: boolean;
  /** friendlyName; defaults to the leaf's CN. */
  readonly name?: string;
}

/** The PFX bytes; a refusal (key and leaf differ, empty password) is a bad-input PkiError. */
async function pfxOf(contents: Pkcs12Contents, legacy: boolean): Promise<Buffer> {
  try {
    return legacy ? writeLegacyPfxContents(contents) : await writeModernPfx(contents);
  } catch (err) {
    if (err instanceof PfxError) throw new PkiError("bad-input", err.message, { cause: err });
    throw err;
  }
}

/** Writes a PFX; returns its path. */
export async function exportPfx(options: PfxExportOptions): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(options.cert, "utf8");
  } catch (err) {
    throw new PkiError(
      "bad-input",
      `cannot read ${options.cert}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  let certificates: ReturnType<typeof parseCertificates>;
  try {
    certificates = parseCertificates(pem, options.cert, "");
  } catch {
    throw new PkiError("bad-input", `${options.cert} is not a PEM file of certificates`);
  }
  const [leaf] = certificates;
  if (!leaf) throw new PkiError("bad-input", `${options.cert} holds no certificate`);
  // The key is refused here, before the password is read, when it lives in a token or KMS.
  const privateKey = await readFileKey(options.key);
  const password = await readPasswordFile(options.passwordFile);
  try {
    const contents: Pkcs12Contents = {
      certificates: certificates.map((cert) => new Uint8Array(cert.rawData)),
      privateKey,
      password,
      friendlyName: options.name ?? leaf.subjectName.getField("CN")[0] ?? leaf.subject,
    };
    const der = await pfxOf(contents, options.legacy === true);
    const out = resolve(options.out);
    await withStagedWrites((batch) => batch.add(out, der, 0o600));
    return out;
  } finally {
    password.fill(0);
  }
}
