/**
 * Key pair types hsmkit can generate, with the parameters each backend needs.
 */
import type { KeyType, NamedCurve } from "./types.ts";

/** The key pair types `generateKey` and `hsmkit key generate --type` accept. */
export type KeyGenType = "rsa2048" | "rsa3072" | "rsa4096" | "ec-p256" | "ec-p384";

/** The parameters behind a KeyGenType. */
export interface KeyGenParams {
  readonly type: KeyType;
  /** Modulus length for RSA, field size for EC. */
  readonly bits: number;
  /** The curve for EC; undefined for RSA. */
  readonly curve: NamedCurve | undefined;
}

/** Every generation type, in the order help texts list them. */
export const KEY_GEN_TYPES: Readonly<Record<KeyGenType, KeyGenParams>> = {
  rsa2048: { type: "rsa", bits: 2048, curve: undefined },
  rsa3072: { type: "rsa", bits: 3072, curve: undefined },
  rsa4096: { type: "rsa", bits: 4096, curve: undefined },
  "ec-p256": { type: "ec", bits: 256, curve: "P-256" },
  "ec-p384": { type: "ec", bits: 384, curve: "P-384" },
};

/** True when `name` is a KeyGenType. */
export function isKeyGenType(name: string): name is KeyGenType {
  return Object.hasOwn(KEY_GEN_TYPES, name);
}
