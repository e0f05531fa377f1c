/**
 * PKCS#11 modules: each library is loaded and C_Initialize'd once per process (with
 * CKF_OS_LOCKING_OK, since pkcs11js runs async calls on libuv's worker threads), tokens
 * are found by the URI's attributes, and the module is finalised at exit when idle.
 */
import { existsSync, realpathSync } from "node:fs";
import pkcs11js from "pkcs11js";
import type { Pkcs11Uri } from "./pkcs11_uri.ts";
import { KeyError } from "./types.ts";

/** A slot or session handle as pkcs11js represents it (a CK_ULONG in a Buffer). */
export type Pkcs11Handle = Buffer;

/** A loaded, initialised module. */
export class Pkcs11Module {
  /** The library path as given. */
  readonly path: string;
  /** The pkcs11js binding, for the calls that module users make directly. */
  readonly lib: pkcs11js.PKCS11;
  #inflight = 0;

  constructor(path: string, lib: pkcs11js.PKCS11) {
    this.path = path;
    this.lib = lib;
  }

  /**
   * Runs an asynchronous module call and counts it while it runs: finalising the module
   * under a running worker thread crashes the process, so the exit hook checks this.
   */
  async track<T>(call: Promise<T>): Promise<T> {
    this.#inflight++;
    try {
      return await call;
    } finally {
      this.#inflight--;
    }
  }

  /** True when no asynchronous call is running. */
  get idle(): boolean {
    return this.#inflight === 0;
  }
}

const modules = new Map<string, Pkcs11Module>();
let exitHookInstalled = false;

/** The CKR_* name of a PKCS#11 error from pkcs11js, or undefined for other errors. */
export function ckrName(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : "";
  return /^(CKR_[A-Z0-9_]+)/.exec(message)?.[1];
}

/** Loads and initialises a module, once per process per library file. */
export function loadModule(path: string): Pkcs11Module {
  if (!existsSync(path)) {
    throw new KeyError(
      "not-found",
      `PKCS#11 module '${path}' not found (set module-path or HSMKIT_PKCS11_MODULE)`,
    );
  }
  // The same library reached through a symlink is the same module: initialise it once.
  const key = realpathSync(path);
  const known = modules.get(key);
  if (known) return known;
  const lib = new pkcs11js.PKCS11();
  try {
    lib.load(path);
  } catch (err) {
    throw new KeyError("backend", `cannot load PKCS#11 module '${path}': ${firstLine(err)}`, { cause: err });
  }
  try {
    lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckrName(err) !== "CKR_CRYPTOKI_ALREADY_INITIALIZED") {
      lib.close();
      throw new KeyError("backend", `PKCS#11 module '${path}' failed to initialise: ${firstLine(err)}`, {
        cause: err,
      });
    }
  }
  const module = new Pkcs11Module(path, lib);
  modules.set(key, module);
  installExitHook();
  return module;
}

/** Library paths of the modules loaded in this process (SoftHSM test set-up checks this). */
export function loadedModulePaths(): string[] {
  return [...modules.values()].map((m) => m.path);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Nothing here keeps the event loop alive; the hook only lets modules flush and release
  // devices. A module with a call still running is left alone: C_Finalize would pull the
  // library out from under that worker thread. Prepended, so modules are finalised before
  // other exit listeners remove files they may still be writing (e.g. a test token store).
  process.prependOnceListener("exit", () => {
    for (const module of modules.values()) {
      if (!module.idle) continue;
      try {
        module.lib.C_Finalize();
      } catch {
        // Exiting anyway; a module that cannot finalise has nothing left to lose.
      }
    }
    modules.clear();
  });
}

/** One line of an error's message. */
export function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0] ?? text;
}

/** A fixed-width, blank-padded PKCS#11 text field without its padding. */
export function trimField(text: string): string {
  return text.replace(/[\s\0]+$/, "");
}

/** A CK_ULONG attribute or handle value as a number. */
export function readUlong(buf: Buffer): number {
  if (buf.length === 8) return Number(buf.readBigUInt64LE());
  if (buf.length === 4) return buf.readUInt32LE();
  if (buf.length === 0) return 0;
  return buf.readUIntLE(0, Math.min(buf.length, 6));
}

/** A token that matched a URI. */
export interface FoundToken {
  readonly slot: Pkcs11Handle;
  /** The token label, trimmed; used in messages. */
  readonly label: string;
  /** True when the token wants a user login before private objects are usable. */
  readonly loginRequired: boolean;
}

/** How a URI's token attributes read in a message. */
export function describeTokenQuery(uri: Pkcs11Uri): string {
  if (uri.token !== undefined) return `token '${uri.token}'`;
  if (uri.serial !== undefined) return `token with serial '${uri.serial}'`;
  if (uri.slotId !== undefined) return `token in slot ${uri.slotId}`;
  return "token";
}

/**
 * Finds the one initialised token matching the URI's module, slot and token attributes.
 * None is KeyError("not-found") naming what was asked for; several is "bad-reference".
 */
export function findToken(module: Pkcs11Module, uri: Pkcs11Uri): FoundToken {
  const { lib } = module;
  const info = lib.C_GetInfo();
  const version = uri.libraryVersion;
  if (
    (uri.libraryManufacturer !== undefined && trimField(info.manufacturerID) !== uri.libraryManufacturer) ||
    (uri.libraryDescription !== undefined && trimField(info.libraryDescription) !== uri.libraryDescription) ||
    (version !== undefined &&
      (info.libraryVersion.major !== version.major || info.libraryVersion.minor !== version.minor))
  ) {
    throw new KeyError(
      "not-found",
      `PKCS#11 module '${module.path}' does not match the URI's library attributes`,
    );
  }
  const matches: FoundToken[] = [];
  for (const slot of lib.C_GetSlotList(true)) {
    const token = lib.C_GetTokenInfo(slot);
    if ((token.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) continue;
    const label = trimField(token.label);
    if (uri.token !== undefined && label !== uri.token) continue;
    if (uri.manufacturer !== undefined && trimField(token.manufacturerID) !== uri.manufacturer) continue;
    if (uri.model !== undefined && trimField(token.model) !== uri.model) continue;
    if (uri.serial !== undefined && trimField(token.serialNumber) !== uri.serial) continue;
    if (uri.slotId !== undefined && readUlong(slot) !== uri.slotId) continue;
    if (uri.slotDescription !== undefined || uri.slotManufacturer !== undefined) {
      const slotInfo = lib.C_GetSlotInfo(slot);
      if (uri.slotDescription !== undefined && trimField(slotInfo.slotDescription) !== uri.slotDescription)
        continue;
      if (uri.slotManufacturer !== undefined && trimField(slotInfo.manufacturerID) !== uri.slotManufacturer)
        continue;
    }
    matches.push({ slot, label, loginRequired: (token.flags & pkcs11js.CKF_LOGIN_REQUIRED) !== 0 });
  }
  if (matches.length === 0) {
    throw new KeyError("not-found", `no ${describeTokenQuery(uri)} found in PKCS#11 module '${module.path}'`);
  }
  if (matches.length > 1) {
    const labels = matches.map((m) => `'${m.label}'`).join(", ");
    throw new KeyError(
      "bad-reference",
      `the PKCS#11 URI matches ${matches.length} tokens (${labels}); add token=LABEL`,
    );
  }
  return matches[0] as FoundToken;
}
