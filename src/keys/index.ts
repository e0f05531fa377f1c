/**
 * keys/: the public face. A key reference string picks a backend — a file path or
 * `file:PATH`, a `pkcs11:` URI, or any scheme a backend registered (the KMS registers
 * `kms`) — and every backend hands back the same PrivateKeyHandle.
 */
import { generateFileKey, openFileKey } from "./file.ts";
import { isKeyGenType, KEY_GEN_TYPES, type KeyGenType } from "./keygen.ts";
import { isPkcs11Uri } from "./pkcs11_uri.ts";
import { KeyError, type PrivateKeyHandle } from "./types.ts";

export { isKeyGenType, KEY_GEN_TYPES, type KeyGenParams, type KeyGenType } from "./keygen.ts";
export { type Pkcs11Uri, parsePkcs11Uri, withoutPinValue } from "./pkcs11_uri.ts";
export {
  type HashName,
  isSignatureScheme,
  SCHEMES,
  type SchemeInfo,
  type SignaturePadding,
  type SignatureScheme,
  schemeByCode,
  schemesForKey,
} from "./schemes.ts";
export { warnIfSecretFileExposed } from "./secret_file.ts";
export {
  KeyError,
  type KeyErrorKind,
  type KeyType,
  type NamedCurve,
  type PrivateKeyHandle,
  type SignInput,
} from "./types.ts";

/** A pluggable key backend for one reference scheme (e.g. `kms` for `kms://...`). */
export interface KeyBackend {
  /** Opens the key a reference names. */
  open(ref: string): Promise<PrivateKeyHandle>;
  /** Generates a key pair where the reference says; absent when the backend cannot. */
  generate?(ref: string, type: KeyGenType): Promise<PrivateKeyHandle>;
}

const BUILT_IN = new Set(["file", "pkcs11"]);
const backends = new Map<string, KeyBackend>();

function normaliseScheme(scheme: string): string {
  const name = scheme.replace(/:(\/\/)?$/, "").toLowerCase();
  if (!/^[a-z][a-z0-9+.-]*$/.test(name)) throw new TypeError(`'${scheme}' is not a URI scheme name`);
  return name;
}

/**
 * Registers the backend for `scheme:` references ("kms", "kms:" and "kms://" all mean
 * the same). keys/ imports no backend of ours beyond files and PKCS#11; others plug in here.
 * Registering a scheme again replaces the earlier backend.
 */
export function registerKeyBackend(scheme: string, backend: KeyBackend): void {
  const name = normaliseScheme(scheme);
  if (BUILT_IN.has(name)) throw new TypeError(`the '${name}' key scheme is built in`);
  backends.set(name, backend);
}

type Route =
  | { readonly kind: "file" }
  | { readonly kind: "pkcs11" }
  | { readonly kind: "plugin"; readonly name: string; readonly backend: KeyBackend };

/** Picks the backend for a reference. */
function route(ref: string): Route {
  if (typeof ref !== "string" || ref === "") throw new KeyError("bad-reference", "empty key reference");
  if (ref.length > 16384) throw new KeyError("bad-reference", "key reference is too long");
  if (isPkcs11Uri(ref)) return { kind: "pkcs11" };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(ref)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== "file") {
    const backend = backends.get(scheme);
    if (backend) return { kind: "plugin", name: scheme, backend };
    // "name://..." is a URI for a backend this process does not have, never a file name.
    if (ref.slice(scheme.length + 1).startsWith("//")) {
      throw new KeyError("bad-reference", `no key backend for '${scheme}:' references is available`);
    }
  }
  return { kind: "file" };
}

/** Opens the private key a reference names. Failures are KeyErrors with a precise kind. */
export async function openKey(ref: string): Promise<PrivateKeyHandle> {
  const r = route(ref);
  // The PKCS#11 code (and its native addon) loads with the first token key: file keys skip it.
  if (r.kind === "pkcs11") return (await import("./pkcs11.ts")).openPkcs11Key(ref);
  if (r.kind === "plugin") return r.backend.open(ref);
  return openFileKey(ref);
}

/**
 * Generates a key pair where the reference says and returns its handle: a new PKCS#8 file
 * (0600; encrypted when the reference has passphrase-file) or a non-extractable token key.
 * Never replaces an existing file or token object (KeyError "exists").
 */
export async function generateKey(ref: string, type: KeyGenType): Promise<PrivateKeyHandle> {
  if (!isKeyGenType(type)) {
    throw new KeyError(
      "unsupported",
      `unknown key type '${String(type)}'; use one of ${Object.keys(KEY_GEN_TYPES).join(", ")}`,
    );
  }
  const r = route(ref);
  if (r.kind === "pkcs11") return (await import("./pkcs11_generate.ts")).generatePkcs11Key(ref, type);
  if (r.kind === "file") return generateFileKey(ref, type);
  if (!r.backend.generate) {
    throw new KeyError("unsupported", `the '${r.name}' key backend cannot generate keys`);
  }
  return r.backend.generate(ref, type);
}

/** The handle's public key as an SPKI PEM ("-----BEGIN PUBLIC KEY-----"). */
export function publicKeyPem(handle: PrivateKeyHandle): string {
  return handle.publicKey.export({ type: "spki", format: "pem" }).toString();
}

/** A key reference safe to print: inline PINs and passwords are masked. */
export function redactKeyReference(ref: string): string {
  return ref.replace(/((?:pin|password|passphrase)-value=)[^&;]*/gi, "$1***");
}
