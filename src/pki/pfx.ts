/**
 * PKCS#12 (PFX) export of a leaf certificate, its chain and its private key, for Windows,
 * browsers and NSS. Two flavours:
 *
 *  - modern (pkijs): key and certificates under PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC),
 *    HMAC-SHA256 MAC, what OpenSSL 3 writes by default;
 *  - legacy (node-forge): key under pbeWithSHAAnd3-KeyTripleDES-CBC, HMAC-SHA1 MAC, for
 *    Windows before 10 1709 and other old importers.
 *
 * Both set friendlyName and localKeyId (SHA-1 of the leaf) on the key and the leaf.
 */
import { createHash, createPublicKey, type KeyObject, webcrypto } from "node:crypto";
import type * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import forge from "node-forge";
import * as pkijs from "pkijs";
import { PkiError } from "./errors.ts";

/** What goes into a PFX. */
export interface PfxContents {
  /** The leaf first, then its chain. */
  readonly certificates: readonly x509.X509Certificate[];
  readonly privateKey: KeyObject;
  /** UTF-8 password bytes; the caller zeroes them. */
  readonly password: Buffer;
  /** Name shown by importers; defaults to the leaf's CN. */
  readonly friendlyName?: string;
}

const OID = {
  friendlyName: "1.2.840.113549.1.9.20",
  localKeyId: "1.2.840.113549.1.9.21",
  shroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
  certBag: "1.2.840.113549.1.12.10.1.3",
  x509Certificate: "1.2.840.113549.1.9.22.1",
} as const;

/** PBKDF2 iterations for the modern key and certificate encryption. */
const PBKDF2_ITERATIONS = 10_000;
/** PKCS#12 KDF iterations for the MAC (and legacy 3DES), as OpenSSL uses. */
const MAC_ITERATIONS = 2048;

/** Checks the inputs: a leaf, a key that matches it, a non-empty password. */
function checkContents(contents: PfxContents): { leaf: x509.X509Certificate; name: string; keyId: Buffer } {
  const [leaf] = contents.certificates;
  if (!leaf) throw new PkiError("bad-input", "no certificate to put into the PFX");
  const leafSpki = Buffer.from(leaf.publicKey.rawData);
  const keySpki = createPublicKey(contents.privateKey).export({ type: "spki", format: "der" });
  if (!leafSpki.equals(keySpki)) {
    throw new PkiError("bad-input", "the private key does not match the certificate");
  }
  if (contents.password.length === 0) throw new PkiError("bad-input", "the PFX password is empty");
  const name = contents.friendlyName ?? leaf.subjectName.getField("CN")[0] ?? leaf.subject;
  const keyId = createHash("sha1").update(new Uint8Array(leaf.rawData)).digest();
  return { leaf, name, keyId };
}

function pkcs8Der(key: KeyObject): Buffer {
  return key.export({ type: "pkcs8", format: "der" });
}

/** friendlyName (BMPString) and localKeyId attributes for the key and the leaf bags. */
function bagAttributes(name: string, keyId: Buffer): pkijs.Attribute[] {
  return [
    new pkijs.Attribute({ type: OID.friendlyName, values: [new asn1js.BmpString({ value: name })] }),
    new pkijs.Attribute({ type: OID.localKeyId, values: [new asn1js.OctetString({ valueHex: keyId })] }),
  ];
}

