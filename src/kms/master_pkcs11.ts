/**
 * A master key that lives in a PKCS#11 token: an AES-256 secret key object, sensitive and
 * non-extractable, created on first use. Wrapping is CKM_AES_GCM inside the token, so the
 * master key never enters this process. The module, login and session pool are the ones
 * keys/ shares per process (a module must be initialised once, and login is token-wide).
 */
import { readFileSync } from "node:fs";
import pkcs11js from "pkcs11js";
import { findToken, firstLine, loadModule, type Pkcs11Handle } from "../keys/pkcs11_module.ts";
import { acquireTokenContext, type TokenContext } from "../keys/pkcs11_session.ts";
import { parsePkcs11Uri, redactPkcs11Uri, resolveModulePath } from "../keys/pkcs11_uri.ts";
import { warnIfSecretFileExposed } from "../keys/secret_file.ts";
import { type MasterKey, MasterKeyError, packBlob, unpackBlob } from "./master_key.ts";

/** Opens (creating if absent) the token master key named by `pkcs11:token=T;object=O?pin-...`. */
export async function openPkcs11MasterKey(ref: string): Promise<Pkcs11MasterKey> {
  let context: TokenContext | undefined;
  try {
    const uri = parsePkcs11Uri(ref);
    if (!uri.token || !uri.object)
      throw new MasterKeyError((name) => `${name("pkcs11")} needs token=... and object=...`);
    if (uri.pinSource) warnIfSecretFileExposed(uri.pinSource, "PIN file");
    const pin =
      uri.pinValue ?? (uri.pinSource ? readFileSync(uri.pinSource, "utf8").split(/\r?\n/)[0] : undefined);
    if (pin === undefined)
      throw new MasterKeyError((name) => `${name("pkcs11")} needs pin-value=... or pin-source=...`);
    const module = loadModule(resolveModulePath(uri));
    context = acquireTokenContext(module, findToken(module, uri), pin);
    const label = uri.object;
    const key = await context.withSession((session) => findOrCreateKey(module.lib, session, label));
    return new Pkcs11MasterKey(context, key, `PKCS#11 ${redactPkcs11Uri(ref)}`);
  } catch (err) {
    context?.release();
    if (err instanceof MasterKeyError) throw err;
    throw new MasterKeyError(`PKCS#11 master key: ${firstLine(err)}`, { cause: err });
  }
}

function findOrCreateKey(lib: pkcs11js.PKCS11, session: Pkcs11Handle, label: string): Pkcs11Handle {
  lib.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  const found = lib.C_FindObjects(session, 2);
  lib.C_FindObjectsFinal(session);
  if (found.length > 1) throw new MasterKeyError(`more than one secret key labelled "${label}" in the token`);
  if (found[0]) return found[0];
  return lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
  ]);
}

function gcm(iv: Buffer, aad: string): pkcs11js.Mechanism {
  const parameter: pkcs11js.AesGCM = {
    type: pkcs11js.CK_PARAMS_AES_GCM,
    iv,
    aad: Buffer.from(aad, "utf8"),
    ivBits: 96,
    tagBits: 128,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

/** The token-held master key. */
export class Pkcs11MasterKey implements MasterKey {
  readonly kind = "pkcs11" as const;
  readonly description: string;
  private closed = false;

  constructor(
    private readonly context: TokenContext,
    private readonly key: Pkcs11Handle,
    description: string,
  ) {
    this.description = description;
  }

  async wrap(plain: Buffer, aad: string): Promise<Buffer> {
    const { lib } = this.context.module;
    return this.context.withSession((session) => {
      const iv = Buffer.from(lib.C_GenerateRandom(session, Buffer.alloc(12)));
      lib.C_EncryptInit(session, gcm(iv, aad), this.key);
      const sealed = lib.C_Encrypt(session, plain, Buffer.alloc(plain.length + 16));
      return packBlob(iv, Buffer.from(sealed));
    });
  }

  async unwrap(blob: Buffer, aad: string): Promise<Buffer> {
    const { iv, sealed } = unpackBlob(blob);
    const { lib } = this.context.module;
    try {
      return await this.context.withSession((session) => {
        lib.C_DecryptInit(session, gcm(Buffer.from(iv), aad), this.key);
        return Buffer.from(lib.C_Decrypt(session, sealed, Buffer.alloc(sealed.length)));
      });
    } catch (err) {
      throw new MasterKeyError(`wrapped secret "${aad}" does not open under the token master key`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.context.release();
  }
}
