/**
 * Private keys in files: PEM (PKCS#1 "RSA PRIVATE KEY", SEC1 "EC PRIVATE KEY", PKCS#8,
 * encrypted PKCS#8) and DER. The key lives in a node:crypto KeyObject; signatures use
 * crypto.sign / createSign, and RSA raw operations serve signDigest and decrypt.
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  createSign,
  sign as cryptoSign,
  generateKeyPair,
  type KeyObject,
  privateDecrypt,
  privateEncrypt,
} from "node:crypto";
import { open, readFile, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { isBytes } from "./digest.ts";
import { KEY_GEN_TYPES, type KeyGenType } from "./keygen.ts";
import { findCurve, keyShape, spkiDer } from "./public_key.ts";
import {
  checkDigestLength,
  digestInfo,
  emsaPssEncode,
  unpadPkcs1Type2,
  unpadPkcs1Type2Implicit,
} from "./rsa_padding.ts";
import { requireScheme, supportedSchemes } from "./scheme_check.ts";
import type { SchemeInfo, SignatureScheme } from "./schemes.ts";
import { fsReason, readSecretFile } from "./secret_file.ts";
import { KeyError, type KeyType, type NamedCurve, type PrivateKeyHandle, type SignInput } from "./types.ts";

/** A parsed file key reference. */
export interface FileKeyRef {
  /** Path of the key file. */
  readonly path: string;
  /** Path of the file holding the passphrase, for encrypted keys. */
  readonly passphraseFile: string | undefined;
}

/** Key files larger than this are not keys (a 16384-bit RSA PEM is ~13 KB). */
const MAX_KEY_FILE_BYTES = 1 << 20;

/**
 * Parses `PATH`, `file:PATH` or `file:///ABS/PATH`, each optionally followed by
 * `?passphrase-file=PATH`. A '?' in a plain path is kept as part of the name unless what
 * follows is a known option.
 */
export function parseFileRef(ref: string): FileKeyRef {
  const explicit = ref.startsWith("file:");
  let rest = explicit ? ref.slice(5) : ref;
  let passphraseFile: string | undefined;
  const q = rest.lastIndexOf("?");
  if (q >= 0) {
    const options = parseOptions(rest.slice(q + 1));
    if (options) {
      passphraseFile = options.get("passphrase-file");
      rest = rest.slice(0, q);
    } else if (explicit) {
      throw new KeyError("bad-reference", `key reference '${ref}': the only option is ?passphrase-file=PATH`);
    }
  }
  let path = rest;
  if (explicit && rest.startsWith("//")) {
    try {
      path = fileURLToPath(`file:${rest}`);
    } catch {
      throw new KeyError("bad-reference", `key reference '${ref}' is not a usable file: URI`);
    }
  }
  if (path === "") throw new KeyError("bad-reference", `key reference '${ref}' names no file`);
  if (passphraseFile === "")
    throw new KeyError("bad-reference", `key reference '${ref}': passphrase-file is empty`);
  return { path, passphraseFile };
}

function parseOptions(query: string): Map<string, string> | undefined {
  const options = new Map<string, string>();
  for (const item of query.split("&")) {
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    if (name !== "passphrase-file" || eq < 0 || options.has(name)) return undefined;
    options.set(name, item.slice(eq + 1));
  }
  return options;
}

/** The PEM label of the first private key block, or undefined for DER / no key. */
function pemKeyLabel(text: string): string | undefined {
  const m = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----/.exec(text);
  return m?.[1];
}

