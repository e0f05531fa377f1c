/**
 * Which schemes a handle accepts: one check shared by every backend, so they all refuse
 * the same things with the same message.
 */
import { SCHEMES, type SchemeInfo, type SignatureScheme, schemesForKey } from "./schemes.ts";
import type { KeyType, NamedCurve } from "./types.ts";
import { KeyError } from "./types.ts";

/** The schemes a key can perform, in preference order (see schemesForKey). */
export function supportedSchemes(type: KeyType, curve: NamedCurve | undefined): readonly SignatureScheme[] {
  return Object.freeze(schemesForKey(type, curve));
}

/**
 * Returns the scheme's facts, or throws KeyError("unsupported") when this key cannot
 * produce it (an RSA scheme on an EC key, an unknown name from an untyped caller...).
 */
export function requireScheme(
  schemes: readonly SignatureScheme[],
  scheme: SignatureScheme,
  description: string,
): SchemeInfo {
  const info: SchemeInfo | undefined = Object.hasOwn(SCHEMES, scheme) ? SCHEMES[scheme] : undefined;
  if (!info || !schemes.includes(scheme)) {
    throw new KeyError("unsupported", `${description} cannot sign with ${String(scheme)}`);
  }
  return info;
}
