/**
 * The TLS 1.3 key schedule (RFC 8446 §7.1): HKDF-Extract, HKDF-Expand-Label, Derive-Secret,
 * traffic keys and Finished keys. HKDF is built from node:crypto HMAC as RFC 5869 defines it.
 */
import { createHash, createHmac } from "node:crypto";
import { AlertDescription, fail } from "./alert.ts";
import { Writer } from "./codec.ts";

/** The hash of a TLS 1.3 suite. */
export type Tls13Hash = "sha256" | "sha384";

/** Digest length of a TLS 1.3 hash. */
export function hashLength(hash: Tls13Hash): number {
  return hash === "sha256" ? 32 : 48;
}

/** HKDF-Extract(salt, ikm). An empty salt means hashLength zero bytes. */
export function hkdfExtract(hash: Tls13Hash, salt: Buffer, ikm: Buffer): Buffer {
  return createHmac(hash, salt.length ? salt : Buffer.alloc(hashLength(hash)))
    .update(ikm)
    .digest();
}

/** HKDF-Expand's one-octet block counters, made once. */
const COUNTERS = Array.from({ length: 256 }, (_, i) => Buffer.of(i));

/**
 * HKDF-Expand(prk, info, length): T(i) = HMAC(prk, T(i-1) || info || i). Every output the
 * TLS 1.3 schedule asks for is one block, so this is mostly a single HMAC.
 */
export function hkdfExpand(hash: Tls13Hash, prk: Buffer, info: Buffer, length: number): Buffer {
  // The block counter is one octet (RFC 5869 §2.3).
  if (length > 255 * hashLength(hash)) fail(AlertDescription.internal_error, "HKDF output too long");
  const blocks: Buffer[] = [];
  let prev: Buffer | undefined;
  for (let i = 1, total = 0; total < length; i++) {
    const hmac = createHmac(hash, prk);
    if (prev) hmac.update(prev);
    prev = hmac.update(info).update(COUNTERS[i]!).digest();
    blocks.push(prev);
    total += prev.length;
  }
  const out = blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks);
  return out.length === length ? out : out.subarray(0, length);
}

/** HkdfLabel up to its context (length, "tls13 " + label), per label and length: a handful, made once. */
const labelHeads = new Map<string, Buffer>();

function labelHead(label: string, length: number): Buffer {
  const key = `${length} ${label}`;
  const known = labelHeads.get(key);
  if (known) return known;
  const head = new Writer()
    .u16(length)
    .vec8(Buffer.from(`tls13 ${label}`, "ascii"))
    .finish();
  // The schedule's labels are a fixed few; a caller inventing labels must not grow this.
  if (labelHeads.size < 64) labelHeads.set(key, head);
  return head;
}

/** HKDF-Expand-Label(secret, label, context, length) with the "tls13 " prefix. */
export function expandLabel(
  hash: Tls13Hash,
  secret: Buffer,
  label: string,
  context: Buffer,
  length: number,
): Buffer {
  const head = labelHead(label, length);
  if (context.length > 255) fail(AlertDescription.internal_error, "HKDF label context too long");
  const info = Buffer.allocUnsafe(head.length + 1 + context.length);
  head.copy(info, 0);
  info[head.length] = context.length;
  context.copy(info, head.length + 1);
  return hkdfExpand(hash, secret, info, length);
}

/** Derive-Secret(secret, label, transcript hash). */
export function deriveSecret(hash: Tls13Hash, secret: Buffer, label: string, transcriptHash: Buffer): Buffer {
  return expandLabel(hash, secret, label, transcriptHash, hashLength(hash));
}

const emptyHashes = new Map<Tls13Hash, Buffer>();

/** Hash of the concatenated handshake messages. */
export function hashMessages(hash: Tls13Hash, messages: readonly Buffer[]): Buffer {
  if (messages.length === 0) return Buffer.from(emptyHash(hash));
  const h = createHash(hash);
  for (const m of messages) h.update(m);
  return h.digest();
}