/** Loads a private KeyObject from file bytes, telling a wrong passphrase from a non-key. */
function parsePrivateKey(data: Buffer, passphrase: Buffer | undefined, path: string): KeyObject {
  const text = data.toString("latin1");
  const label = pemKeyLabel(text);
  if (text.includes("-----BEGIN") && label === undefined) {
    throw new KeyError("bad-reference", `'${path}' holds no private key PEM block`);
  }
  const encrypted =
    label === "ENCRYPTED PRIVATE KEY" || (label !== undefined && /Proc-Type:\s*4,ENCRYPTED/.test(text));
  if (encrypted && passphrase === undefined) {
    throw new KeyError("bad-passphrase", `key file '${path}' is encrypted: add ?passphrase-file=PATH`);
  }
  const attempts: Parameters<typeof createPrivateKey>[0][] =
    label !== undefined
      ? [{ key: data, format: "pem", ...(passphrase ? { passphrase } : {}) }]
      : [
          { key: data, format: "der", type: "pkcs8", ...(passphrase ? { passphrase } : {}) },
          { key: data, format: "der", type: "pkcs1" },
          { key: data, format: "der", type: "sec1" },
        ];
  let lastError: unknown;
  for (const attempt of attempts) {
    try {
      return createPrivateKey(attempt);
    } catch (err) {
      lastError = err;
      const code = (err as { code?: string }).code;
      if (code === "ERR_MISSING_PASSPHRASE") {
        throw new KeyError("bad-passphrase", `key file '${path}' is encrypted: add ?passphrase-file=PATH`);
      }
      if (label === undefined && passphrase !== undefined && code === "ERR_OSSL_BAD_DECRYPT") break;
    }
  }
  if (encrypted || (label === undefined && passphrase !== undefined && isBadDecrypt(lastError))) {
    throw new KeyError("bad-passphrase", `wrong passphrase for key file '${path}'`, { cause: lastError });
  }
  throw new KeyError("bad-reference", `'${path}' is not a private key (PEM or DER)`, { cause: lastError });
}

function isBadDecrypt(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === "ERR_OSSL_BAD_DECRYPT";
}

/** Opens a key file reference (see parseFileRef). */
export async function openFileKey(ref: string): Promise<PrivateKeyHandle> {
  const { path, passphraseFile } = parseFileRef(ref);
  let data: Buffer;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw Object.assign(new Error("directory"), { code: "EISDIR" });
    if (info.size > MAX_KEY_FILE_BYTES) {
      throw new KeyError("bad-reference", `'${path}' is too large to be a key file`);
    }
    data = await readFile(path);
  } catch (err) {
    if (err instanceof KeyError) throw err;
    throw new KeyError("not-found", `cannot read key file '${path}': ${fsReason(err)}`, { cause: err });
  }
  const passphrase = passphraseFile
    ? await readSecretFile(passphraseFile, "passphrase file", "bad-passphrase")
    : undefined;
  try {
    return new FileKeyHandle(parsePrivateKey(data, passphrase, path), path);
  } finally {
    data.fill(0);
    passphrase?.fill(0);
  }
}

/**
 * Generates a key pair into a new file: PKCS#8 PEM, mode 0600, encrypted with
 * AES-256-CBC (PBES2) when a passphrase file is given. Never overwrites a file.
 */
export async function generateFileKey(ref: string, type: KeyGenType): Promise<PrivateKeyHandle> {
  const { path, passphraseFile } = parseFileRef(ref);
  await refuseExisting(path);
  const passphrase = passphraseFile
    ? await readSecretFile(passphraseFile, "passphrase file", "bad-passphrase")
    : undefined;
  try {
    const privateKey = await generatePrivateKey(type);
    const pem = privateKey.export({
      type: "pkcs8",
      format: "pem",
      ...(passphrase ? { cipher: "aes-256-cbc", passphrase } : {}),
    });
    await writeNewFile(path, pem);
    return new FileKeyHandle(privateKey, path);
  } finally {
    passphrase?.fill(0);
  }
}

async function refuseExisting(path: string): Promise<void> {
  try {
    await stat(path);
  } catch {
    return;
  }
  throw new KeyError("exists", `key file '${path}' already exists; not overwriting it`);
}

async function writeNewFile(path: string, contents: string | Buffer): Promise<void> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    // "wx": fail if the file appeared meanwhile; 0600 so only the owner can read the key.
    file = await open(path, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new KeyError("exists", `key file '${path}' already exists; not overwriting it`);
    }
    throw new KeyError("not-found", `cannot create key file '${path}': ${fsReason(err)}`, { cause: err });
  }
  try {
    await file.chmod(0o600);
    await file.writeFile(contents);
  } finally {
    await file.close();
  }
}

function generatePrivateKey(type: KeyGenType): Promise<KeyObject> {
  const params = KEY_GEN_TYPES[type];
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _pub: KeyObject, priv: KeyObject) =>
      err ? reject(new KeyError("backend", `key generation failed: ${err.message}`)) : resolve(priv);
    if (params.type === "rsa") {
      generateKeyPair("rsa", { modulusLength: params.bits, publicExponent: 0x10001 }, done);
    } else {
      const curve = findCurve(params.curve ?? "");
      generateKeyPair("ec", { namedCurve: curve?.opensslName ?? "" }, done);
    }
  });
}

