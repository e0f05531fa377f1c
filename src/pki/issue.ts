/**
 * `cert issue`: a server or client certificate from a CA directory, for a key given by
 * reference, a CSR, or a key generated here. Writes PREFIX.pem (leaf + chain below the
 * root), PREFIX.key when the key was generated into a file, and the CA's index, all or
 * nothing, under the CA's lock.
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type * as x509 from "@peculiar/x509";
import { type KeySource, obtainKey, openIssuer } from "./ca_key.ts";
import {
  CA_FILES,
  type CaDirectory,
  encodeIndex,
  type IssuedCertificate,
  loadCaDirectory,
  locateCaDirectory,
  unusedSerial,
} from "./cadir.ts";
import { planValidity, signCertificate } from "./certificate.ts";
import { refuseOutsideNameConstraints } from "./constraints.ts";
import { PkiError } from "./errors.ts";
import { withDirLock } from "./lock.ts";
import { checkCommonName, parseSanList, type SanEntry, sanFromCommonName, subjectName } from "./names.ts";
import type { Profile } from "./profiles.ts";
import type { CaSignatureScheme } from "./signer.ts";
import { type StagedWrites, withStagedWrites } from "./staged.ts";
import { readCsr, type SubjectKey, subjectKeyFromSpki, type VerifiedCsr } from "./subject_key.ts";

/** Default leaf lifetime in days (kept inside the CA's validity). */
export const LEAF_DAYS = 365;

/** `cert issue` options. */
export interface IssueOptions extends KeySource {
  /** The issuing CA directory. */
  readonly ca: string;
  readonly profile: "server" | "client";
  /** Common name; with a CSR it defaults to the CSR's. */
  readonly cn?: string;
  /** `DNS:a,IP:b,...`. */
  readonly san?: string;
  /** A PKCS#10 request file instead of a key. */
  readonly csr?: string;
  /** Output prefix: PREFIX.pem, PREFIX.key. */
  readonly out: string;
  readonly days?: number;
  /** Encrypts a generated PREFIX.key with the password in this file. */
  readonly passwordFile?: string;
  /** CA key reference overriding ca.json (e.g. with the PIN). */
  readonly caKey?: string;
  /** Signature scheme overriding the CA's. */
  readonly signature?: CaSignatureScheme;
}

/** What `cert issue` produced. */
export interface IssuedFiles {
  readonly certificate: x509.X509Certificate;
  readonly serial: string;
  readonly certPath: string;
  /** Set when a key was generated into a file. */
  readonly keyPath: string | undefined;
}

/** The index entry for a certificate just issued. */
export function issuedEntry(cert: x509.X509Certificate, serial: string, profile: Profile): IssuedCertificate {
  const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
  return {
    serial,
    profile,
    subject: cert.subject,
    notBefore: iso(cert.notBefore),
    notAfter: iso(cert.notAfter),
    issuedAt: iso(new Date()),
    sha256: createHash("sha256").update(new Uint8Array(cert.rawData)).digest("hex"),
  };
}

/** The subject alternative names: --san, plus the CN when it is a host name (servers always). */
function plannedSan(profile: "server" | "client", cn: string, san: string | undefined): SanEntry[] {
  const entries = san ? parseSanList(san) : [];
  const fromCn = sanFromCommonName(cn);
  if (
    profile === "server" &&
    fromCn &&
    !entries.some((e) => e.type === fromCn.type && e.value === fromCn.value)
  ) {
    entries.unshift(fromCn);
  }
  return entries;
}

function checkSources(options: IssueOptions): void {
  const given = [options.key !== undefined || options.type !== undefined, options.csr !== undefined].filter(
    Boolean,
  );
  if (given.length !== 1)
    throw new PkiError(
      "bad-input",
      (name) =>
        `give exactly one of ${name("key", "KEYREF")}, ${name("csr", "FILE")} or ${name("type", "TYPE")}`,
    );
  if (options.profile !== "server" && options.profile !== "client") {
    throw new PkiError(
      "bad-input",
      (name) => `${name("profile")} must be server or client, not '${String(options.profile)}'`,
    );
  }
}

