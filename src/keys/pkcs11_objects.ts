/**
 * Finding objects on a token and reading their attributes: the lookups a key handle needs to
 * open a private key and find its public half.
 */
import { type KeyObject, X509Certificate } from "node:crypto";
import pkcs11js from "pkcs11js";
import type { Pkcs11Handle } from "./pkcs11_module.ts";
import type { TokenContext } from "./pkcs11_session.ts";
import { ecPublicKey, rsaPublicKey } from "./public_key.ts";
import { KeyError } from "./types.ts";

const { CKA_CLASS, CKA_LABEL, CKA_ID, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS } = pkcs11js;
const { CKA_EC_POINT, CKA_VALUE, CKO_PUBLIC_KEY } = pkcs11js;

/** Finds objects matching a template; at most `max` handles. */
export function findObjects(
  context: TokenContext,
  session: Pkcs11Handle,
  template: pkcs11js.Template,
  max: number,
) {
  const { lib } = context.module;
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, max);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** Reads one attribute, or undefined when the token does not have or will not show it. */
export function readAttribute(
  context: TokenContext,
  session: Pkcs11Handle,
  object: Pkcs11Handle,
  type: number,
) {
  try {
    const [attr] = context.module.lib.C_GetAttributeValue(session, object, [{ type }]);
    const value = attr?.value;
    return value && value.length > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The public key of a token private key: from the private object's own public
 * attributes (RSA), else the public key object with the same CKA_ID (or label), else a
 * certificate with the same CKA_ID.
 */
export function findPublicKey(
  context: TokenContext,
  session: Pkcs11Handle,
  key: Pkcs11Handle,
  keyType: number,
  description: string,
): KeyObject {
  const read = (type: number, object: Pkcs11Handle) => readAttribute(context, session, object, type);
  if (keyType !== pkcs11js.CKK_RSA && keyType !== pkcs11js.CKK_EC) {
    throw new KeyError("unsupported", `${description} is neither RSA nor EC`);
  }
  const fromObject = (object: Pkcs11Handle): KeyObject | undefined => {
    if (keyType === pkcs11js.CKK_RSA) {
      const n = read(CKA_MODULUS, object);
      const e = read(CKA_PUBLIC_EXPONENT, object);
      return n && e ? rsaPublicKey(n, e) : undefined;
    }
    const params = read(CKA_EC_PARAMS, object) ?? read(CKA_EC_PARAMS, key);
    const point = read(CKA_EC_POINT, object);
    return params && point ? ecPublicKey(params, point) : undefined;
  };
  const own = fromObject(key);
  if (own) return own;
  const id = read(CKA_ID, key);
  const label = read(CKA_LABEL, key);
  const match: pkcs11js.Template = id
    ? [{ type: CKA_ID, value: id }]
    : label
      ? [{ type: CKA_LABEL, value: label }]
      : [];
  if (match.length > 0) {
    for (const pub of findObjects(
      context,
      session,
      [{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }, ...match],
      4,
    )) {
      const found = fromObject(pub);
      if (found) return found;
    }
    for (const cert of findObjects(
      context,
      session,
      [{ type: CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE }, ...match],
      4,
    )) {
      const der = read(CKA_VALUE, cert);
      if (der) return new X509Certificate(der).publicKey;
    }
  }
  throw new KeyError("not-found", `no public key or certificate for ${description}`);
}
