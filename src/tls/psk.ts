/**
 * TLS 1.3 resumption with pre-shared keys from tickets (RFC 8446 §4.2.11, §4.6.1): the
 * client's ticket cache, the pre_shared_key extension with its binder, and the binder
 * check a server makes. Binders are HMACs over the ClientHello up to the binders list,
 * keyed from the PSK, so a ticket is only usable by whoever holds its secret.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { ExtensionType, HandshakeType } from "./constants.ts";
import { expandLabel, hashLength, KeySchedule, type Tls13Hash } from "./key_schedule.ts";
import { type Extension, frameHandshake } from "./messages.ts";
import { encodeBinders, encodeIdentities } from "./messages13.ts";
import type { Transcript } from "./transcript.ts";

/** A ticket a client holds for resuming with one server. */
export interface ClientTicket {
  suiteId: number;
  hash: Tls13Hash;
  /** The PSK derived from the resumption secret and the ticket nonce. */
  psk: Buffer;
  /** The opaque ticket to send as the PSK identity. */
  ticket: Buffer;
  ageAdd: number;
  /** When it arrived (ms since the epoch). */
  receivedAt: number;
  /** Lifetime in seconds, as the server set it. */
  lifetime: number;
  /** The server chain validated in the full handshake. */
  peerCertificates: Buffer[];
}

/**
 * Tickets by server and client identity ("host:port/servername#identity"). Each ticket is used once (RFC 8446
 * §C.4: reuse lets a passive observer link connections); expired ones are dropped.
 */
export class ClientSessionCache {
  private readonly tickets = new Map<string, ClientTicket[]>();

  constructor(
    /** Most servers remembered. */
    private readonly maxServers = 256,
    /** Most tickets kept per server. */
    private readonly perServer = 4,
  ) {}

  /** Stores a ticket received from `server`. */
  put(server: string, t: ClientTicket): void {
    const list = this.tickets.get(server) ?? [];
    list.push(t);
    while (list.length > this.perServer) list.shift()?.psk.fill(0);
    this.tickets.delete(server);
    this.tickets.set(server, list);
    while (this.tickets.size > this.maxServers) {
      const oldest = this.tickets.keys().next().value as string;
      for (const x of this.tickets.get(oldest) ?? []) x.psk.fill(0);
      this.tickets.delete(oldest);
    }
  }

  /** Removes and returns the newest usable ticket for `server`. */
  take(server: string, now = Date.now()): ClientTicket | undefined {
    const list = this.tickets.get(server);
    while (list && list.length > 0) {
      const t = list.pop()!;
      if (now - t.receivedAt < t.lifetime * 1000) return t;
      t.psk.fill(0);
    }
    return undefined;
  }
}

/**
 * The binder for a PSK: an HMAC over Hash(transcript before this ClientHello + the ClientHello
 * up to its binders list), RFC 8446 §4.2.11.2.
 */
export function pskBinder(hash: Tls13Hash, psk: Buffer, prefix: Transcript, truncatedHello: Buffer): Buffer {
  const binderKey = new KeySchedule(hash, psk).binderKey();
  const finishedKey = expandLabel(hash, binderKey, "finished", Buffer.alloc(0), hashLength(hash));
  return createHmac(hash, finishedKey).update(prefix.hashWith(truncatedHello, hash)).digest();
}

/** The pre_shared_key extension for one ticket, with a zero binder to be filled in by {@link bindClientHello}. */
export function offeredPskExtension(t: ClientTicket, now = Date.now()): Extension {
  const age = (now - t.receivedAt + t.ageAdd) >>> 0;
  const identities = encodeIdentities([{ identity: t.ticket, obfuscatedTicketAge: age }]);
  return {
    type: ExtensionType.pre_shared_key,
    data: Buffer.concat([identities, encodeBinders([Buffer.alloc(hashLength(t.hash))])]),
  };
}

/** Bytes the binders list takes at the end of a ClientHello offering one PSK of this hash. */
export function bindersLength(hash: Tls13Hash): number {
  return 2 + 1 + hashLength(hash);
}

/**
 * Writes the real binder into a ClientHello body whose last extension is the offered PSK.
 * `prefix` is the transcript before this ClientHello (empty, or message_hash + HRR).
 */
export function bindClientHello(body: Buffer, t: ClientTicket, prefix: Transcript): Buffer {
  const framed = frameHandshake(HandshakeType.client_hello, body);
  const cut = framed.length - bindersLength(t.hash);
  const binder = pskBinder(t.hash, t.psk, prefix, framed.subarray(0, cut));
  const out = Buffer.from(body);
  binder.copy(out, out.length - binder.length);
  return out;
}

/** Checks a client's binder (constant time); `raw` is the whole ClientHello message. */
export function binderMatches(
  hash: Tls13Hash,
  psk: Buffer,
  prefix: Transcript,
  raw: Buffer,
  binders: readonly Buffer[],
  index: number,
): boolean {
  const listLength = 2 + binders.reduce((n, b) => n + 1 + b.length, 0);
  const expected = pskBinder(hash, psk, prefix, raw.subarray(0, raw.length - listLength));
  const got = binders[index]!;
  return got.length === expected.length && timingSafeEqual(got, expected);
}
