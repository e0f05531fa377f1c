/**
 * Record protection: how a plaintext fragment becomes a TLSCiphertext and back.
 * CBC+HMAC (TLS 1.1/1.2 explicit IV, MAC-then-encrypt or encrypt-then-MAC, RFC 7366) and
 * AEAD (AES-GCM, ChaCha20-Poly1305; TLS 1.2 nonces per RFC 5288/7905, TLS 1.3 per RFC 8446 §5.3).
 * Every failure to open a record is the same bad_record_mac, with no early exit that would
 * tell a padding error from a MAC error.
 */
import {
  type CipherGCMTypes,
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  type KeyObject,
  timingSafeEqual,
} from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { ContentType, MAX_PLAINTEXT } from "./constants.ts";
import { ConstantWorkHmac } from "./mte_mac.ts";
import { fillPublicRandom } from "./public_random.ts";

/** Seals and opens records for one direction of one connection state. */
export interface RecordProtection {
  /** True for the initial, unprotected state. */
  readonly isNull: boolean;
  /** True for TLS 1.3 protection (outer type is always application_data). */
  readonly tls13: boolean;
  /** Protects one fragment; returns the whole record, header included, ready for the wire. */
  seal(type: ContentType, version: number, plaintext: Buffer): Buffer;
  /**
   * The same record as {@link seal}, as the pieces that go on the wire one after another, header
   * first. The bulk path writes them as they are: joining them would allocate and copy every
   * record once more (a third of the CPU of sending, by --cpu-prof).
   */
  sealPieces(type: ContentType, version: number, plaintext: Buffer): Buffer[];
  /** Opens one record body; returns the plaintext and, for TLS 1.3, the inner content type. */
  open(type: ContentType, version: number, body: Buffer): { type: ContentType; plaintext: Buffer };
}

/** `seal` for every protection, made once from its `sealPieces`. */
abstract class PieceSealer {
  abstract sealPieces(type: ContentType, version: number, plaintext: Buffer): Buffer[];

  seal(type: ContentType, version: number, plaintext: Buffer): Buffer {
    const pieces = this.sealPieces(type, version, plaintext);
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  }
}

class NullProtection extends PieceSealer implements RecordProtection {
  readonly isNull = true;
  readonly tls13 = false;

  sealPieces(type: ContentType, version: number, plaintext: Buffer): Buffer[] {
    return [recordHeader(type, version, plaintext.length), plaintext];
  }

  open(type: ContentType, _version: number, body: Buffer): { type: ContentType; plaintext: Buffer } {
    return { type, plaintext: body };
  }
}

/** The state before ChangeCipherSpec: records travel in the clear. */
export const NULL_PROTECTION: RecordProtection = new NullProtection();

const badMac = () =>
  new TlsError(AlertDescription.bad_record_mac, "record authentication failed (bad_record_mac)");

/**
 * The 64-bit record sequence number, kept as two 32-bit halves: no BigInt and no Buffer per
 * record on the bulk path. The last value, 2^64 - 1, is never used (RFC 8446 §5.3).
 */
export class Sequence {
  private high: number;
  private low: number;

  /** Starts at `first` (0 for every real connection; tests start near the wrap-arounds). */
  constructor(first = 0n) {
    this.high = Number((first >> 32n) & 0xffffffffn);
    this.low = Number(first & 0xffffffffn);
  }

  /** Writes the current number big-endian at `offset` of `out` and advances it. */
  writeNext(out: Buffer, offset: number): void {
    if (this.high === 0xffffffff && this.low === 0xffffffff)
      throw new TlsError(AlertDescription.internal_error, "sequence number exhausted");
    out.writeUInt32BE(this.high, offset);
    out.writeUInt32BE(this.low, offset + 4);
    if (this.low === 0xffffffff) {
      this.low = 0;
      this.high++;
    } else this.low++;
  }

  /** Returns the current number as 8 new bytes and advances it. */
  next(): Buffer {
    const b = Buffer.allocUnsafe(8);
    this.writeNext(b, 0);
    return b;
  }
}

/**
 * A record's 5-byte header (RFC 5246 §6.2, RFC 8446 §5.1) for a body of `bodyLength` bytes, with
 * `room` more bytes after it for the start of the body to be filled in place (the explicit
 * nonce of TLS 1.2 GCM, or the whole CBC body).
 */
