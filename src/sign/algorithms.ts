/**
 * File signature algorithms by the names the CLI and the KMS use (RSA_PSS_SHA_256, ...),
 * mapped onto the key handle's signature schemes, which fix hash and padding. PSS always
 * uses salt length = hash length, so `openssl dgst -sigopt rsa_pss_saltlen:32` agrees.
 */
import { HsmkitError, type OptionText } from "../errors.ts";
import { SCHEMES, type SchemeInfo, type SignatureScheme } from "../keys/schemes.ts";

/** File signature algorithm names. */
export const FILE_ALGORITHMS = {
  RSA_PSS_SHA_256: "rsa_pss_rsae_sha256",
  RSA_PSS_SHA_384: "rsa_pss_rsae_sha384",
  RSA_PSS_SHA_512: "rsa_pss_rsae_sha512",
  RSA_PKCS1_SHA_256: "rsa_pkcs1_sha256",
  RSA_PKCS1_SHA_384: "rsa_pkcs1_sha384",
  RSA_PKCS1_SHA_512: "rsa_pkcs1_sha512",
  ECDSA_SHA_256: "ecdsa_secp256r1_sha256",
  ECDSA_SHA_384: "ecdsa_secp384r1_sha384",
  ECDSA_SHA_512: "ecdsa_secp521r1_sha512",
} as const satisfies Record<string, SignatureScheme>;

/** A file signature algorithm name. */
export type FileAlgorithm = keyof typeof FILE_ALGORITHMS;

/** Why an algorithm name or key does not fit. */
export class AlgorithmError extends HsmkitError {
  constructor(message: string | OptionText) {
    super(message);
    this.name = "AlgorithmError";
  }
}

/** The scheme (hash, padding, key type) behind an algorithm name; throws on unknown names. */
export function fileAlgorithm(name: string): SchemeInfo {
  if (!Object.hasOwn(FILE_ALGORITHMS, name)) {
    const known = Object.keys(FILE_ALGORITHMS).join(", ");
    throw new AlgorithmError((option) => `unknown ${option("algorithm")} "${name}" (one of ${known})`);
  }
  return SCHEMES[FILE_ALGORITHMS[name as FileAlgorithm]];
}

/** Checks that a key of `keyType` can make or check `name` signatures. */
export function checkKeyFits(name: string, info: SchemeInfo, keyType: string | undefined): void {
  if (info.keyType !== keyType) {
    throw new AlgorithmError(
      `${name} needs an ${info.keyType.toUpperCase()} key, this one is ${keyType ?? "unknown"}`,
    );
  }
}