/** A modern PFX: AES-256-CBC + PBKDF2-SHA256 for key and certificates, HMAC-SHA256 MAC. */
export async function modernPfx(contents: PfxContents): Promise<Buffer> {
  const { name, keyId } = checkContents(contents);
  const engine = new pkijs.CryptoEngine({ name: "node", crypto: webcrypto as unknown as Crypto });
  const keyDer = pkcs8Der(contents.privateKey);
  try {
    const keyBag = new pkijs.PKCS8ShroudedKeyBag({
      parsedValue: new pkijs.PrivateKeyInfo({ schema: asn1js.fromBER(keyDer).result }),
    });
    const certBags = contents.certificates.map(
      (cert, i) =>
        new pkijs.SafeBag({
          bagId: OID.certBag,
          bagValue: new pkijs.CertBag({
            parsedValue: pkijs.Certificate.fromBER(new Uint8Array(cert.rawData)),
          }),
          ...(i === 0 ? { bagAttributes: bagAttributes(name, keyId) } : {}),
        }),
    );
    const password = new Uint8Array(contents.password).buffer;
    const encryption: Omit<pkijs.EncryptedDataEncryptParams, "contentToEncrypt"> = {
      password,
      // The engine draws a fresh random IV itself; the type wants one anyway.
      contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 } as pkijs.ContentEncryptionAesCbcParams,
      hmacHashAlgorithm: "SHA-256",
      iterationCount: PBKDF2_ITERATIONS,
    };
    await keyBag.makeInternalValues(encryption, engine);
    const pfx = new pkijs.PFX({
      parsedValue: {
        integrityMode: 0,
        authenticatedSafe: new pkijs.AuthenticatedSafe({
          parsedValue: {
            safeContents: [
              {
                privacyMode: 0,
                value: new pkijs.SafeContents({
                  safeBags: [
                    new pkijs.SafeBag({
                      bagId: OID.shroudedKeyBag,
                      bagValue: keyBag,
                      bagAttributes: bagAttributes(name, keyId),
                    }),
                  ],
                }),
              },
              { privacyMode: 1, value: new pkijs.SafeContents({ safeBags: certBags }) },
            ],
          },
        }),
      },
    });
    await pfx.parsedValue?.authenticatedSafe?.makeInternalValues({ safeContents: [{}, encryption] }, engine);
    await pfx.makeInternalValues(
      {
        password,
        iterations: MAC_ITERATIONS,
        pbkdf2HashAlgorithm: { name: "SHA-256" },
        hmacHashAlgorithm: "SHA-256",
      },
      engine,
    );
    return Buffer.from(pfx.toSchema().toBER(false));
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError("internal", `cannot build the PFX: ${err instanceof Error ? err.message : err}`);
  } finally {
    keyDer.fill(0);
  }
}

/** A legacy PFX: 3DES key bag (PKCS#12 PBE), certificates in the clear, HMAC-SHA1 MAC. */
export function legacyPfx(contents: PfxContents): Buffer {
  const { name, keyId } = checkContents(contents);
  const { asn1, pki, util } = forge;
  const password = contents.password.toString("utf8");
  const keyDer = pkcs8Der(contents.privateKey);
  try {
    const seq = (items: forge.asn1.Asn1[]) =>
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, items);
    const oid = (id: string) =>
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(id).getBytes());
    const octets = (bytes: string) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, bytes);
    const explicit0 = (item: forge.asn1.Asn1) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [item]);
    const dataInfo = (inner: forge.asn1.Asn1) =>
      seq([oid("1.2.840.113549.1.7.1"), explicit0(octets(asn1.toDer(inner).getBytes()))]);
    const attrs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
      seq([
        oid(OID.friendlyName),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
          // forge writes a BMPSTRING's JS string as UTF-16BE itself.
          asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BMPSTRING, false, name),
        ]),
      ]),
      seq([
        oid(OID.localKeyId),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [octets(keyId.toString("binary"))]),
      ]),
    ]);
    // forge encrypts any PrivateKeyInfo (RSA or EC) with the PKCS#12 3DES PBE.
    const encryptedKey = pki.encryptPrivateKeyInfo(asn1.fromDer(keyDer.toString("binary")), password, {
      algorithm: "3des",
      count: MAC_ITERATIONS,
    });
    const keyBag = seq([oid(OID.shroudedKeyBag), explicit0(encryptedKey), attrs]);
    const certBags = contents.certificates.map((cert, i) => {
      const certBag = seq([
        oid(OID.x509Certificate),
        explicit0(octets(Buffer.from(cert.rawData).toString("binary"))),
      ]);
      return seq([oid(OID.certBag), explicit0(certBag), ...(i === 0 ? [attrs] : [])]);
    });
    const authSafe = seq([dataInfo(seq(certBags)), dataInfo(seq([keyBag]))]);
    const authSafeDer = asn1.toDer(authSafe).getBytes();
    const salt = forge.random.getBytesSync(8);
    const macKey = forge.pkcs12.generateKey(password, forge.util.createBuffer(salt), 3, MAC_ITERATIONS, 20);
    const hmac = forge.hmac.create();
    hmac.start("sha1", macKey);
    hmac.update(authSafeDer);
    const macData = seq([
      seq([
        seq([oid("1.3.14.3.2.26"), asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, "")]),
        octets(hmac.digest().getBytes()),
      ]),
      octets(salt),
      asn1.create(
        asn1.Class.UNIVERSAL,
        asn1.Type.INTEGER,
        false,
        asn1.integerToDer(MAC_ITERATIONS).getBytes(),
      ),
    ]);
    const pfx = seq([
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(3).getBytes()),
      seq([oid("1.2.840.113549.1.7.1"), explicit0(octets(authSafeDer))]),
      macData,
    ]);
    return Buffer.from(util.binary.raw.decode(asn1.toDer(pfx).getBytes()));
  } finally {
    keyDer.fill(0);
  }
}