/** Record key and IV for a traffic secret. */
export function trafficKeys(hash: Tls13Hash, secret: Buffer, keyLength: number): { key: Buffer; iv: Buffer } {
  return {
    key: expandLabel(hash, secret, "key", Buffer.alloc(0), keyLength),
    iv: expandLabel(hash, secret, "iv", Buffer.alloc(0), 12),
  };
}

/** The next traffic secret after a KeyUpdate. */
export function nextTrafficSecret(hash: Tls13Hash, secret: Buffer): Buffer {
  return expandLabel(hash, secret, "traffic upd", Buffer.alloc(0), hashLength(hash));
}

/** Finished verify_data = HMAC(finished_key, transcript hash). */
export function finishedMac(hash: Tls13Hash, baseSecret: Buffer, transcriptHash: Buffer): Buffer {
  const key = expandLabel(hash, baseSecret, "finished", Buffer.alloc(0), hashLength(hash));
  return createHmac(hash, key).update(transcriptHash).digest();
}

/** The secrets of one handshake, computed step by step as the transcript grows. */
export class KeySchedule {
  private readonly early: Buffer;
  private handshakeSecret: Buffer | undefined;
  private masterSecret: Buffer | undefined;

  constructor(
    readonly hash: Tls13Hash,
    psk: Buffer | undefined,
  ) {
    this.early = hkdfExtract(hash, Buffer.alloc(0), psk ?? Buffer.alloc(hashLength(hash)));
  }

  /** binder_key for a resumption PSK. */
  binderKey(): Buffer {
    return deriveSecret(this.hash, this.early, "res binder", hashMessages(this.hash, []));
  }

  /** Mixes in the (EC)DHE shared secret; returns [client, server] handshake traffic secrets. */
  handshake(shared: Buffer, helloHash: Buffer): [Buffer, Buffer] {
    const derived = deriveSecret(this.hash, this.early, "derived", hashMessages(this.hash, []));
    this.handshakeSecret = hkdfExtract(this.hash, derived, shared);
    return [
      deriveSecret(this.hash, this.handshakeSecret, "c hs traffic", helloHash),
      deriveSecret(this.hash, this.handshakeSecret, "s hs traffic", helloHash),
    ];
  }

  /** After the server Finished: [client, server] application traffic secrets. */
  application(serverFinishedHash: Buffer): [Buffer, Buffer] {
    if (!this.handshakeSecret) fail(AlertDescription.internal_error, "key schedule used out of order");
    const derived = deriveSecret(this.hash, this.handshakeSecret, "derived", hashMessages(this.hash, []));
    this.masterSecret = hkdfExtract(this.hash, derived, Buffer.alloc(hashLength(this.hash)));
    this.handshakeSecret.fill(0);
    return [
      deriveSecret(this.hash, this.masterSecret, "c ap traffic", serverFinishedHash),
      deriveSecret(this.hash, this.masterSecret, "s ap traffic", serverFinishedHash),
    ];
  }

  /** After the client Finished: the resumption master secret. */
  resumption(clientFinishedHash: Buffer): Buffer {
    if (!this.masterSecret) fail(AlertDescription.internal_error, "key schedule used out of order");
    const out = deriveSecret(this.hash, this.masterSecret, "res master", clientFinishedHash);
    this.masterSecret.fill(0);
    return out;
  }
}

/** The PSK for a ticket: HKDF-Expand-Label(resumption_master_secret, "resumption", nonce, Hash.length). */
export function ticketPsk(hash: Tls13Hash, resumptionSecret: Buffer, nonce: Buffer): Buffer {
  return expandLabel(hash, resumptionSecret, "resumption", nonce, hashLength(hash));
}

/** Transcript-Hash("") for the "derived" secrets and the binder key, computed once per hash. */
function emptyHash(hash: Tls13Hash): Buffer {
  const known = emptyHashes.get(hash);
  if (known) return known;
  const made = createHash(hash).digest();
  emptyHashes.set(hash, made);
  return made;
}