async function refuseExisting(path: string): Promise<void> {
  try {
    await stat(path);
  } catch {
    return;
  }
  throw new PkiError("bad-input", `${path} already exists; not overwriting a key`);
}

/** Issues a leaf certificate. Nothing is written unless everything succeeds. */
export async function issueCertificate(options: IssueOptions): Promise<IssuedFiles> {
  checkSources(options);
  // Everything the user typed is checked before the CA is locked or its key opened.
  const csr: VerifiedCsr | undefined = options.csr ? await readCsr(options.csr) : undefined;
  const cn = options.cn ?? csr?.commonName;
  if (cn === undefined)
    throw new PkiError("bad-input", (name) => `give the subject's common name with ${name("cn")}`);
  checkCommonName(cn);
  const subject = subjectName(cn);
  const san = plannedSan(options.profile, cn, options.san);
  const certPath = resolve(`${options.out}.pem`);
  const keyPath =
    options.type !== undefined && options.key === undefined ? resolve(`${options.out}.key`) : undefined;
  if (keyPath) await refuseExisting(keyPath);
  const caDir = await locateCaDirectory(options.ca);

  return withDirLock(caDir, async () => {
    const ca = await loadCaDirectory(caDir);
    const validity = planValidity({ days: options.days, defaultDays: LEAF_DAYS, issuer: ca.certificate });
    refuseOutsideNameConstraints(subject, san, [...ca.chain, ca.root]);
    const issuer = await openIssuer(ca, options.caKey, options.signature);
    try {
      return await withStagedWrites(async (batch) => {
        const subjectKey = csr ? csr.key : await newSubjectKey(options, batch, keyPath);
        const serial = unusedSerial(ca);
        const certificate = await signCertificate(issuer, {
          profile: options.profile,
          subject,
          serial,
          validity,
          spki: subjectKey.spki,
          keyType: subjectKey.type,
          san,
          ...(ca.config.crlUrl ? { crlUrl: ca.config.crlUrl } : {}),
        });
        // Written and flushed side by side, renamed in this order: the index last.
        await batch.addAll([
          { target: certPath, data: chainPem(certificate, ca) },
          {
            target: join(ca.dir, CA_FILES.index),
            data: encodeIndex(withIssued(ca, certificate, serial, options.profile)),
          },
        ]);
        return { certificate, serial, certPath, keyPath };
      });
    } finally {
      await issuer.key.close();
    }
  });
}

/**
 * The subject key when the CA makes it (a key reference, or a new key of a type): a new file key
 * is written through `batch` to `keyPath`, so it appears only if the whole issuance succeeds.
 */
async function newSubjectKey(
  options: IssueOptions,
  batch: StagedWrites,
  keyPath: string | undefined,
): Promise<SubjectKey> {
  const pass = options.passwordFile ? `?passphrase-file=${resolve(options.passwordFile)}` : "";
  const handle = await obtainKey(
    options,
    // Called only for a type without a key reference, which is exactly when keyPath is set.
    () => `file:${batch.reserve(keyPath!)}${pass}`,
    "the certificate's key",
  );
  try {
    return subjectKeyFromSpki(handle.spki, `the key ${handle.description}`);
  } finally {
    await handle.close();
  }
}

/** The leaf followed by the CA's chain below the root, as PEM. */
export function chainPem(leaf: x509.X509Certificate, ca: CaDirectory): string {
  return [leaf, ...ca.chain].map((c) => `${c.toString("pem")}\n`).join("");
}

/** The CA's index with one more issued certificate. */
export function withIssued(ca: CaDirectory, cert: x509.X509Certificate, serial: string, profile: Profile) {
  return { ...ca.index, certificates: [...ca.index.certificates, issuedEntry(cert, serial, profile)] };
}
