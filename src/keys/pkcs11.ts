/**
 * Keys on PKCS#11 tokens. Messages are always hashed here in software and the token is
 * asked only for raw mechanisms (CKM_RSA_PKCS over a DigestInfo, CKM_RSA_PKCS_PSS over a
 * digest, CKM_ECDSA over a digest), because that is what every token offers, down to the
 * smallest USB key. Signing and decryption run on worker threads, or inline for software tokens
 * (pkcs11_calls.ts).
 */
import type { KeyObject } from "node:crypto";
import pkcs11js from "pkcs11js";
import { digestMessage } from "./digest.ts";
import { TokenCalls } from "./pkcs11_calls.ts";
import { ckrName, findToken, firstLine, loadModule, type Pkcs11Handle, readUlong } from "./pkcs11_module.ts";
import { findObjects, findPublicKey, readAttribute } from "./pkcs11_objects.ts";
import { acquireTokenContext, type TokenContext } from "./pkcs11_session.ts";
import { type Pkcs11Uri, parsePkcs11Uri, resolveModulePath } from "./pkcs11_uri.ts";
import { ecdsaRawToDer, findCurve, keyShape, spkiDer } from "./public_key.ts";
import { checkDigestLength, digestInfo, unpadPkcs1Type2Implicit } from "./rsa_padding.ts";
import { requireScheme, supportedSchemes } from "./scheme_check.ts";
import type { HashName, SchemeInfo, SignatureScheme } from "./schemes.ts";
import { readSecretFile } from "./secret_file.ts";
import { KeyError, type KeyType, type NamedCurve, type PrivateKeyHandle, type SignInput } from "./types.ts";

/** Token answers to CKM_RSA_PKCS decryption that mean "bad ciphertext" (SoftHSM2 says GENERAL_ERROR). */
const BAD_CIPHERTEXT = new Set([
  "CKR_ENCRYPTED_DATA_INVALID",
  "CKR_ENCRYPTED_DATA_LEN_RANGE",
  "CKR_DATA_INVALID",
  "CKR_DATA_LEN_RANGE",
  "CKR_GENERAL_ERROR",
]);

/** C_DecryptInit answers that mean "no raw RSA with this key", as opposed to a failing token. */
const RAW_RSA_REFUSED = new Set([
  "CKR_MECHANISM_INVALID",
  "CKR_MECHANISM_PARAM_INVALID",
  "CKR_KEY_FUNCTION_NOT_PERMITTED",
  "CKR_KEY_TYPE_INCONSISTENT",
]);

const { CKA_CLASS, CKA_LABEL, CKA_ID, CKA_KEY_TYPE, CKA_ALWAYS_AUTHENTICATE, CKO_PRIVATE_KEY } = pkcs11js;

/** PKCS#11 hash mechanism and MGF1 constant per scheme hash, for CK_RSA_PKCS_PSS_PARAMS. */
const PSS_PARAMS: Readonly<Record<Exclude<HashName, "md5-sha1">, readonly [number, number]>> = {
  sha1: [pkcs11js.CKM_SHA_1, pkcs11js.CKG_MGF1_SHA1],
  sha256: [pkcs11js.CKM_SHA256, pkcs11js.CKG_MGF1_SHA256],
  sha384: [pkcs11js.CKM_SHA384, pkcs11js.CKG_MGF1_SHA384],
  sha512: [pkcs11js.CKM_SHA512, pkcs11js.CKG_MGF1_SHA512],
};

/** What a key reference asks for, with its secrets loaded. */
interface OpenedUri {
  readonly uri: Pkcs11Uri;
  readonly context: TokenContext;
}