function recordHeader(type: number, version: number, bodyLength: number, room = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + room);
  out[0] = type;
  out.writeUInt16BE(version, 1);
  out.writeUInt16BE(bodyLength, 3);
  return out;
}

/**
 * The 13 bytes both record MACs and TLS 1.2 AEAD additional data cover (RFC 5246 §6.2.3.1,
 * §6.2.3.3): seq_num, type, version, length; written into `h` when given (a buffer reused per
 * record), else into a new one.
 */
function header(seq: Buffer, type: number, version: number, length: number, h = Buffer.alloc(13)): Buffer {
  seq.copy(h, 0);
  h[8] = type;
  h.writeUInt16BE(version, 9);
  h.writeUInt16BE(length, 11);
  return h;
}

/** CBC with HMAC, explicit per-record IV (TLS 1.1 and 1.2). */
export class CbcProtection extends PieceSealer implements RecordProtection {
  readonly isNull = false;
  readonly tls13 = false;
  private readonly seq = new Sequence();
  private readonly algorithm: string;

  constructor(
    suite: CipherSuite,
    private readonly key: Buffer,
    private readonly macKey: Buffer,
    private readonly encryptThenMac: boolean,
  ) {
    super();
    this.algorithm = suite.cipher;
    this.macHash = suite.mac!;
    this.macLength = suite.macLength;
    this.mteMac = new ConstantWorkHmac(suite.mac!, macKey);
  }

  /** MtE records are checked with constant hash work (mte_mac.ts). */
  private readonly mteMac: ConstantWorkHmac;

  private readonly macHash: string;
  private readonly macLength: number;

  private mac(seq: Buffer, type: number, version: number, ...data: Buffer[]): Buffer {
    const length = data.reduce((n, d) => n + d.length, 0);
    const h = createHmac(this.macHash, this.macKey).update(header(seq, type, version, length));
    for (const d of data) h.update(d);
    return h.digest();
  }

  /**
   * Header and IV, then the ciphertext as the cipher hands it out, then (encrypt-then-MAC) the
   * MAC: nothing is copied into one record buffer, the bulk path writes the pieces as they are.
   */
  sealPieces(type: ContentType, version: number, plaintext: Buffer): Buffer[] {
    const seq = this.seq.next();
    const mac = this.encryptThenMac ? undefined : this.mac(seq, type, version, plaintext);
    const macLength = mac?.length ?? 0;
    const padLength = 15 - ((plaintext.length + macLength) % 16);
    const bodyLength =
      16 + plaintext.length + macLength + padLength + 1 + (this.encryptThenMac ? this.macLength : 0);
    const head = recordHeader(type, version, bodyLength, 16);
    fillPublicRandom(head, 5, 16);
    const c = createCipheriv(this.algorithm, this.key, head.subarray(5, 21)).setAutoPadding(false);
    // The MAC (MAC-then-encrypt) and the padding, each pad byte holding the pad length.
    const tail = Buffer.alloc(macLength + padLength + 1, padLength);
    mac?.copy(tail, 0);
    const cipher = [c.update(plaintext), c.update(tail), c.final()].filter((p) => p.length > 0);
    if (!this.encryptThenMac) return [head, ...cipher];
    return [head, ...cipher, this.mac(seq, type, version, head.subarray(5), ...cipher)];
  }

  open(type: ContentType, version: number, body: Buffer): { type: ContentType; plaintext: Buffer } {
    const seq = this.seq.next();
    return {
      type,
      plaintext: this.encryptThenMac
        ? this.openEtm(seq, type, version, body)
        : this.openMte(seq, type, version, body),
    };
  }

  private decrypt(iv: Buffer, data: Buffer): Buffer {
    const d = createDecipheriv(this.algorithm, this.key, iv).setAutoPadding(false);
    const head = d.update(data);
    const tail = d.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  }

  private openEtm(seq: Buffer, type: number, version: number, body: Buffer): Buffer {
    const n = body.length - this.macLength;
    if (n < 32 || n % 16 !== 0) throw badMac();
    const expected = this.mac(seq, type, version, body.subarray(0, n));
    if (!timingSafeEqual(expected, body.subarray(n))) throw badMac();
    const plain = this.decrypt(body.subarray(0, 16), body.subarray(16, n));
    // The MAC already authenticated these bytes, so checking the padding here leaks nothing.
    const pad = plain[plain.length - 1]!;
    if (pad + 1 > plain.length || !plain.subarray(plain.length - pad - 1).every((b) => b === pad))
      throw badMac();
    return plain.subarray(0, plain.length - pad - 1);
  }

