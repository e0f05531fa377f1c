/**
 * The PKCS#12 inside an access point's client key file, written with the legacy algorithms
 * every existing instance SDK can read (Go's x/crypto/pkcs12, Python's, Java's): the key in a
 * pkcs8ShroudedKeyBag under pbeWithSHAAnd3-KeyTripleDES-CBC, the certificate in an encrypted
 * safe under pbeWithSHAAnd3-KeyTripleDES-CBC or pbeWithSHAAnd40BitRC2-CBC, and an
 * HMAC-SHA-1 MAC, all with the PKCS#12 key derivation. node-forge provides the ASN.1, the
 * PKCS#12 KDF and the legacy ciphers (RC2 is not in OpenSSL 3's default provider).
 */
import {
  createHmac,
  createPrivateKey,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
  X509Certificate,
} from "node:crypto";
import forge from "node-forge";

const { asn1, pki } = forge;

type Bytes = forge.util.ByteStringBuffer;
interface LegacyCipher {
  start(iv: Bytes): void;
  update(data: Bytes): void;
  finish(): boolean;
  readonly output: Bytes;
}
/** The parts of node-forge its type definitions leave out: the PKCS#12 KDF and DES / RC2. */
interface ForgeLegacy {
  readonly pki: {
    readonly pbe: { generatePkcs12Key(pw: string, salt: Bytes, id: number, iter: number, n: number): Bytes };
  };
  readonly des: { createEncryptionCipher(key: Bytes): LegacyCipher };
  readonly rc2: { createEncryptionCipher(key: Bytes, bits: number): LegacyCipher };
}
const legacy = forge as unknown as ForgeLegacy;

/** The cipher of the certificate safe. */
export type CertBagCipher = "3des" | "rc2-40";

/** Options for {@link writeLegacyPfx}. */
export interface LegacyPfxOptions {
  /** Default 3des (readable by OpenSSL 3 without the legacy provider). */
  readonly certBagCipher?: CertBagCipher;
  /** PBE and MAC iteration count; default 2048. */
  readonly iterations?: number;
  /** Friendly name stored with key and certificate. */
  readonly friendlyName?: string;
}

const OID = {
  data: "1.2.840.113549.1.7.1",
  encryptedData: "1.2.840.113549.1.7.6",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
  localKeyId: "1.2.840.113549.1.9.21",
  friendlyName: "1.2.840.113549.1.9.20",
  sha1: "1.3.14.3.2.26",
  tripleDes: "1.2.840.113549.1.12.1.3",
  rc2x40: "1.2.840.113549.1.12.1.6",
};

type Asn1 = forge.asn1.Asn1;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;
const seq = (items: Asn1[]): Asn1 => asn1.create(U, T.SEQUENCE, true, items);
const set = (items: Asn1[]): Asn1 => asn1.create(U, T.SET, true, items);
const oid = (dotted: string): Asn1 => asn1.create(U, T.OID, false, asn1.oidToDer(dotted).getBytes());
const octets = (bytes: string): Asn1 => asn1.create(U, T.OCTETSTRING, false, bytes);
const int = (n: number): Asn1 => asn1.create(U, T.INTEGER, false, asn1.integerToDer(n).getBytes());
const explicit0 = (inner: Asn1): Asn1 => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [inner]);
const der = (node: Asn1): string => asn1.toDer(node).getBytes();
const bin = (b: Buffer): string => b.toString("binary");

function bagAttributes(localKeyId: Buffer, friendlyName: string | undefined): Asn1 {
  const attrs = [seq([oid(OID.localKeyId), set([octets(bin(localKeyId))])])];
  if (friendlyName !== undefined) {
    // node-forge encodes a BMPString value from the JS string itself (UCS-2).
    attrs.push(seq([oid(OID.friendlyName), set([asn1.create(U, T.BMPSTRING, false, friendlyName)])]));
  }
  return set(attrs);
}

/** Encrypts `plain` with a PKCS#12 PBE cipher; returns the AlgorithmIdentifier and ciphertext. */
function pbeEncrypt(cipherName: CertBagCipher, password: string, iterations: number, plain: string) {
  const salt = bin(randomBytes(8));
  const saltBuf = forge.util.createBuffer(salt);
  const keyLen = cipherName === "3des" ? 24 : 5;
  const key = legacy.pki.pbe.generatePkcs12Key(password, saltBuf, 1, iterations, keyLen);
  const iv = legacy.pki.pbe.generatePkcs12Key(password, forge.util.createBuffer(salt), 2, iterations, 8);
  const cipher =
    cipherName === "3des"
      ? legacy.des.createEncryptionCipher(key)
      : legacy.rc2.createEncryptionCipher(key, 40);
  cipher.start(iv);
  cipher.update(forge.util.createBuffer(plain));
  cipher.finish();
  const algorithm = seq([
    oid(cipherName === "3des" ? OID.tripleDes : OID.rc2x40),
    seq([octets(salt), int(iterations)]),
  ]);
  return { algorithm, ciphertext: cipher.output.getBytes() };
}