/** Parses the URI, loads the module, finds the token and logs in. */
export async function openToken(ref: string): Promise<OpenedUri> {
  const uri = parsePkcs11Uri(ref);
  if (uri.type !== undefined && uri.type !== "private") {
    throw new KeyError("bad-reference", `a private key URI needs type=private, not type=${uri.type}`);
  }
  // The environment is the fallback for references kept in files, which never hold a PIN.
  let pin = uri.pinValue ?? (process.env.HSMKIT_PIN || undefined);
  if (uri.pinSource !== undefined) {
    const secret = await readSecretFile(uri.pinSource, "PIN file", "bad-pin");
    pin = secret.toString("utf8");
    secret.fill(0);
  }
  const module = loadModule(resolveModulePath(uri));
  const token = findToken(module, uri);
  return { uri, context: acquireTokenContext(module, token, pin) };
}

/** How a URI's object reads in a message: its label, else its id in hex. */
function objectName(uri: Pkcs11Uri): string {
  if (uri.object !== undefined) return `'${uri.object}'`;
  return `with id ${uri.id?.toString("hex") ?? "?"}`;
}

/** Opens a `pkcs11:` key reference (RFC 7512). */
export async function openPkcs11Key(ref: string): Promise<PrivateKeyHandle> {
  const { uri, context } = await openToken(ref);
  try {
    if (uri.object === undefined && uri.id === undefined) {
      throw new KeyError("bad-reference", "the PKCS#11 URI names no key: add object=LABEL or id=%XX...");
    }
    const template: pkcs11js.Template = [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }];
    if (uri.object !== undefined) template.push({ type: CKA_LABEL, value: uri.object });
    if (uri.id !== undefined) template.push({ type: CKA_ID, value: uri.id });
    const found = await context.withSession((session) => findObjects(context, session, template, 2));
    if (found.length === 0) {
      throw new KeyError("not-found", `no private key ${objectName(uri)} on token '${context.label}'`);
    }
    if (found.length > 1) {
      throw new KeyError(
        "bad-reference",
        `several private keys ${objectName(uri)} on token '${context.label}'; add id=... to the URI`,
      );
    }
    return await handleFor(context, found[0] as Pkcs11Handle, uri);
  } catch (err) {
    context.release();
    throw err;
  }
}

/** Builds the handle for a private key object: reads its type and finds its public half. */
export async function handleFor(
  context: TokenContext,
  key: Pkcs11Handle,
  uri: Pkcs11Uri,
): Promise<PrivateKeyHandle> {
  const name = uri.object ?? uri.id?.toString("hex") ?? "key";
  const description = `key '${name}' on token '${context.label}'`;
  const facts = await context.withSession((session) => {
    const read = (type: number, object = key) => readAttribute(context, session, object, type);
    const keyType = read(CKA_KEY_TYPE);
    const alwaysAuthenticate = read(CKA_ALWAYS_AUTHENTICATE)?.[0] === 1;
    const publicKey = findPublicKey(context, session, key, keyType ? readUlong(keyType) : -1, description);
    return { publicKey, alwaysAuthenticate };
  });
  const calls = new TokenCalls(context.module, context.calls, uri.calls ?? "auto");
  return new Pkcs11KeyHandle(context, key, facts.publicKey, description, facts.alwaysAuthenticate, calls);
}

/** A private key object on a token. */
class Pkcs11KeyHandle implements PrivateKeyHandle {
  readonly type: KeyType;
  readonly bits: number;
  readonly curve: NamedCurve | undefined;
  readonly publicKey: KeyObject;
  readonly spki: Buffer;
  readonly schemes: readonly SignatureScheme[];
  readonly description: string;
  readonly #context: TokenContext;
  readonly #key: Pkcs11Handle;
  readonly #alwaysAuthenticate: boolean;
  readonly #calls: TokenCalls;
  /** Signature size: the modulus length for RSA, r||s for ECDSA. */
  readonly #outLength: number;
  #closed = false;
  /** False once the token refused raw RSA (CKM_RSA_X_509) for this key. */
  #rawRsa = true;
  /** The RSA modulus, big-endian, read from the public key when first needed. */
  #modulus: Buffer | undefined;