  /**
   * MAC-then-encrypt: the padding is checked without branching on its bytes and the MAC
   * is always computed with the same hash work whatever the padding length, so a padding
   * failure looks like a MAC failure in outcome and in time (Lucky Thirteen; RFC 5246
   * §6.2.3.2 and its implementation note).
   */
  private openMte(seq: Buffer, type: number, version: number, body: Buffer): Buffer {
    const n = body.length - 16;
    if (n < 16 || n % 16 !== 0 || n < this.macLength + 1) throw badMac();
    const plain = this.decrypt(body.subarray(0, 16), body.subarray(16));
    const pad = plain[plain.length - 1]!;
    // good = 0xff when pad + 1 + macLength <= plain.length and all pad bytes equal pad.
    let good = ((plain.length - this.macLength - 1 - pad) >> 31) ^ -1;
    const scan = Math.min(256, plain.length);
    for (let i = 1; i <= scan; i++) {
      const inPad = ((pad - (i - 1)) >> 31) ^ -1; // all ones while i - 1 <= pad
      const same = ((plain[plain.length - i]! ^ pad) - 1) >> 31; // all ones when the byte equals pad
      good &= ~(inPad & ~same);
    }
    const usedPad = pad & good;
    const contentLength = plain.length - this.macLength - usedPad - 1;
    const content = plain.subarray(0, contentLength);
    const maxContent = plain.length - this.macLength - 1;
    const expected = this.mteMac.mac(header(seq, type, version, contentLength), content, maxContent);
    const macOk = timingSafeEqual(expected, plain.subarray(contentLength, contentLength + this.macLength));
    if (!(macOk && good === -1)) throw badMac();
    return content;
  }
}

type AeadAlgorithm = "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";
// ChaCha20-Poly1305 has the same AEAD call shape as GCM; the cast only picks an overload.

/** The one-byte inner content types TLS 1.3 seals after the data, made once. */
const INNER_TYPE = new Map<number, Buffer>(
  [
    ContentType.change_cipher_spec,
    ContentType.alert,
    ContentType.handshake,
    ContentType.application_data,
  ].map((t) => [t, Buffer.of(t)]),
);

/**
 * AEAD protection for TLS 1.2 (RFC 5288 / RFC 7905 nonces) and TLS 1.3 (RFC 8446 §5.2).
 * The key is a KeyObject made once, and the nonce and additional data are written into
 * buffers this object owns (node:crypto copies both when a record's cipher is created), so a
 * record allocates only what goes on the wire.
 */
export class AeadProtection extends PieceSealer implements RecordProtection {
  readonly isNull = false;
  private readonly seq = new Sequence();
  private readonly explicitNonce: boolean;
  private readonly key: KeyObject;
  /** This record's nonce: the fixed IV (or 4-byte salt) with the sequence number applied. */
  private readonly nonce = Buffer.alloc(12);
  /** This record's sequence number. */
  private readonly seqBytes = Buffer.alloc(8);
  /** TLS 1.2 additional data (RFC 5246 §6.2.3.3); TLS 1.3 uses the record header. */
  private readonly aad = Buffer.alloc(13);

  constructor(
    private readonly algorithm: AeadAlgorithm,
    key: Buffer,
    /** 4-byte salt (TLS 1.2 GCM) or 12-byte IV (ChaCha20 in 1.2, everything in 1.3). */
    private readonly iv: Buffer,
    readonly tls13: boolean,
  ) {
    super();
    this.key = createSecretKey(key);
    this.explicitNonce = !tls13 && algorithm !== "chacha20-poly1305";
    iv.copy(this.nonce, 0, 0, 4);
  }

  /** Advances the sequence number and computes the nonce for it (explicit: salt || seq). */
  private nextNonce(): Buffer {
    this.seq.writeNext(this.seqBytes, 0);
    if (this.explicitNonce) this.seqBytes.copy(this.nonce, 4);
    else for (let i = 0; i < 8; i++) this.nonce[4 + i] = this.iv[4 + i]! ^ this.seqBytes[i]!;
    return this.nonce;
  }

  /** TLS 1.2 additional data for this record: seq_num, type, version, plaintext length. */
  private additionalData(type: number, version: number, length: number): Buffer {
    return header(this.seqBytes, type, version, length, this.aad);
  }

