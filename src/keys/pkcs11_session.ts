/**
 * Logged-in tokens and their session pools. PKCS#11 allows one operation at a time per
 * session, and login state is per token for the whole process, so every handle on the
 * same token shares one TokenContext: one login, up to MAX_SESSIONS sessions, and a FIFO
 * queue for callers when all sessions are busy.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import pkcs11js from "pkcs11js";
import { isHardwareSlot, type TokenCallRecord, tokenCallRecord } from "./pkcs11_calls.ts";
import {
  ckrName,
  type FoundToken,
  firstLine,
  type Pkcs11Handle,
  type Pkcs11Module,
} from "./pkcs11_module.ts";
import { KeyError } from "./types.ts";

/** Sessions per token: enough to keep a couple of cores and a token busy, few enough for USB keys. */
export const MAX_SESSIONS = 8;

// Errors after which a session is gone and must not go back to the pool.
const DEAD_SESSION = new Set([
  "CKR_SESSION_HANDLE_INVALID",
  "CKR_SESSION_CLOSED",
  "CKR_DEVICE_REMOVED",
  "CKR_TOKEN_NOT_PRESENT",
  "CKR_DEVICE_ERROR",
]);

interface Waiter {
  resolve(session: Pkcs11Handle): void;
  reject(err: unknown): void;
}

/** A logged-in token with its session pool, shared by all handles on that token. */
export class TokenContext {
  readonly module: Pkcs11Module;
  readonly slot: Pkcs11Handle;
  /** The token label, for messages. */
  readonly label: string;
  /** Whether this token's calls run inline (a software token, fast so far), for all its handles. */
  readonly calls: TokenCallRecord;
  readonly #pin: string | undefined;
  readonly #pinHash: Buffer;
  readonly #key: string;
  #idle: Pkcs11Handle[] = [];
  #open = 0;
  #max = MAX_SESSIONS;
  #waiters: Waiter[] = [];
  #refs = 0;
  #closed = false;
  #exclusive: Promise<unknown> = Promise.resolve();

  constructor(module: Pkcs11Module, token: FoundToken, pin: string | undefined, key: string) {
    this.module = module;
    this.slot = token.slot;
    this.label = token.label;
    this.calls = tokenCallRecord(isHardwareSlot(module, token.slot));
    this.#pin = pin;
    this.#pinHash = pinDigest(pin);
    this.#key = key;
    // The first session logs in; it stays open (idle in the pool) so the login persists.
    const first = this.#openSession();
    this.#idle.push(first);
  }

