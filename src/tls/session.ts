/**
 * TLS 1.2 session resumption on the server: stateless session tickets (RFC 5077) sealed
 * with AES-256-GCM under ticket keys that rotate, and a bounded session-ID cache for
 * clients that do not do tickets. A ticket or cache entry holds the master secret, so
 * both expire, evicted entries are zeroed, and retired ticket keys are zeroed when no
 * ticket they sealed can still be valid.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { Reader, Writer } from "./codec.ts";
import { ProtocolVersion } from "./constants.ts";
import { publicRandom } from "./public_random.ts";

/** What a resumed connection inherits from the session that made it. */
export interface SessionState {
  version: ProtocolVersion;
  /** The cipher suite code point. */
  suiteId: number;
  /** The 48-byte TLS 1.2 master secret (or a 32/48-byte TLS 1.3 resumption secret). */
  masterSecret: Buffer;
  /** Whether the master secret is an extended one (RFC 7627). */
  extendedMasterSecret: boolean;
  /** When the full handshake happened (ms since the epoch); lifetime counts from here, renewals keep it. */
  createdAt: number;
  /** The client's chain (DER, leaf first), empty when it sent none. */
  peerCertificates: Buffer[];
  /** Whether that chain validated. */
  authorized: boolean;
}

/** Resumption settings. */
export interface SessionStoreOptions {
  /** Issue and accept session tickets (default true). */
  tickets?: boolean;
  /** Keep a session-ID cache for clients without tickets (default true). */
  cache?: boolean;
  /** How long a session may be resumed, in seconds (default 7200; also the ticket lifetime hint). */
  lifetimeSeconds?: number;
  /** How often a new ticket key takes over, in seconds (default 3600). */
  ticketKeyRotationSeconds?: number;
  /** Most sessions the cache holds (default 4096). */
  cacheSize?: number;
}

interface TicketKey {
  name: Buffer;
  key: Buffer;
  createdAt: number;
}

const KEY_NAME_LENGTH = 16;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const MAX_CHAIN_BYTES = 48 * 1024;

/** Ticket keys: one current key seals, recent keys still open, old keys are zeroed and dropped. */
class TicketKeyRing {
  private keys: TicketKey[] = [];

  constructor(
    private readonly rotateMs: number,
    private readonly lifetimeMs: number,
  ) {}

  /** The key new tickets are sealed with, rotating it when it is due. */
  current(now: number): TicketKey {
    this.expire(now);
    const head = this.keys[0];
    if (head && now - head.createdAt < this.rotateMs) return head;
    const fresh = { name: randomBytes(KEY_NAME_LENGTH), key: randomBytes(32), createdAt: now };
    this.keys.unshift(fresh);
    return fresh;
  }

  /** The key with this name, if it may still open tickets. */
  find(name: Buffer, now: number): TicketKey | undefined {
    this.expire(now);
    return this.keys.find((k) => k.name.equals(name));
  }

  private expire(now: number): void {
    // A key stops sealing after rotateMs; its last ticket lives lifetimeMs more.
    const keep = this.keys.filter((k) => now - k.createdAt < this.rotateMs + this.lifetimeMs);
    for (const k of this.keys) if (!keep.includes(k)) k.key.fill(0);
    this.keys = keep;
  }

