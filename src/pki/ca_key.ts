/**
 * Getting hold of keys for the CA: opening a CA's own key (and checking it is the one its
 * certificate names), and obtaining a new key from `--key` / `--type` for a new CA or leaf.
 */
import { generateKey, KeyError, type KeyGenType, openKey, type PrivateKeyHandle } from "../keys/index.ts";
import { type CaDirectory, caKeyReference } from "./cadir.ts";
import type { Issuer } from "./certificate.ts";
import { checkKeyMatchesCertificate } from "./certificate.ts";
import { PkiError } from "./errors.ts";
import { type CaSignatureScheme, checkSchemeForKey } from "./signer.ts";

/** Turns a key failure into a PkiError that says which key it was. */
function keyFailure(err: unknown, what: string): never {
  if (err instanceof KeyError) throw new PkiError("key", `${what}: ${err.message}`, { cause: err });
  throw err;
}

/** Opens a key by reference, naming it in any error. */
async function openNamedKey(ref: string, what: string): Promise<PrivateKeyHandle> {
  try {
    return await openKey(ref);
  } catch (err) {
    keyFailure(err, `cannot open ${what}`);
  }
}

/**
 * Opens the key of a CA directory (or `override`, a reference given on the command line,
 * e.g. with the PIN) and checks it matches ca.crt. The caller closes `issuer.key`.
 */
export async function openIssuer(
  ca: CaDirectory,
  override?: string,
  scheme?: CaSignatureScheme,
): Promise<Issuer> {
  const key = await openNamedKey(override ?? caKeyReference(ca), `the CA key of ${ca.dir}`);
  try {
    checkKeyMatchesCertificate(key, ca.certificate, `${ca.dir}/ca.crt`);
    const chosen = scheme ?? ca.config.signature;
    checkSchemeForKey(key, chosen);
    return { certificate: ca.certificate, key, scheme: chosen };
  } catch (err) {
    await key.close();
    throw err;
  }
}

/** Where a new key comes from: an existing reference, a type to generate, or both (generate at the reference). */
export interface KeySource {
  readonly key?: string;
  readonly type?: KeyGenType;
}

/**
 * Opens or generates the key a {@link KeySource} describes. With only a type, the key is
 * generated into `fileRef` (a file reference the caller chose, e.g. inside a staging
 * directory). Returns the handle; the caller closes it.
 */
export async function obtainKey(
  source: KeySource,
  fileRef: () => string,
  what: string,
): Promise<PrivateKeyHandle> {
  try {
    if (source.key !== undefined && source.type !== undefined)
      return await generateKey(source.key, source.type);
    if (source.key !== undefined) return await openKey(source.key);
    if (source.type !== undefined) return await generateKey(fileRef(), source.type);
  } catch (err) {
    keyFailure(err, `cannot ${source.type !== undefined ? "generate" : "open"} ${what}`);
  }
  throw new PkiError(
    "bad-input",
    (name) => `give ${name("key", "KEYREF")} or ${name("type", "TYPE")} for ${what}`,
  );
}
