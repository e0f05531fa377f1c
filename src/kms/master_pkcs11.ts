/**
 * A master key that lives in a PKCS#11 token: an AES-256 secret key object, sensitive and
 * non-extractable, created on first use. Wrapping is CKM_AES_GCM inside the token, so the
 * master key never enters this process.
 */
import { readFileSync } from "node:fs";
import pkcs11js from "pkcs11js";
import { parsePkcs11Uri, redactPkcs11Uri, resolveModulePath } from "../keys/pkcs11_uri.ts";
import { type MasterKey, MasterKeyError, packBlob, unpackBlob } from "./master_key.ts";

const CKF_OS_LOCKING_OK = 0x2;

/** Opens (creating if absent) the token master key named by a `pkcs11:token=T;object=O?pin-...` URI. */
export function openPkcs11MasterKey(ref: string): Pkcs11MasterKey {
  let uri: ReturnType<typeof parsePkcs11Uri>;
  try {
    uri = parsePkcs11Uri(ref);
  } catch (err) {
    throw new MasterKeyError(`bad --master-key: ${(err as Error).message}`);
  }
  if (!uri.token || !uri.object) throw new MasterKeyError("--master-key needs token=... and object=...");
  const pin = uri.pinValue ?? (uri.pinSource ? readFileSync(uri.pinSource, "utf8").trim() : undefined);
  if (pin === undefined) throw new MasterKeyError("--master-key needs pin-value=... or pin-source=...");
  const module = resolveModulePath(uri);
  const lib = new pkcs11js.PKCS11();
  try {
    lib.load(module);
    lib.C_Initialize({ flags: CKF_OS_LOCKING_OK });
  } catch (err) {
    throw new MasterKeyError(`cannot load PKCS#11 module ${module}: ${(err as Error).message}`);
  }
  try {
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === uri.token);
    if (!slot) throw new MasterKeyError(`no PKCS#11 token labelled "${uri.token}"`);
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      lib.C_Login(session, pkcs11js.CKU_USER, pin);
    } catch (err) {
      const code = (err as Error).message;
      if (!code.includes("CKR_USER_ALREADY_LOGGED_IN")) {
        throw new MasterKeyError(`the token refused the PIN (${code.split(":")[0]})`);
      }
    }
    const key = findOrCreateKey(lib, session, uri.object);
    return new Pkcs11MasterKey(lib, session, key, `PKCS#11 ${redactPkcs11Uri(ref)}`);
  } catch (err) {
    lib.C_Finalize();
    throw err instanceof MasterKeyError
      ? err
      : new MasterKeyError(`PKCS#11 master key: ${(err as Error).message}`);
  }
}

function findOrCreateKey(lib: pkcs11js.PKCS11, session: Buffer, label: string): Buffer {
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

/** The token-held master key. */
export class Pkcs11MasterKey implements MasterKey {
  readonly kind = "pkcs11" as const;
  readonly description: string;
  private closed = false;

  constructor(
    private readonly lib: pkcs11js.PKCS11,
    private readonly session: Buffer,
    private readonly key: Buffer,
    description: string,
  ) {
    this.description = description;
  }

  private mechanism(iv: Buffer, aad: string): pkcs11js.Mechanism {
    const params: pkcs11js.AesGCM = {
      type: pkcs11js.CK_PARAMS_AES_GCM,
      iv,
      aad: Buffer.from(aad, "utf8"),
      ivBits: 96,
      tagBits: 128,
    };
    return { mechanism: pkcs11js.CKM_AES_GCM, parameter: params };
  }

  async wrap(plain: Buffer, aad: string): Promise<Buffer> {
    const iv = this.lib.C_GenerateRandom(this.session, Buffer.alloc(12));
    this.lib.C_EncryptInit(this.session, this.mechanism(iv, aad), this.key);
    const sealed = this.lib.C_Encrypt(this.session, plain, Buffer.alloc(plain.length + 16));
    return packBlob(iv, Buffer.from(sealed));
  }

  async unwrap(blob: Buffer, aad: string): Promise<Buffer> {
    const { iv, sealed } = unpackBlob(blob);
    try {
      this.lib.C_DecryptInit(this.session, this.mechanism(Buffer.from(iv), aad), this.key);
      return Buffer.from(this.lib.C_Decrypt(this.session, sealed, Buffer.alloc(sealed.length)));
    } catch (err) {
      throw new MasterKeyError(`wrapped secret "${aad}" does not open under the token master key`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.lib.C_Logout(this.session);
      this.lib.C_CloseSession(this.session);
    } finally {
      this.lib.C_Finalize();
    }
  }
}
