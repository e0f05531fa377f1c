/**
 * A modern PFX (pkijs): key and certificates under PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC),
 * HMAC-SHA256 MAC, what OpenSSL 3 writes by default and Windows 10 1709+ imports.
 */
import { webcrypto } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { checkContents, MAC_ITERATIONS, OID, PfxError, type Pkcs12Contents } from "./contents.ts";

/** PBKDF2 iterations for the key and certificate encryption. */
const PBKDF2_ITERATIONS = 10_000;

/** friendlyName (BMPString, when given) and localKeyId attributes for the key and the leaf bags. */
function bagAttributes(name: string | undefined, keyId: Buffer): pkijs.Attribute[] {
  const localKeyId = new pkijs.Attribute({
    type: OID.localKeyId,
    values: [new asn1js.OctetString({ valueHex: keyId })],
  });
  if (name === undefined) return [localKeyId];
  return [
    new pkijs.Attribute({ type: OID.friendlyName, values: [new asn1js.BmpString({ value: name })] }),
    localKeyId,
  ];
}

/** The PFX structure, the key (already shrouded) in the first safe, the certificates in the second. */
function pfxOf(contents: Pkcs12Contents, shroudedKey: pkijs.PKCS8ShroudedKeyBag, keyId: Buffer): pkijs.PFX {
  const attributes = bagAttributes(contents.friendlyName, keyId);
  const keyBag = new pkijs.SafeBag({
    bagId: OID.shroudedKeyBag,
    bagValue: shroudedKey,
    bagAttributes: attributes,
  });
  const certBags = contents.certificates.map(
    (der, i) =>
      new pkijs.SafeBag({
        bagId: OID.certBag,
        bagValue: new pkijs.CertBag({ parsedValue: pkijs.Certificate.fromBER(new Uint8Array(der)) }),
        ...(i === 0 ? { bagAttributes: attributes } : {}),
      }),
  );
  const safeContents = [
    { privacyMode: 0, value: new pkijs.SafeContents({ safeBags: [keyBag] }) },
    { privacyMode: 1, value: new pkijs.SafeContents({ safeBags: certBags }) },
  ];
  const authenticatedSafe = new pkijs.AuthenticatedSafe({ parsedValue: { safeContents } });
  return new pkijs.PFX({ parsedValue: { integrityMode: 0, authenticatedSafe } });
}

/** A modern PFX: AES-256-CBC + PBKDF2-SHA256 for key and certificates, HMAC-SHA256 MAC. */
export async function writeModernPfx(contents: Pkcs12Contents): Promise<Buffer> {
  const keyId = checkContents(contents);
  const engine = new pkijs.CryptoEngine({ name: "node", crypto: webcrypto as unknown as Crypto });
  const keyDer = contents.privateKey.export({ type: "pkcs8", format: "der" });
  try {
    const password = new Uint8Array(contents.password).buffer;
    const encryption: Omit<pkijs.EncryptedDataEncryptParams, "contentToEncrypt"> = {
      password,
      // The engine draws a fresh random IV itself; the type wants one anyway.
      contentEncryptionAlgorithm: { name: "AES-CBC", length: 256 } as pkijs.ContentEncryptionAesCbcParams,
      hmacHashAlgorithm: "SHA-256",
      iterationCount: PBKDF2_ITERATIONS,
    };
    const shroudedKey = new pkijs.PKCS8ShroudedKeyBag({
      parsedValue: new pkijs.PrivateKeyInfo({ schema: asn1js.fromBER(keyDer).result }),
    });
    await shroudedKey.makeInternalValues(encryption, engine);
    const pfx = pfxOf(contents, shroudedKey, keyId);
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
    if (err instanceof PfxError) throw err;
    throw new PfxError(`cannot build the PFX: ${err instanceof Error ? err.message : err}`, { cause: err });
  } finally {
    keyDer.fill(0);
  }
}