  constructor(
    context: TokenContext,
    key: Pkcs11Handle,
    publicKey: KeyObject,
    description: string,
    alwaysAuthenticate: boolean,
    calls: TokenCalls,
  ) {
    const shape = keyShape(publicKey, description);
    this.#context = context;
    this.#key = key;
    this.#alwaysAuthenticate = alwaysAuthenticate;
    this.#calls = calls;
    this.type = shape.type;
    this.bits = shape.bits;
    this.curve = shape.curve;
    this.publicKey = publicKey;
    this.spki = spkiDer(publicKey);
    this.schemes = supportedSchemes(shape.type, shape.curve);
    this.description = description;
    this.#outLength =
      shape.type === "rsa" ? Math.ceil(shape.bits / 8) : 2 * (findCurve(shape.curve ?? "")?.bytes ?? 0);
  }

  async sign(scheme: SignatureScheme, message: SignInput): Promise<Buffer> {
    const info = requireScheme(this.schemes, scheme, this.description);
    return this.#signDigest(info, await digestMessage(info.hash, message));
  }

  async signDigest(scheme: SignatureScheme, digest: Uint8Array): Promise<Buffer> {
    const info = requireScheme(this.schemes, scheme, this.description);
    checkDigestLength(info, digest);
    return this.#signDigest(info, digest);
  }