  /** Zeroes every key. */
  clear(): void {
    for (const k of this.keys) k.key.fill(0);
    this.keys = [];
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** Serialises a session for a ticket. */
function encodeState(s: SessionState): Buffer {
  const chain = new Writer();
  for (const c of s.peerCertificates) chain.vec24(c);
  return new Writer()
    .u16(s.version)
    .u16(s.suiteId)
    .u8(s.extendedMasterSecret ? 1 : 0)
    .u8(s.authorized ? 1 : 0)
    .bytes(u32(Math.floor(s.createdAt / 1000)))
    .vec8(s.masterSecret)
    .vec24(chain.finish())
    .finish();
}

/** Parses a ticket's plaintext; undefined when it is not one of ours. */
function decodeState(plain: Buffer): SessionState | undefined {
  try {
    const r = new Reader(plain, "session ticket");
    const version = r.u16() as ProtocolVersion;
    const suiteId = r.u16();
    const extendedMasterSecret = r.u8() === 1;
    const authorized = r.u8() === 1;
    const createdAt = r.u32() * 1000;
    const masterSecret = Buffer.from(r.vec8());
    const chainBytes = r.vec24();
    r.end();
    // TLS 1.2 keeps its 48-byte master secret; TLS 1.3 its resumption PSK (the suite hash's length).
    const secretLengths = version === ProtocolVersion.TLS13 ? [32, 48] : [48];
    if (!secretLengths.includes(masterSecret.length) || chainBytes.length > MAX_CHAIN_BYTES) return undefined;
    const chain = new Reader(chainBytes, "session chain");
    const peerCertificates: Buffer[] = [];
    while (chain.remaining > 0) peerCertificates.push(Buffer.from(chain.vec24(1)));
    return { version, suiteId, masterSecret, extendedMasterSecret, createdAt, peerCertificates, authorized };
  } catch {
    return undefined;
  }
}

/** Server-side session memory: tickets, a session-ID cache, or both. */
export class SessionStore {
  /** Whether tickets are issued and accepted. */
  readonly tickets: boolean;
  /** Whether the session-ID cache is used. */
  readonly cache: boolean;
  /** Seconds a session may be resumed for (the NewSessionTicket lifetime hint). */
  readonly lifetimeSeconds: number;
  private readonly ring: TicketKeyRing;
  private readonly entries = new Map<string, SessionState>();
  private readonly cacheSize: number;

  constructor(
    options: SessionStoreOptions = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.tickets = options.tickets ?? true;
    this.cache = options.cache ?? true;
    this.lifetimeSeconds = options.lifetimeSeconds ?? 7200;
    this.cacheSize = options.cacheSize ?? 4096;
    if (!(this.lifetimeSeconds > 0) || !(this.cacheSize > 0))
      throw new RangeError("session lifetime and cache size must be positive");
    const rotate = (options.ticketKeyRotationSeconds ?? 3600) * 1000;
    if (!(rotate > 0)) throw new RangeError("ticket key rotation period must be positive");
    this.ring = new TicketKeyRing(rotate, this.lifetimeSeconds * 1000);
  }

  private fresh(s: SessionState): boolean {
    const age = this.clock() - s.createdAt;
    return age >= 0 && age < this.lifetimeSeconds * 1000;
  }

  /** Seals a session into a ticket: key name, IV, AES-256-GCM ciphertext and tag. */
  sealTicket(state: SessionState): Buffer {
    const k = this.ring.current(this.clock());
    const iv = publicRandom(IV_LENGTH);
    const c = createCipheriv("aes-256-gcm", k.key, iv);
    c.setAAD(k.name);
    const plain = encodeState(state);
    const sealed = Buffer.concat([k.name, iv, c.update(plain), c.final(), c.getAuthTag()]);
    plain.fill(0);
    return sealed;
  }

  /** Opens a ticket; undefined for anything forged, corrupted, sealed by a dropped key or expired. */
  openTicket(ticket: Buffer): SessionState | undefined {
    if (!this.tickets || ticket.length < KEY_NAME_LENGTH + IV_LENGTH + TAG_LENGTH + 1) return undefined;
    const name = ticket.subarray(0, KEY_NAME_LENGTH);
    const k = this.ring.find(name, this.clock());
    if (!k) return undefined;
    const iv = ticket.subarray(KEY_NAME_LENGTH, KEY_NAME_LENGTH + IV_LENGTH);
    const body = ticket.subarray(KEY_NAME_LENGTH + IV_LENGTH, ticket.length - TAG_LENGTH);
    let plain: Buffer;
    try {
      const d = createDecipheriv("aes-256-gcm", k.key, iv);
      d.setAAD(name);
      d.setAuthTag(ticket.subarray(ticket.length - TAG_LENGTH));
      plain = Buffer.concat([d.update(body), d.final()]);
    } catch {
      return undefined;
    }
    const state = decodeState(plain);
    plain.fill(0);
    return state && this.fresh(state) ? state : undefined;
  }

  /** Caches a session under its ID, evicting (and zeroing) the oldest when full. */
  remember(id: Buffer, state: SessionState): void {
    if (!this.cache || id.length === 0) return;
    const key = id.toString("hex");
    this.entries.delete(key);
    this.entries.set(key, { ...state, masterSecret: Buffer.from(state.masterSecret) });
    while (this.entries.size > this.cacheSize) {
      const oldest = this.entries.keys().next().value as string;
      this.drop(oldest);
    }
  }

  /** The cached session with this ID, if it is still fresh. */
  recall(id: Buffer): SessionState | undefined {
    if (!this.cache || id.length === 0) return undefined;
    const key = id.toString("hex");
    const s = this.entries.get(key);
    if (!s) return undefined;
    if (this.fresh(s)) return { ...s, masterSecret: Buffer.from(s.masterSecret) };
    this.drop(key);
    return undefined;
  }

  /** Removes a session (e.g. after a fatal alert on a connection that used it). */
  forget(id: Buffer): void {
    if (id.length > 0) this.drop(id.toString("hex"));
  }

  /** Number of cached sessions. */
  get size(): number {
    return this.entries.size;
  }

  /** Zeroes and drops every ticket key and cached session. */
  clear(): void {
    this.ring.clear();
    for (const key of [...this.entries.keys()]) this.drop(key);
  }

  private drop(key: string): void {
    this.entries.get(key)?.masterSecret.fill(0);
    this.entries.delete(key);
  }
}

/** Encodes a TLS 1.2 NewSessionTicket body (RFC 5077 §3.3): lifetime hint and ticket. */
export function encodeNewSessionTicket12(lifetimeSeconds: number, ticket: Buffer): Buffer {
  return new Writer().bytes(u32(lifetimeSeconds)).vec16(ticket).finish();
}

/** Decodes a TLS 1.2 NewSessionTicket body. */
export function decodeNewSessionTicket12(body: Buffer): { lifetimeSeconds: number; ticket: Buffer } {
  const r = new Reader(body, "NewSessionTicket");
  const lifetimeSeconds = r.u32();
  const ticket = r.vec16();
  r.end();
  return { lifetimeSeconds, ticket };
}