  /** True when `pin` is the PIN this context logged in with (compared in constant time). */
  samePin(pin: string | undefined): boolean {
    return timingSafeEqual(this.#pinHash, pinDigest(pin));
  }

  /** The PIN, for CKU_CONTEXT_SPECIFIC logins on keys that demand one per operation. */
  get pin(): string | undefined {
    return this.#pin;
  }

  #openSession(): Pkcs11Handle {
    const { lib } = this.module;
    const session = lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    this.#open++;
    if (this.#open === 1 && this.#pin !== undefined) {
      // Login is token-wide: once any session is logged in, every session is.
      try {
        lib.C_Login(session, pkcs11js.CKU_USER, this.#pin);
      } catch (err) {
        if (ckrName(err) !== "CKR_USER_ALREADY_LOGGED_IN") {
          this.#open--;
          lib.C_CloseSession(session);
          throw loginError(err, this.label);
        }
      }
    }
    return session;
  }

  /** Registers one more handle on this context. */
  retain(): void {
    this.#refs++;
  }

  /** Drops one handle; the last one closes every session, which logs the token out. */
  release(): void {
    this.#refs--;
    if (this.#refs > 0 || this.#closed) return;
    this.#closed = true;
    contexts.delete(this.#key);
    for (const w of this.#waiters.splice(0))
      w.reject(new KeyError("backend", `token '${this.label}' was closed`));
    for (const session of this.#idle.splice(0)) this.#closeSession(session);
  }

  #closeSession(session: Pkcs11Handle): void {
    this.#open--;
    try {
      this.module.lib.C_CloseSession(session);
    } catch {
      // Already gone (token removed); nothing to release.
    }
  }

  /**
   * Runs `fn` with a session of its own: nobody else uses that session until `fn` settles.
   * Sessions the token reports dead are closed instead of being reused.
   */
  async withSession<T>(fn: (session: Pkcs11Handle) => Promise<T> | T): Promise<T> {
    const session = await this.#acquire();
    let healthy = true;
    try {
      return await fn(session);
    } catch (err) {
      if (DEAD_SESSION.has(ckrName(err) ?? "")) healthy = false;
      throw err;
    } finally {
      this.#release(session, healthy);
    }
  }

  /** Runs `fn` with no other exclusive task on this token at the same time (e.g. key generation). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#exclusive.then(fn, fn);
    this.#exclusive = run.catch(() => undefined);
    return run;
  }

  #acquire(): Promise<Pkcs11Handle> {
    if (this.#closed) return Promise.reject(new KeyError("backend", `token '${this.label}' was closed`));
    const idle = this.#idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.#open < this.#max) {
      try {
        return Promise.resolve(this.#openSession());
      } catch (err) {
        // A token with fewer sessions than we hoped for: make do with what is open.
        if (ckrName(err) === "CKR_SESSION_COUNT" && this.#open > 0) {
          this.#max = this.#open;
        } else {
          return Promise.reject(
            err instanceof KeyError
              ? err
              : new KeyError("backend", `token '${this.label}': cannot open a session: ${firstLine(err)}`),
          );
        }
      }
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #release(session: Pkcs11Handle, healthy: boolean): void {
    if (!healthy || this.#closed) {
      this.#closeSession(session);
      const waiter = this.#waiters.shift();
      if (waiter) this.#acquire().then(waiter.resolve, waiter.reject);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(session);
    else this.#idle.push(session);
  }
}

function pinDigest(pin: string | undefined): Buffer {
  return createHash("sha256")
    .update(pin === undefined ? "\u0000none" : `=${pin}`)
    .digest();
}

/** The KeyError for a failed C_Login. */
export function loginError(err: unknown, label: string): KeyError {
  switch (ckrName(err)) {
    case "CKR_PIN_INCORRECT":
    case "CKR_PIN_INVALID":
    case "CKR_PIN_LEN_RANGE":
      return new KeyError("bad-pin", `PIN rejected by token '${label}'`);
    case "CKR_PIN_LOCKED":
      return new KeyError("bad-pin", `the PIN of token '${label}' is locked`);
    case "CKR_PIN_EXPIRED":
      return new KeyError("bad-pin", `the PIN of token '${label}' has expired`);
    case "CKR_USER_PIN_NOT_INITIALIZED":
      return new KeyError("bad-pin", `token '${label}' has no user PIN set`);
    default:
      return new KeyError("backend", `login to token '${label}' failed: ${firstLine(err)}`, { cause: err });
  }
}

const contexts = new Map<string, TokenContext>();

/**
 * The shared context for a token, logging in on first use. A second caller with a
 * different PIN is refused as the token would refuse it: a logged-in token does not
 * check the PIN again, so without this a wrong PIN would pass unnoticed.
 */
export function acquireTokenContext(
  module: Pkcs11Module,
  token: FoundToken,
  pin: string | undefined,
): TokenContext {
  if (token.loginRequired && pin === undefined) {
    throw new KeyError(
      "bad-pin",
      `token '${token.label}' needs a PIN: add pin-source=FILE (or pin-value=...) to the key reference, or set HSMKIT_PIN`,
    );
  }
  const key = `${module.path}\u0000${token.slot.toString("hex")}`;
  let context = contexts.get(key);
  if (context) {
    if (!context.samePin(pin)) throw new KeyError("bad-pin", `PIN rejected by token '${token.label}'`);
  } else {
    try {
      context = new TokenContext(module, token, pin, key);
    } catch (err) {
      if (err instanceof KeyError) throw err;
      throw new KeyError("backend", `token '${token.label}': cannot open a session: ${firstLine(err)}`, {
        cause: err,
      });
    }
    contexts.set(key, context);
  }
  context.retain();
  return context;
}