/** Writes a password-protected PKCS#12 holding one RSA key and its certificate (cert safe first). */
export function writeLegacyPfx(
  keyPem: string,
  certPem: string,
  password: string,
  options: LegacyPfxOptions = {},
): Buffer {
  const iterations = options.iterations ?? 2048;
  // node:crypto parses the certificate (node-forge cannot parse ECDSA-signed ones).
  const certDer = bin(new X509Certificate(certPem).raw);
  const localKeyId = forge.md.sha1.create().update(certDer).digest().getBytes();
  const attrs = bagAttributes(Buffer.from(localKeyId, "binary"), options.friendlyName);

  const certBag = seq([
    oid(OID.certBag),
    explicit0(seq([oid(OID.x509Certificate), explicit0(octets(certDer))])),
    attrs,
  ]);
  const sealedCerts = pbeEncrypt(options.certBagCipher ?? "3des", password, iterations, der(seq([certBag])));
  const certInfo = seq([
    oid(OID.encryptedData),
    explicit0(
      seq([
        int(0),
        seq([
          oid(OID.data),
          sealedCerts.algorithm,
          asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, false, sealedCerts.ciphertext),
        ]),
      ]),
    ),
  ]);

  const rsaKey = pki.privateKeyFromPem(keyPem);
  const shrouded = pki.encryptPrivateKeyInfo(pki.wrapRsaPrivateKey(pki.privateKeyToAsn1(rsaKey)), password, {
    algorithm: "3des",
    count: iterations,
    saltSize: 8,
  });
  const keyBag = seq([oid(pki.oids.pkcs8ShroudedKeyBag as string), explicit0(shrouded), attrs]);
  const keyInfo = seq([oid(OID.data), explicit0(octets(der(seq([keyBag]))))]);

  const authSafe = der(seq([certInfo, keyInfo]));
  const macSalt = randomBytes(8);
  const macKey = legacy.pki.pbe.generatePkcs12Key(
    password,
    forge.util.createBuffer(bin(macSalt)),
    3,
    iterations,
    20,
  );
  const macValue = createHmac("sha1", Buffer.from(macKey.getBytes(), "binary"))
    .update(Buffer.from(authSafe, "binary"))
    .digest();
  const macData = seq([
    seq([seq([oid(OID.sha1), asn1.create(U, T.NULL, false, "")]), octets(bin(macValue))]),
    octets(bin(macSalt)),
    int(iterations),
  ]);
  const pfx = seq([int(3), seq([oid(OID.data), explicit0(octets(authSafe))]), macData]);
  return Buffer.from(der(pfx), "binary");
}

/** What a client key PKCS#12 holds. */
export interface PfxContents {
  readonly privateKey: KeyObject;
  readonly certificatePem: string | undefined;
}

/** Why a PKCS#12 could not be read. */
export class PfxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PfxError";
  }
}

/**
 * Largest MAC or PBE iteration count read. OpenSSL and hsmkit write 2048, Windows 2000, Java
 * 10 000; node-forge derives keys in JavaScript (about 2 s for a file at 100 000), so a count
 * in the millions from a damaged or hostile file would hold the event loop for hours.
 */
export const MAX_PFX_ITERATIONS = 30_000;

const OCTET_STRING = 4;
const INTEGER = 2;

/**
 * Refuses a PKCS#12 naming more than {@link MAX_PFX_ITERATIONS} iterations. Salt and iteration
 * count sit side by side in every place that has them (MacData, PKCS#12 PBE params, PBKDF2
 * params), so an INTEGER right after an OCTET STRING is a count. OCTET STRINGs wrapping DER
 * (the authenticated safe, the bags) are looked into.
 */
function checkIterations(node: forge.asn1.Asn1, depth: number): void {
  if (depth > 32) throw new PfxError("not a readable PKCS#12: nested too deeply");
  if (typeof node.value === "string") {
    if (node.tagClass !== asn1.Class.UNIVERSAL || node.type !== OCTET_STRING) return;
    let inner: forge.asn1.Asn1;
    try {
      inner = asn1.fromDer(forge.util.createBuffer(node.value), true);
    } catch {
      return; // opaque bytes (a salt, a digest, ciphertext)
    }
    checkIterations(inner, depth + 1);
    return;
  }
  const children = node.value;
  children.forEach((child, i) => {
    const previous = children[i - 1];
    const universal = (n: forge.asn1.Asn1 | undefined, type: number) =>
      n?.tagClass === asn1.Class.UNIVERSAL && n.type === type;
    if (universal(child, INTEGER) && universal(previous, OCTET_STRING) && typeof child.value === "string") {
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

/**
 * Reads a PKCS#12 (legacy or not, as node-forge supports) and returns its private key and
 * first certificate. A wrong password or a corrupted file gives a {@link PfxError}.
 */
export function readPfx(data: Buffer, password: string): PfxContents {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const node = asn1.fromDer(forge.util.createBuffer(data.toString("binary")), true);
    checkIterations(node, 0);
    p12 = forge.pkcs12.pkcs12FromAsn1(node, true, password);
  } catch (err) {
    if (err instanceof PfxError) throw err;
    const text = (err as Error).message;
    if (/mac|password|Invalid/i.test(text)) throw new PfxError("wrong password or corrupted PKCS#12");
    throw new PfxError(`not a readable PKCS#12: ${text}`);
  }
  const keyBags = [
    ...(p12.getBags({ bagType: pki.oids.pkcs8ShroudedKeyBag as string })[
      pki.oids.pkcs8ShroudedKeyBag as string
    ] ?? []),
    ...(p12.getBags({ bagType: pki.oids.keyBag as string })[pki.oids.keyBag as string] ?? []),
  ];
  const key = keyBags[0]?.key;
  if (!key) throw new PfxError("the PKCS#12 holds no private key");
  const certBag = (p12.getBags({ bagType: pki.oids.certBag as string })[pki.oids.certBag as string] ?? [])[0];
  // node-forge only decodes RSA-signed certificates into objects; it keeps the ASN.1 of others.
  const certAsn1 = certBag?.cert ? pki.certificateToAsn1(certBag.cert) : certBag?.asn1;
  const keyPem = pki.privateKeyToPem(key);
  return {
    privateKey: createPrivateKey(keyPem),
    certificatePem: certAsn1
      ? new X509Certificate(Buffer.from(der(certAsn1), "binary")).toString()
      : undefined,
  };
}

/** Constant-time string equality for passwords and ids compared by callers. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