  async #signDigest(info: SchemeInfo, digest: Uint8Array): Promise<Buffer> {
    let mechanism: pkcs11js.Mechanism;
    let input: Buffer;
    if (info.padding === "pkcs1") {
      mechanism = { mechanism: pkcs11js.CKM_RSA_PKCS };
      input = digestInfo(info.hash, digest);
    } else if (info.padding === "pss") {
      const [hashAlg, mgf] = PSS_PARAMS[info.hash as Exclude<HashName, "md5-sha1">];
      const parameter: pkcs11js.RsaPSS = {
        type: pkcs11js.CK_PARAMS_RSA_PSS,
        hashAlg,
        mgf,
        saltLen: info.hashLength,
      };
      mechanism = { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter };
      input = Buffer.from(digest);
    } else {
      mechanism = { mechanism: pkcs11js.CKM_ECDSA };
      // ECDSA uses the leftmost order-length bytes of a longer digest (SEC 1 §4.1.3); all
      // our curves but P-521 have byte-aligned orders, and no hash exceeds P-521's order.
      input = Buffer.from(digest.subarray(0, this.#outLength / 2));
    }
    const raw = await this.#run("signing", async (session) => {
      const { lib } = this.#context.module;
      lib.C_SignInit(session, mechanism, this.#key);
      this.#contextLogin(session);
      const out = Buffer.alloc(this.#outLength);
      try {
        return Buffer.from(await this.#calls.sign(session, input, out));
      } finally {
        // A worker thread reads `input` by pointer; it is referenced until here.
        input.fill(0);
      }
    });
    return info.padding === "ecdsa" ? ecdsaRawToDer(raw) : raw;
  }

  async decrypt(ciphertext: Uint8Array): Promise<Buffer> {
    if (this.type !== "rsa") throw new KeyError("unsupported", `${this.description} is not an RSA key`);
    if (ciphertext.length !== this.#outLength) throw new KeyError("decrypt", "RSA decryption failed");
    return this.#run("decryption", async (session) => {
      const { lib } = this.#context.module;
      lib.C_DecryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, this.#key);
      this.#contextLogin(session);
      const input = Buffer.from(ciphertext);
      const out = Buffer.alloc(this.#outLength);
      try {
        const plain = await this.#calls.decrypt(session, input, out);
        return Buffer.from(plain);
      } catch (err) {
        // Deliberately vague: which check failed is exactly what a padding oracle wants.
        // Anything else is the token failing, and goes on as it is (a dead session is dropped).
        if (BAD_CIPHERTEXT.has(ckrName(err) ?? "")) throw new KeyError("decrypt", "RSA decryption failed");
        throw err;
      } finally {
        // A worker thread reads `input` by pointer; both stay referenced until here.
        out.fill(0);
        input.fill(0);
      }
    });
  }

  /**
   * Decryption for TLS RSA key exchange with implicit rejection (RFC 5246 §7.4.7.1): with
   * CKM_RSA_X_509 the token only exponentiates and the padding is judged here with masks, so
   * bad padding follows the path good padding does. Tokens that refuse raw RSA (many HSMs
   * do) decrypt with CKM_RSA_PKCS, whose padding check is then the token's own branch.
   * A failing token throws, as for any other operation.
   */
  async decryptImplicit(ciphertext: Uint8Array, length: number, fallback: Buffer): Promise<Buffer> {
    if (this.type !== "rsa") throw new KeyError("unsupported", `${this.description} is not an RSA key`);
    // Sizes and the modulus are public: a ciphertext of the wrong length or not below n is no oracle.
    if (ciphertext.length !== this.#outLength || !this.#belowModulus(ciphertext))
      return Buffer.from(fallback);
    const em = this.#rawRsa ? await this.#rawDecrypt(ciphertext) : "refused";
    if (em !== "refused") {
      try {
        return unpadPkcs1Type2Implicit(em, length, fallback);
      } finally {
        em.fill(0);
      }
    }
    const plain = await this.decrypt(ciphertext).catch((err: unknown) => {
      if (err instanceof KeyError && err.kind === "decrypt") return undefined;
      throw err;
    });
    if (plain?.length === length) return plain;
    plain?.fill(0);
    return Buffer.from(fallback);
  }

  #belowModulus(ciphertext: Uint8Array): boolean {
    this.#modulus ??= Buffer.from(this.publicKey.export({ format: "jwk" }).n as string, "base64url");
    return Buffer.compare(Buffer.from(ciphertext), this.#modulus) < 0;
  }

  /**
   * m = c^d mod n for c below n, left-padded to the modulus length; "refused" when the token
   * has no raw RSA for this key, decided at C_DecryptInit, before the ciphertext is used.
   */
  #rawDecrypt(ciphertext: Uint8Array): Promise<Buffer | "refused"> {
    return this.#run("decryption", async (session) => {
      const { lib } = this.#context.module;
      try {
        lib.C_DecryptInit(session, { mechanism: pkcs11js.CKM_RSA_X_509 }, this.#key);
      } catch (err) {
        if (!RAW_RSA_REFUSED.has(ckrName(err) ?? "")) throw err;
        this.#rawRsa = false;
        return "refused";
      }
      this.#contextLogin(session);
      const input = Buffer.from(ciphertext);
      const out = Buffer.alloc(this.#outLength);
      try {
        // Raw RSA checks nothing secret, so an error here is the token's, not the ciphertext's.
        const raw = await this.#calls.decrypt(session, input, out);
        const em = Buffer.alloc(this.#outLength);
        raw.copy(em, this.#outLength - raw.length);
        return em;
      } finally {
        out.fill(0);
        input.fill(0);
      }
    });
  }

  /** Keys with CKA_ALWAYS_AUTHENTICATE want the PIN again after every *Init. */
  #contextLogin(session: Pkcs11Handle): void {
    if (!this.#alwaysAuthenticate) return;
    this.#context.module.lib.C_Login(session, pkcs11js.CKU_CONTEXT_SPECIFIC, this.#context.pin);
  }

  async #run<T>(what: string, fn: (session: Pkcs11Handle) => Promise<T>): Promise<T> {
    if (this.#closed) throw new KeyError("backend", `${this.description} is closed`);
    try {
      return await this.#context.withSession(fn);
    } catch (err) {
      if (err instanceof KeyError) throw err;
      throw new KeyError("backend", `${this.description}: ${what} failed: ${firstLine(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#context.release();
  }
}
