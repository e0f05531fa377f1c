/**
 * Where a token's signing and decryption calls run.
 *
 * A hardware token (USB key, smart card, HSM) takes milliseconds to seconds per operation, so
 * its calls go to libuv's worker threads (pkcs11js's C_SignAsync) and the event loop carries on.
 * A software token (SoftHSM2: its slot does not set CKF_HW_SLOT) computes in this process in
 * about the time Node's own TLS takes to sign with a key file, which Node does on the main thread;
 * there, handing every call to a worker thread costs more than it saves: `hsmkit serve` with an
 * RSA-2048 key in SoftHSM2 made 20% more handshakes per second, at 8% less CPU per handshake,
 * calling the token inline (bench/serve.ts). So software tokens are called inline, as long as
 * their calls stay fast: the first inline call slower than {@link INLINE_CALL_LIMIT_MS} (a
 * module that only looks like a software token, a remote HSM behind a local library) moves that
 * token, every handle on it included, to worker threads for the rest of the process.
 *
 * A key reference can set the choice with the vendor query attribute `x-hsmkit-calls=worker` (or
 * `inline`, or the default `auto`).
 */
import { performance } from "node:perf_hooks";
import type { Pkcs11Handle, Pkcs11Module } from "./pkcs11_module.ts";

/** How token operations run: chosen per token (`auto`), always on worker threads, or always inline. */
export type TokenCallMode = "auto" | "worker" | "inline";

/** Every {@link TokenCallMode}, for parsing. */
export const TOKEN_CALL_MODES: readonly TokenCallMode[] = ["auto", "worker", "inline"];

/** CK_SLOT_INFO flag of a hardware slot (PKCS#11 v2.40 §3.2); pkcs11js does not export it. */
const CKF_HW_SLOT = 0x4;

/**
 * An inline call slower than this sends the token's later calls to worker threads. SoftHSM2 signs
 * with RSA-2048 in about 1 ms and RSA-4096 in about 6 ms here; a USB token takes 50 ms and more.
 */
export const INLINE_CALL_LIMIT_MS = 20;

/**
 * What one token's calls have shown, shared by every handle on the token: `inline` starts true
 * for a software slot and turns false, for good, after an inline call over the limit.
 */
export interface TokenCallRecord {
  inline: boolean;
}

/** A new record for a token whose slot is (not) a hardware one ({@link isHardwareSlot}). */
export function tokenCallRecord(hardwareSlot: boolean): TokenCallRecord {
  return { inline: !hardwareSlot };
}

/** Runs one key's token calls inline or on worker threads, as its mode and its token's record decide. */
export class TokenCalls {
  readonly #module: Pkcs11Module;
  readonly #record: TokenCallRecord;
  readonly #mode: TokenCallMode;

  /** `record`: the token's shared {@link TokenCallRecord}; `mode` applies to this key only. */
  constructor(module: Pkcs11Module, record: TokenCallRecord, mode: TokenCallMode) {
    this.#module = module;
    this.#record = record;
    this.#mode = mode;
  }

  /** True while this key's operations run on the calling thread. */
  get inline(): boolean {
    return this.#mode === "inline" || (this.#mode === "auto" && this.#record.inline);
  }

  /** C_Sign over `input` into `out` (the operation was initialised on `session`). */
  sign(session: Pkcs11Handle, input: Buffer, out: Buffer): Promise<Buffer> {
    const { lib } = this.#module;
    return this.run(
      () => lib.C_Sign(session, input, out),
      () => lib.C_SignAsync(session, input, out),
    );
  }

  /** C_Decrypt of `input` into `out` (the operation was initialised on `session`). */
  decrypt(session: Pkcs11Handle, input: Buffer, out: Buffer): Promise<Buffer> {
    const { lib } = this.#module;
    return this.run(
      () => lib.C_Decrypt(session, input, out),
      () => lib.C_DecryptAsync(session, input, out),
    );
  }

  /**
   * Runs one token call: `inline` on this thread while the key is called inline, else `worker`
   * (a pkcs11js *Async call), counted as in flight for the module's exit hook. The *Init calls
   * before it are synchronous in pkcs11js whatever the mode.
   */
  async run(inline: () => Buffer, worker: () => Promise<Buffer>): Promise<Buffer> {
    if (!this.inline) return this.#module.track(worker());
    const started = performance.now();
    try {
      return inline();
    } finally {
      if (this.#mode === "auto" && performance.now() - started > INLINE_CALL_LIMIT_MS)
        this.#record.inline = false;
    }
  }
}

/** True unless the module says the slot is a software one; a module that cannot say counts as hardware. */
export function isHardwareSlot(module: Pkcs11Module, slot: Pkcs11Handle): boolean {
  try {
    return (module.lib.C_GetSlotInfo(slot).flags & CKF_HW_SLOT) !== 0;
  } catch {
    return true;
  }
}
