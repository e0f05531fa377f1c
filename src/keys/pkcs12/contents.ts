/**
 * What every PKCS#12 (PFX) hsmkit writes holds, the checks made before one is written, and the
 * error reading or writing one gives.
 */
import { createHash, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";

/** What goes into a PFX. */
export interface Pkcs12Contents {
  /** DER certificates: the leaf first, then its chain. */
  readonly certificates: readonly Uint8Array[];
  /** The leaf's private key. */
  readonly privateKey: KeyObject;
  /** UTF-8 password bytes; the caller zeroes them. */
  readonly password: Buffer;
  /** Name importers show, stored with the key and the leaf; none when absent. */
  readonly friendlyName?: string;
}

/** Why a PKCS#12 could not be read or written; the message is fit to print as is. */
export class PfxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PfxError";
  }
}

/** Object identifiers both writers use (PKCS#7, PKCS#9 and PKCS#12). */
export const OID = {
  data: "1.2.840.113549.1.7.1",
  encryptedData: "1.2.840.113549.1.7.6",
  shroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
} as const;

/**
 * PKCS#12 KDF iterations for the MAC (and the legacy PBE), as OpenSSL writes them. Readers
 * accept up to {@link MAX_PFX_ITERATIONS}.
 */
export const MAC_ITERATIONS = 2048;

/**
 * Checks the contents (a leaf, a key that matches it, a non-empty password) and returns the
 * localKeyId that ties the key to the leaf: the SHA-1 of the leaf, as OpenSSL and Windows set it.
 */
export function checkContents(contents: Pkcs12Contents): Buffer {
  const [leaf] = contents.certificates;
  if (!leaf) throw new PfxError("no certificate to put into the PFX");
  let leafSpki: Buffer;
  try {
    leafSpki = new X509Certificate(leaf).publicKey.export({ type: "spki", format: "der" });
  } catch (err) {
    throw new PfxError("the leaf certificate cannot be parsed", { cause: err });
  }
  const keySpki = createPublicKey(contents.privateKey).export({ type: "spki", format: "der" });
  if (!leafSpki.equals(keySpki)) throw new PfxError("the private key does not match the certificate");
  if (contents.password.length === 0) throw new PfxError("the PFX password is empty");
  return createHash("sha1").update(leaf).digest();
}
