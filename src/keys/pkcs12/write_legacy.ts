/**
 * A legacy PFX, for every importer that predates PBES2: Windows before 10 1709, and the KMS
 * instance SDKs (Go's x/crypto/pkcs12, Python's, Java's) reading an access point's client key.
 * The key in a pkcs8ShroudedKeyBag under pbeWithSHAAnd3-KeyTripleDES-CBC, the certificates in
 * an encrypted safe under pbeWithSHAAnd3-KeyTripleDES-CBC or pbeWithSHAAnd40BitRC2-CBC, and an
 * HMAC-SHA-1 MAC, all keyed by the PKCS#12 KDF (RFC 7292).
 */
import { createHmac, createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import forge from "node-forge";
import { checkContents, MAC_ITERATIONS, OID, type Pkcs12Contents } from "./contents.ts";
import {
  type Asn1,
  bin,
  bmp,
  der,
  explicit0,
  implicit0,
  int,
  legacyEncrypt,
  nil,
  octets,
  oid,
  pkcs12Key,
  seq,
  set,
} from "./forge_asn1.ts";

/** The cipher of the certificate safe. */
export type CertBagCipher = "3des" | "rc2-40";

/** Options for {@link writeLegacyPfxContents} and {@link writeLegacyPfx}. */
export interface LegacyPfxOptions {
  /** Default 3des (readable by OpenSSL 3 without the legacy provider's RC2). */
  readonly certBagCipher?: CertBagCipher;
  /** PBE and MAC iteration count; default 2048. */
  readonly iterations?: number;
  /** Friendly name stored with key and certificate (PEM form only; else in the contents). */
  readonly friendlyName?: string;
}

const PBE_OID: Record<CertBagCipher, string> = {
  "3des": "1.2.840.113549.1.12.1.3",
  "rc2-40": "1.2.840.113549.1.12.1.6",
};
const SHA1_OID = "1.3.14.3.2.26";

function bagAttributes(localKeyId: Buffer, friendlyName: string | undefined): Asn1 {
  const attrs = [seq([oid(OID.localKeyId), set([octets(bin(localKeyId))])])];
  if (friendlyName !== undefined) attrs.unshift(seq([oid(OID.friendlyName), set([bmp(friendlyName)])]));
  return set(attrs);
}

/** The certificate safe: an EncryptedData ContentInfo under a PKCS#12 PBE cipher. */
function sealedCertificates(bags: Asn1[], cipher: CertBagCipher, password: string, iterations: number): Asn1 {
  const salt = bin(randomBytes(8));
  const key = pkcs12Key(password, salt, 1, iterations, cipher === "3des" ? 24 : 5);
  const iv = pkcs12Key(password, salt, 2, iterations, 8);
  const algorithm = seq([oid(PBE_OID[cipher]), seq([octets(salt), int(iterations)])]);
  const ciphertext = legacyEncrypt(cipher, key, iv, der(seq(bags)));
  const encryptedContent = seq([oid(OID.data), algorithm, implicit0(ciphertext)]);
  return seq([oid(OID.encryptedData), explicit0(seq([int(0), encryptedContent]))]);
}

/** MacData: HMAC-SHA-1 over the authenticated safe under a PKCS#12 KDF key. */
function macData(authSafe: string, password: string, iterations: number): Asn1 {
  const salt = bin(randomBytes(8));
  const macKey = Buffer.from(pkcs12Key(password, salt, 3, iterations, 20), "binary");
  const mac = createHmac("sha1", macKey).update(Buffer.from(authSafe, "binary")).digest();
  macKey.fill(0);
  return seq([seq([seq([oid(SHA1_OID), nil()]), octets(bin(mac))]), octets(salt), int(iterations)]);
}

/** A legacy PFX of the contents: certificate safe first, then the key safe. */
export function writeLegacyPfxContents(contents: Pkcs12Contents, options: LegacyPfxOptions = {}): Buffer {
  const keyId = checkContents(contents);
  const iterations = options.iterations ?? MAC_ITERATIONS;
  const password = contents.password.toString("utf8");
  const attrs = bagAttributes(keyId, contents.friendlyName);
  const certBags = contents.certificates.map((cert, i) =>
    seq([
      oid(OID.certBag),
      explicit0(seq([oid(OID.x509Certificate), explicit0(octets(bin(cert)))])),
      ...(i === 0 ? [attrs] : []),
    ]),
  );
  const keyDer = contents.privateKey.export({ type: "pkcs8", format: "der" });
  try {
    // forge encrypts any PrivateKeyInfo (RSA or EC) with the PKCS#12 3DES PBE.
    const keyInfo = forge.asn1.fromDer(bin(keyDer));
    const shrouded = forge.pki.encryptPrivateKeyInfo(keyInfo, password, {
      algorithm: "3des",
      count: iterations,
      saltSize: 8,
    });
    const keyBag = seq([oid(OID.shroudedKeyBag), explicit0(shrouded), attrs]);
    const keySafe = seq([oid(OID.data), explicit0(octets(der(seq([keyBag]))))]);
    const certSafe = sealedCertificates(certBags, options.certBagCipher ?? "3des", password, iterations);
    const authSafe = der(seq([certSafe, keySafe]));
    const pfx = seq([
      int(3),
      seq([oid(OID.data), explicit0(octets(authSafe))]),
      macData(authSafe, password, iterations),
    ]);
    return Buffer.from(der(pfx), "binary");
  } finally {
    keyDer.fill(0);
  }
}

/** A legacy PFX of one PEM key and its PEM certificate (an access point's client key). */
export function writeLegacyPfx(
  keyPem: string,
  certPem: string,
  password: string,
  options: LegacyPfxOptions = {},
): Buffer {
  const passwordBytes = Buffer.from(password, "utf8");
  try {
    const contents: Pkcs12Contents = {
      certificates: [new X509Certificate(certPem).raw],
      privateKey: createPrivateKey(keyPem),
      password: passwordBytes,
      ...(options.friendlyName !== undefined ? { friendlyName: options.friendlyName } : {}),
    };
    return writeLegacyPfxContents(contents, options);
  } finally {
    passwordBytes.fill(0);
  }
}
