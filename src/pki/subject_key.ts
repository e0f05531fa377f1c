/**
 * The public key a certificate will certify, from any of the three sources `cert issue`
 * accepts: a key reference, a CSR (whose signature proves possession), or a key generated
 * here. Weak keys are refused whatever the source.
 */
import { createPublicKey, type KeyObject, webcrypto } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as x509 from "@peculiar/x509";
import type { KeyType } from "../keys/types.ts";
import { spkiProblem } from "../tls/x509/spki.ts";
import { PkiError } from "./errors.ts";

/** A public key to certify. */
export interface SubjectKey {
  readonly spki: Buffer;
  readonly type: KeyType;
  readonly publicKey: KeyObject;
}

/** Largest CSR file read: real ones are a few KB. */
const MAX_CSR_BYTES = 64 * 1024;

const EC_CURVES = new Set(["prime256v1", "secp384r1", "secp521r1"]);

/**
 * Describes a public key and refuses what the web PKI refuses: RSA under 2048 bits,
 * curves other than P-256/P-384/P-521, and other algorithms (DSA, Ed25519...).
 */
export function subjectKeyFromSpki(spki: Uint8Array, what: string): SubjectKey {
  let publicKey: KeyObject;
  const problem = spkiProblem(Buffer.from(spki));
  if (problem) throw new PkiError("bad-input", `${what} holds no usable public key: ${problem}`);
  try {
    publicKey = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch {
    throw new PkiError("bad-input", `${what} holds no usable public key`);
  }
  const details = publicKey.asymmetricKeyDetails ?? {};
  if (publicKey.asymmetricKeyType === "rsa") {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048 || bits > 16384)
      throw new PkiError("bad-input", `${what} has a ${bits}-bit RSA key (2048 to 16384 allowed)`);
    return { spki: Buffer.from(spki), type: "rsa", publicKey };
  }
  if (publicKey.asymmetricKeyType === "ec") {
    if (!EC_CURVES.has(details.namedCurve ?? "")) {
      throw new PkiError(
        "bad-input",
        `${what} uses curve ${details.namedCurve ?? "?"} (P-256, P-384, P-521 allowed)`,
      );
    }
    return { spki: Buffer.from(spki), type: "ec", publicKey };
  }
  throw new PkiError(
    "bad-input",
    `${what} has a ${publicKey.asymmetricKeyType ?? "unknown"} key (RSA or EC allowed)`,
  );
}

/** A CSR after its signature was checked. */
export interface VerifiedCsr {
  readonly key: SubjectKey;
  /** The common name the CSR asks for, if any (used when --cn is not given). */
  readonly commonName: string | undefined;
}

/** Hashes accepted in CSR signatures: SHA-1 and older are refused. */
const CSR_HASHES = new Set(["SHA-256", "SHA-384", "SHA-512"]);

/**
 * Reads a PKCS#10 CSR (PEM or DER) and checks its self-signature (WebCrypto from
 * node:crypto), so only whoever holds the private key can have it certified.
 */
export async function readCsr(path: string): Promise<VerifiedCsr> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new PkiError("bad-input", `cannot read CSR ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return parseCsr(data, path);
}

/**
 * Parses a CSR's bytes (PEM or DER) and checks its self-signature; `path` names the input in
 * errors. Every refusal is a {@link PkiError}.
 */
export async function parseCsr(data: Buffer, path: string): Promise<VerifiedCsr> {
  if (data.length > MAX_CSR_BYTES) throw new PkiError("bad-input", `CSR ${path} is too large to be a CSR`);
  let csr: x509.Pkcs10CertificateRequest;
  let spki: Uint8Array;
  let algorithm: Algorithm & { hash?: Algorithm };
  let commonName: string | undefined;
  try {
    const text = data.toString("latin1");
    const der = text.includes("-----BEGIN") ? x509.PemConverter.decodeFirst(text) : new Uint8Array(data);
    csr = new x509.Pkcs10CertificateRequest(der);
    // @peculiar/x509 decodes these parts lazily, on first access: read them here, so that a
    // malformed key or algorithm is this PkiError rather than a TypeError thrown later.
    spki = new Uint8Array(csr.publicKey.rawData);
    algorithm = csr.signatureAlgorithm as Algorithm & { hash?: Algorithm };
    commonName = csr.subjectName.getField("CN")[0];
  } catch {
    throw new PkiError("bad-input", `${path} is not a PKCS#10 certificate request`);
  }
  const key = subjectKeyFromSpki(spki, `CSR ${path}`);
  if (!CSR_HASHES.has(algorithm.hash?.name ?? "")) {
    throw new PkiError(
      "bad-input",
      `CSR ${path} is signed with ${describeAlgorithm(algorithm)}, which hsmkit refuses`,
    );
  }
  let ok = false;
  try {
    ok = await csr.verify(webcrypto as unknown as Crypto);
  } catch {
    ok = false;
  }
  if (!ok) throw new PkiError("bad-input", `CSR ${path} has a bad signature`);
  return { key, commonName };
}

function describeAlgorithm(algorithm: Algorithm & { hash?: Algorithm }): string {
  return algorithm.hash
    ? `${algorithm.name} with ${algorithm.hash.name}`
    : algorithm.name || "an unknown algorithm";
}