/** Options for node:crypto sign calls that give each scheme's padding. */
function signOptions(key: KeyObject, info: SchemeInfo) {
  if (info.padding === "pss") {
    return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: info.hashLength };
  }
  if (info.padding === "pkcs1") return { key, padding: constants.RSA_PKCS1_PADDING };
  return { key, dsaEncoding: "der" as const };
}

/** A key whose private half is a KeyObject in this process. */
class FileKeyHandle implements PrivateKeyHandle {
  readonly type: KeyType;
  readonly bits: number;
  readonly curve: NamedCurve | undefined;
  readonly publicKey: KeyObject;
  readonly spki: Buffer;
  readonly schemes: readonly SignatureScheme[];
  readonly description: string;
  /** RSA only: node:crypto has no raw-digest ECDSA, so EC file keys leave this undefined. */
  readonly signDigest?: (scheme: SignatureScheme, digest: Uint8Array) => Promise<Buffer>;
  #key: KeyObject | undefined;

  constructor(key: KeyObject, path: string) {
    this.description = `key file '${path}'`;
    const shape = keyShape(key, this.description);
    this.#key = key;
    this.type = shape.type;
    this.bits = shape.bits;
    this.curve = shape.curve;
    this.publicKey = createPublicKey(key);
    this.spki = spkiDer(this.publicKey);
    this.schemes = supportedSchemes(shape.type, shape.curve);
    if (shape.type === "rsa") this.signDigest = (scheme, digest) => this.#signRsaDigest(scheme, digest);
  }

  #privateKey(): KeyObject {
    if (!this.#key) throw new KeyError("backend", `${this.description} is closed`);
    return this.#key;
  }

  async sign(scheme: SignatureScheme, message: SignInput): Promise<Buffer> {
    const info = requireScheme(this.schemes, scheme, this.description);
    const options = signOptions(this.#privateKey(), info);
    if (isBytes(message)) {
      // The callback form runs in libuv's thread pool, off the event loop.
      return new Promise((resolve, reject) =>
        cryptoSign(info.hash, message, options, (err, sig) =>
          err ? reject(signError(this, err)) : resolve(sig),
        ),
      );
    }
    const signer = createSign(info.hash);
    for await (const chunk of message) signer.update(chunk);
    try {
      return signer.sign(options);
    } catch (err) {
      throw signError(this, err);
    }
  }

  async #signRsaDigest(scheme: SignatureScheme, digest: Uint8Array): Promise<Buffer> {
    const info = requireScheme(this.schemes, scheme, this.description);
    checkDigestLength(info, digest);
    const key = this.#privateKey();
    try {
      if (info.padding === "pss") {
        const em = emsaPssEncode(info.hash, digest, this.bits);
        return privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, em);
      }
      return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, digestInfo(info.hash, digest));
    } catch (err) {
      throw signError(this, err);
    }
  }

  async decrypt(ciphertext: Uint8Array): Promise<Buffer> {
    const key = this.#privateKey();
    if (this.type !== "rsa") throw new KeyError("unsupported", `${this.description} is not an RSA key`);
    if (ciphertext.length !== Math.ceil(this.bits / 8))
      throw new KeyError("decrypt", "RSA decryption failed");
    let em: Buffer;
    try {
      // Raw RSA, then our own constant-time unpadding (Node 20 refuses PKCS#1 v1.5 here).
      em = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, ciphertext);
    } catch {
      throw new KeyError("decrypt", "RSA decryption failed");
    }
    try {
      return unpadPkcs1Type2(em);
    } finally {
      em.fill(0);
    }
  }
  async decryptImplicit(ciphertext: Uint8Array, length: number, fallback: Buffer): Promise<Buffer> {
    const key = this.#privateKey();
    if (this.type !== "rsa") throw new KeyError("unsupported", `${this.description} is not an RSA key`);
    // Sizes are public: a ciphertext of the wrong length is no oracle.
    if (ciphertext.length !== Math.ceil(this.bits / 8)) return Buffer.from(fallback);
    let em: Buffer;
    try {
      em = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, ciphertext);
    } catch {
      return Buffer.from(fallback); // ciphertext >= modulus: also visible to anyone
    }
    try {
      return unpadPkcs1Type2Implicit(em, length, fallback);
    } finally {
      em.fill(0);
    }
  }

  async close(): Promise<void> {
    this.#key = undefined;
  }
}

function signError(handle: FileKeyHandle, err: unknown): KeyError {
  if (err instanceof KeyError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new KeyError("backend", `${handle.description}: signing failed: ${reason}`, { cause: err });
}
