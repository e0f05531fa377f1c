/**
 * SoftHSM2 for tests: a private token directory per test process, fresh tokens with unique
 * labels, and key pairs generated through hsmkit's own generateKey.
 *
 * SoftHSM2 reads SOFTHSM2_CONF once, at C_Initialize, and a loaded module never notices
 * tokens other processes create afterwards. So softHsm() must run before anything loads a
 * PKCS#11 module, and createToken() initialises tokens through this process's own (shared)
 * module instance: the token is then visible here at once, and to child processes (which
 * inherit SOFTHSM2_CONF) through the token directory.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkcs11js from "pkcs11js";
import { generateKey, type KeyGenType } from "../../src/keys/index.ts";
import { loadedModulePaths, loadModule, trimField } from "../../src/keys/pkcs11_module.ts";
import { resolveModulePath } from "../../src/keys/pkcs11_uri.ts";

/** The process's SoftHSM2 set-up. */
export interface SoftHsm {
  /** Temporary directory holding the configuration and the token store. */
  dir: string;
  /** Path of the softhsm2.conf in use (also in process.env.SOFTHSM2_CONF). */
  conf: string;
  /** Path of the SoftHSM2 PKCS#11 library. */
  module: string;
  /** An environment for child processes: process.env plus SOFTHSM2_CONF. */
  env: NodeJS.ProcessEnv;
}

let instance: SoftHsm | undefined;

/** Once per process: temp token dir + softhsm2.conf, sets process.env.SOFTHSM2_CONF (children inherit). */
export function softHsm(): SoftHsm {
  if (instance) return instance;
  if (loadedModulePaths().length > 0) {
    throw new Error("softHsm() must be called before any PKCS#11 module is loaded in this process");
  }
  const dir = mkdtempSync(join(tmpdir(), "hsmkit-softhsm-"));
  const tokens = join(dir, "tokens");
  mkdirSync(tokens, { mode: 0o700 });
  const conf = join(dir, "softhsm2.conf");
  writeFileSync(
    conf,
    [
      `directories.tokendir = ${tokens}`,
      "objectstore.backend = file",
      "log.level = ERROR",
      "slots.removable = false",
      "slots.mechanisms = ALL",
      "library.reset_on_fork = false",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  process.env.SOFTHSM2_CONF = conf;
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  // The SoftHSM2 library itself, not whatever HSMKIT_PKCS11_MODULE may point at.
  const module = resolveModulePath({}, {});
  instance = { dir, conf, module, env: { ...process.env, SOFTHSM2_CONF: conf } };
  return instance;
}

/** A token initialised for a test. */
export interface TestToken {
  label: string;
  pin: string;
  soPin: string;
  module: string;
  /**
   * `pkcs11:token=L;object=O;type=private?module-path=M&pin-value=P`; `extra` (e.g.
   * "x-note=1") is appended to the query with '&'.
   */
  uri(object: string, extra?: string): string;
  /** A file holding the user PIN, mode 0600. */
  pinFile: string;
  /** Like `uri` with `pin-source=pinFile` instead of pin-value: what a CA directory may keep. */
  uriWithPinSource(object: string): string;
}

let tokenCount = 0;

/** Percent-encodes everything outside RFC 3986 unreserved characters (and '/' where allowed). */
function encode(text: string, keepSlash: boolean): string {
  return [...Buffer.from(text, "utf8")]
    .map((b) => {
      const ch = String.fromCharCode(b);
      if (/[A-Za-z0-9\-._~]/.test(ch) || (keepSlash && ch === "/")) return ch;
      return `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
    })
    .join("");
}

/** Initialises a fresh token with a unique label (softhsm2-util --init-token --free, done in-process). */
export async function createToken(label?: string): Promise<TestToken> {
  const hsm = softHsm();
  tokenCount++;
  const name = label ?? `t${process.pid}-${tokenCount}-${randomBytes(3).toString("hex")}`;
  if (Buffer.byteLength(name) > 32) throw new Error(`token label '${name}' is longer than 32 bytes`);
  const pin = randomBytes(6).toString("hex");
  const soPin = randomBytes(6).toString("hex");
  const { lib } = loadModule(hsm.module);
  const free = lib
    .C_GetSlotList(true)
    .find((slot) => (lib.C_GetTokenInfo(slot).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
  if (!free) throw new Error("SoftHSM2 offers no free slot");
  // pkcs11js pads the label with NULs; PKCS#11 wants blanks, so pad it here.
  lib.C_InitToken(free, soPin, name.padEnd(32, " "));
  // SoftHSM2 moves an initialised token to a slot numbered after its serial: look it up again.
  const slot = lib.C_GetSlotList(true).find((s) => trimField(lib.C_GetTokenInfo(s).label) === name);
  if (!slot) throw new Error(`token '${name}' vanished after initialisation`);
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    lib.C_Login(session, pkcs11js.CKU_SO, soPin);
    lib.C_InitPIN(session, pin);
    lib.C_Logout(session);
  } finally {
    lib.C_CloseSession(session);
  }
  const module = hsm.module;
  const pinFile = join(hsm.dir, `${name}.pin`);
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  const base = (object: string): string =>
    `pkcs11:token=${encode(name, false)};object=${encode(object, false)};type=private` +
    `?module-path=${encode(module, true)}`;
  return {
    label: name,
    pin,
    soPin,
    module,
    pinFile,
    uri(object: string, extra?: string): string {
      const ref = `${base(object)}&pin-value=${encode(pin, false)}`;
      return extra ? `${ref}&${extra}` : ref;
    },
    uriWithPinSource: (object: string): string => `${base(object)}&pin-source=${encode(pinFile, true)}`,
  };
}

/**
 * Generates a key pair in the token through hsmkit's own generateKey and returns its
 * reference: with pin-value, or with `pin: "source"` the pin-source form a CA directory keeps.
 */
export async function tokenKey(
  token: TestToken,
  object: string,
  type: KeyGenType,
  pin: "value" | "source" = "value",
): Promise<string> {
  const handle = await generateKey(token.uri(object), type);
  await handle.close();
  return pin === "value" ? token.uri(object) : token.uriWithPinSource(object);
}