  sealPieces(type: ContentType, version: number, plaintext: Buffer): Buffer[] {
    const nonce = this.nextNonce();
    // TLS 1.3 hides the real type inside (RFC 8446 §5.2); the outer type is always application_data.
    const innerLength = plaintext.length + (this.tls13 ? 1 : 0);
    const prefix = this.explicitNonce ? 8 : 0;
    const outerType = this.tls13 ? ContentType.application_data : type;
    const head = recordHeader(outerType, version, prefix + innerLength + 16, prefix);
    if (prefix) this.seqBytes.copy(head, 5);
    const c = createCipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, { authTagLength: 16 });
    c.setAAD(this.tls13 ? head : this.additionalData(type, version, plaintext.length));
    const body = c.update(plaintext);
    // The sealed inner type byte (TLS 1.3) and the tag travel as one small piece.
    const innerType = this.tls13 ? c.update(INNER_TYPE.get(type) ?? Buffer.of(type)) : undefined;
    c.final(); // GCM and ChaCha20-Poly1305 are stream modes: nothing is held back.
    const tag = c.getAuthTag();
    return [head, body, innerType ? Buffer.concat([innerType, tag]) : tag];
  }

  open(type: ContentType, version: number, body: Buffer): { type: ContentType; plaintext: Buffer } {
    const prefix = this.explicitNonce ? 8 : 0;
    if (body.length < prefix + 16) {
      this.seq.writeNext(this.seqBytes, 0);
      throw badMac();
    }
    const nonce = this.nextNonce();
    if (prefix) body.copy(nonce, 4, 0, 8);
    const ct = body.subarray(prefix, body.length - 16);
    const aad = this.tls13
      ? recordHeader(type, version, body.length)
      : this.additionalData(type, version, ct.length);
    let plain: Buffer;
    try {
      const d = createDecipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, { authTagLength: 16 });
      d.setAAD(aad);
      d.setAuthTag(body.subarray(body.length - 16));
      plain = d.update(ct);
      d.final();
    } catch {
      throw badMac();
    }
    if (!this.tls13) return { type, plaintext: plain };
    // TLS 1.3 inner plaintext: content, then the real type, then zero padding.
    let end = plain.length;
    while (end > 0 && plain[end - 1] === 0) end--;
    if (end === 0) throw new TlsError(AlertDescription.unexpected_message, "record with no content type");
    const innerType = plain[end - 1]! as ContentType;
    if (end - 1 > MAX_PLAINTEXT)
      throw new TlsError(AlertDescription.record_overflow, "record plaintext too long");
    return { type: innerType, plaintext: plain.subarray(0, end - 1) };
  }
}

/** Key material for one direction, as cut from the TLS 1.2 key block. */
export interface DirectionKeys {
  macKey: Buffer;
  key: Buffer;
  iv: Buffer;
}

/** Bytes of key block each suite needs per direction: [mac, key, fixed IV]. */
export function keyBlockLayout(suite: CipherSuite): [number, number, number] {
  if (suite.mac) return [suite.macLength, suite.keyLength, 0];
  return [0, suite.keyLength, suite.cipher === "chacha20-poly1305" ? 12 : 4];
}

/** Splits a TLS 1.2 key block into client and server write keys (RFC 5246 §6.3 order). */
export function splitKeyBlock(
  suite: CipherSuite,
  block: Buffer,
): { client: DirectionKeys; server: DirectionKeys } {
  const [m, k, i] = keyBlockLayout(suite);
  let offset = 0;
  const take = (n: number) => {
    offset += n;
    return Buffer.from(block.subarray(offset - n, offset));
  };
  const cm = take(m);
  const sm = take(m);
  const ck = take(k);
  const sk = take(k);
  const ci = take(i);
  const si = take(i);
  return { client: { macKey: cm, key: ck, iv: ci }, server: { macKey: sm, key: sk, iv: si } };
}

/** Builds the TLS 1.2/1.1 protection for one direction. */
export function protectionFor(
  suite: CipherSuite,
  keys: DirectionKeys,
  encryptThenMac: boolean,
): RecordProtection {
  if (suite.mac) return new CbcProtection(suite, keys.key, keys.macKey, encryptThenMac);
  return new AeadProtection(suite.cipher as AeadAlgorithm, keys.key, keys.iv, false);
}
