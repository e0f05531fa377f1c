/**
 * Handshake signatures: choosing a scheme both sides accept, signing through the key
 * handle, and checking the peer's signature with node:crypto.
 */
import { constants, createHash, type KeyObject, publicDecrypt, timingSafeEqual, verify } from "node:crypto";
import { SCHEMES, type SchemeInfo, type SignatureScheme, schemeByCode } from "../keys/schemes.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { AlertDescription, TlsError } from "./alert.ts";
import { ProtocolVersion } from "./constants.ts";

/** The scheme codes hsmkit accepts from peers, in the order it advertises them. */
export const VERIFY_SCHEMES: readonly SignatureScheme[] = [
  "ecdsa_secp256r1_sha256",
  "ecdsa_secp384r1_sha384",
  "ecdsa_secp521r1_sha512",
  "rsa_pss_rsae_sha256",
  "rsa_pss_rsae_sha384",
  "rsa_pss_rsae_sha512",
  "rsa_pkcs1_sha256",
  "rsa_pkcs1_sha384",
  "rsa_pkcs1_sha512",
];

/** Code points of {@link VERIFY_SCHEMES} for the signature_algorithms extension. */
export function verifySchemeCodes(version: ProtocolVersion): number[] {
  return VERIFY_SCHEMES.filter((s) => version < ProtocolVersion.TLS13 || SCHEMES[s].padding !== "pkcs1").map(
    (s) => SCHEMES[s].code!,
  );
}

/**
 * Picks the scheme our key signs with. TLS 1.2: the key's first scheme the peer listed
 * (never MD5+SHA-1). TLS 1.0/1.1: MD5+SHA-1 for RSA, SHA-1 ECDSA for EC (RFC 4346, RFC 4492).
 */
export function chooseScheme(
  key: PrivateKeyHandle,
  version: number,
  peerCodes: readonly number[],
): SchemeInfo {
  if (version < ProtocolVersion.TLS12)
    return SCHEMES[key.type === "rsa" ? "rsa_pkcs1_md5_sha1" : "ecdsa_sha1"];
  const tls13 = version >= ProtocolVersion.TLS13;
  for (const name of key.schemes) {
    const s = SCHEMES[name];
    if (s.code === undefined || !peerCodes.includes(s.code)) continue;
    if (tls13 && (s.padding === "pkcs1" || s.hash === "sha1" || (s.curve && s.curve !== key.curve))) continue;
    return s;
  }
  throw new TlsError(
    AlertDescription.handshake_failure,
    `the peer accepts no signature scheme our ${key.type.toUpperCase()} key can make`,
    "config",
  );
}

/** Signs handshake data with the key handle, turning key failures into TLS errors. */
export async function signWith(key: PrivateKeyHandle, scheme: SchemeInfo, data: Buffer): Promise<Buffer> {
  try {
    return await key.sign(scheme.name, data);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new TlsError(
      AlertDescription.internal_error,
      `signing with ${key.description} failed: ${msg}`,
      "key",
      { cause: err },
    );
  }
}

/** The scheme a TLS 1.1-or-older peer used, implied by its key type. */
export function legacyScheme(publicKey: KeyObject): SchemeInfo {
  return SCHEMES[publicKey.asymmetricKeyType === "rsa" ? "rsa_pkcs1_md5_sha1" : "ecdsa_sha1"];
}

/**
 * Checks a peer's handshake signature. `code` is the scheme it named (TLS 1.2+), which
 * must be one we offered and must fit its key.
 */
export function verifyHandshakeSignature(
  publicKey: KeyObject,
  code: number | undefined,
  data: Buffer,
  signature: Buffer,
  version: number,
): void {
  let scheme: SchemeInfo;
  if (code === undefined) {
    scheme = legacyScheme(publicKey);
  } else {
    const s = schemeByCode(code);
    const offered = verifySchemeCodes(version as ProtocolVersion);
    if (!s || !offered.includes(code))
      throw new TlsError(
        AlertDescription.illegal_parameter,
        `peer used a signature scheme we did not offer (0x${code.toString(16)})`,
      );
    scheme = s;
  }
  const keyType =
    publicKey.asymmetricKeyType === "rsa" ? "rsa" : publicKey.asymmetricKeyType === "ec" ? "ec" : undefined;
  if (keyType !== scheme.keyType)
    throw new TlsError(
      AlertDescription.illegal_parameter,
      `signature scheme ${scheme.name} does not fit the peer's key`,
    );
  if (version >= ProtocolVersion.TLS13 && scheme.curve) {
    const curve = publicKey.asymmetricKeyDetails?.namedCurve;
    const expected = { "P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1" }[scheme.curve];
    if (curve !== expected)
      throw new TlsError(AlertDescription.illegal_parameter, `${scheme.name} does not match the key's curve`);
  }
  if (!checkSignature(publicKey, scheme, data, signature)) {
    throw new TlsError(AlertDescription.decrypt_error, "the peer's handshake signature is invalid");
  }
}

function checkSignature(publicKey: KeyObject, scheme: SchemeInfo, data: Buffer, signature: Buffer): boolean {
  try {
    if (scheme.hash === "md5-sha1") {
      const digest = Buffer.concat([
        createHash("md5").update(data).digest(),
        createHash("sha1").update(data).digest(),
      ]);
      const recovered = publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
      return recovered.length === digest.length && timingSafeEqual(recovered, digest);
    }
    if (scheme.padding === "pss") {
      return verify(
        scheme.hash,
        data,
        { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.hashLength },
        signature,
      );
    }
    if (scheme.padding === "pkcs1") {
      return verify(scheme.hash, data, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
    }
    return verify(scheme.hash, data, { key: publicKey, dsaEncoding: "der" }, signature);
  } catch {
    return false;
  }
}
