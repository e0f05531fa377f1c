/**
 * Reading a PKCS#12 (legacy or PBES2, as node-forge supports them): its private key and first
 * certificate. The key derivation runs in JavaScript, so the iteration counts a file asks for
 * are bounded before anything is derived.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import forge from "node-forge";
import { PfxError } from "./contents.ts";
import { type Asn1, bin, der, isUniversal } from "./forge_asn1.ts";
import { checkPfxMac } from "./mac.ts";

/** What a PKCS#12 read gives. */
export interface ReadPfx {
  readonly privateKey: KeyObject;
  /** The first certificate, PEM; undefined when the file holds none. */
  readonly certificatePem: string | undefined;
}

/**
 * Largest MAC or PBE iteration count read. OpenSSL and hsmkit write 2048, Windows 2000, Java
 * 10 000; node-forge derives keys in JavaScript (about 2 s for a file at 100 000), so a count
 * in the millions from a damaged or hostile file would hold the event loop for hours.
 */
export const MAX_PFX_ITERATIONS = 30_000;

const OCTET_STRING = 4;
const INTEGER = 2;
const MAX_DEPTH = 32;

/**
 * Refuses a PKCS#12 naming more than {@link MAX_PFX_ITERATIONS} iterations. Salt and iteration
 * count sit side by side in every place that has them (MacData, PKCS#12 PBE params, PBKDF2
 * params), so an INTEGER right after an OCTET STRING is a count. OCTET STRINGs wrapping DER
 * (the authenticated safe, the bags) are looked into.
 */
function checkIterations(node: Asn1, depth: number): void {
  if (depth > MAX_DEPTH) throw new PfxError("not a readable PKCS#12: nested too deeply");
  if (typeof node.value === "string") {
    if (!isUniversal(node, OCTET_STRING)) return;
    let inner: Asn1;
    try {
      inner = forge.asn1.fromDer(forge.util.createBuffer(node.value), true);
    } catch {
      return; // opaque bytes (a salt, a digest, ciphertext)
    }
    checkIterations(inner, depth + 1);
    return;
  }
  const children = node.value;
  children.forEach((child, i) => {
    if (
      isUniversal(child, INTEGER) &&
      isUniversal(children[i - 1], OCTET_STRING) &&
      typeof child.value === "string"
    ) {
      // Unsigned, as node-forge reads it (a negative-looking 4-byte count is some 3 billion to forge).
      const count =
        child.value.length > 4
          ? Number.POSITIVE_INFINITY
          : Number.parseInt(forge.util.bytesToHex(child.value) || "0", 16);
      if (count > MAX_PFX_ITERATIONS)
        throw new PfxError(`the PKCS#12 asks for more than ${MAX_PFX_ITERATIONS} key-derivation iterations`);
    }
    checkIterations(child, depth + 1);
  });
}

/** Largest PKCS#12 read: a key and its chain fit in a few kilobytes. */
export const MAX_PFX_BYTES = 1024 * 1024;

/** The node-forge key derivations a PKCS#12 read reaches, by where forge looks them up. */
interface ForgeDerivations {
  pkcs12: { generateKey: (...args: never[]) => unknown };
  pbe: { generatePkcs12Key: (...args: never[]) => unknown };
  pkcs5: { pbkdf2: (...args: never[]) => unknown };
}

/**
 * Runs `read` with every node-forge key derivation refusing counts over
 * {@link MAX_PFX_ITERATIONS}. {@link checkIterations} reads counts from the DER before
 * anything is derived, but a count can hide where no DER walk sees it (inside an encrypted
 * safe, or a BER-chunked OCTET STRING); this catches it when forge is about to use it.
 * forge looks these functions up on its namespace at each call, and `read` is synchronous,
 * so the guard covers exactly this read.
 */
function withDerivationCap<T>(read: () => T): T {
  const f = forge as unknown as ForgeDerivations;
  const saved = [f.pkcs12.generateKey, f.pbe.generatePkcs12Key, f.pkcs5.pbkdf2] as const;
  const capped =
    (derive: (...args: never[]) => unknown, countAt: number) =>
    (...args: never[]) => {
      if (!((args[countAt] as unknown as number) <= MAX_PFX_ITERATIONS))
        throw new PfxError(`the PKCS#12 asks for more than ${MAX_PFX_ITERATIONS} key-derivation iterations`);
      return derive(...args);
    };
  // generateKey(password, salt, id, iter, ...), pbkdf2(password, salt, iter, ...)
  f.pkcs12.generateKey = capped(saved[0], 3);
  f.pbe.generatePkcs12Key = capped(saved[1], 3);
  f.pkcs5.pbkdf2 = capped(saved[2], 2);
  try {
    return read();
  } finally {
    [f.pkcs12.generateKey, f.pbe.generatePkcs12Key, f.pkcs5.pbkdf2] = saved;
  }
}

/** Parses and decrypts the file, mapping every node-forge failure to a PfxError. */
function openPfx(data: Buffer, password: string): forge.pkcs12.Pkcs12Pfx {
  if (data.length > MAX_PFX_BYTES) throw new PfxError(`the PKCS#12 is larger than ${MAX_PFX_BYTES} bytes`);
  try {
    const node = forge.asn1.fromDer(forge.util.createBuffer(bin(data)), true);
    checkIterations(node, 0);
    return withDerivationCap(() => {
      checkPfxMac(node, password);
      return forge.pkcs12.pkcs12FromAsn1(node, true, password);
    });
  } catch (err) {
    if (err instanceof PfxError) throw err;
    const text = (err as Error).message;
    if (/mac|password|Invalid/i.test(text)) throw new PfxError("wrong password or corrupted PKCS#12");
    throw new PfxError(`not a readable PKCS#12: ${text}`);
  }
}

/** The bags of one type in the file. */
function bagsOf(p12: forge.pkcs12.Pkcs12Pfx, bagType: string): forge.pkcs12.Bag[] {
  return p12.getBags({ bagType })[bagType] ?? [];
}

/**
 * Reads a PKCS#12 and returns its private key and first certificate. A wrong password or a
 * corrupted file gives a {@link PfxError}.
 */
export function readPfx(data: Buffer, password: string): ReadPfx {
  const p12 = openPfx(data, password);
  const { oids } = forge.pki;
  const keyBags = [...bagsOf(p12, oids.pkcs8ShroudedKeyBag as string), ...bagsOf(p12, oids.keyBag as string)];
  const key = keyBags[0]?.key;
  if (!key) throw new PfxError("the PKCS#12 holds no private key");
  const certBag = bagsOf(p12, oids.certBag as string)[0];
  // node-forge only decodes RSA-signed certificates into objects; it keeps the ASN.1 of others.
  const certAsn1 = certBag?.cert ? forge.pki.certificateToAsn1(certBag.cert) : certBag?.asn1;
  return {
    privateKey: createPrivateKey(forge.pki.privateKeyToPem(key)),
    certificatePem: certAsn1
      ? new X509Certificate(Buffer.from(der(certAsn1), "binary")).toString()
      : undefined,
  };
}
