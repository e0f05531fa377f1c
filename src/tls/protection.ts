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
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { ContentType, MAX_PLAINTEXT } from "./constants.ts";

/** Seals and opens records for one direction of one connection state. */
export interface RecordProtection {
  /** True for the initial, unprotected state. */
  readonly isNull: boolean;
  /** True for TLS 1.3 protection (outer type is always application_data). */
  readonly tls13: boolean;
  /** Protects one fragment; returns the record body. */
  seal(type: ContentType, version: number, plaintext: Buffer): Buffer;
  /** Opens one record body; returns the plaintext and, for TLS 1.3, the inner content type. */
  open(type: ContentType, version: number, body: Buffer): { type: ContentType; plaintext: Buffer };
}

/** The state before ChangeCipherSpec: records travel in the clear. */
export const NULL_PROTECTION: RecordProtection = {
  isNull: true,
  tls13: false,
  seal: (_type, _version, plaintext) => plaintext,
  open: (type, _version, body) => ({ type, plaintext: body }),
};

const badMac = () =>
  new TlsError(AlertDescription.bad_record_mac, "record authentication failed (bad_record_mac)");

/** Keeps the 64-bit record sequence number. */
class Sequence {
  private value = 0n;

  /** Returns the current number as 8 bytes and advances it. */
  next(): Buffer {
    if (this.value === 0xffffffffffffffffn)
      throw new TlsError(AlertDescription.internal_error, "sequence number exhausted");
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(this.value);
    this.value++;
    return b;
  }
}

function header(seq: Buffer, type: number, version: number, length: number): Buffer {
  const h = Buffer.alloc(13);
  seq.copy(h, 0);
  h[8] = type;
  h.writeUInt16BE(version, 9);
  h.writeUInt16BE(length, 11);
  return h;
}

/** CBC with HMAC, explicit per-record IV (TLS 1.1 and 1.2). */
export class CbcProtection implements RecordProtection {
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
    this.algorithm = suite.cipher;
    this.macHash = suite.mac!;
    this.macLength = suite.macLength;
  }

  private readonly macHash: string;
  private readonly macLength: number;

  private mac(seq: Buffer, type: number, version: number, ...data: Buffer[]): Buffer {
    const length = data.reduce((n, d) => n + d.length, 0);
    const h = createHmac(this.macHash, this.macKey).update(header(seq, type, version, length));
    for (const d of data) h.update(d);
    return h.digest();
  }

  private encrypt(iv: Buffer, data: Buffer): Buffer {
    const padLength = 15 - (data.length % 16);
    const padded = Buffer.concat([data, Buffer.alloc(padLength + 1, padLength)]);
    const c = createCipheriv(this.algorithm, this.key, iv).setAutoPadding(false);
    return Buffer.concat([c.update(padded), c.final()]);
  }

  seal(type: ContentType, version: number, plaintext: Buffer): Buffer {
    const seq = this.seq.next();
    const iv = randomBytes(16);
    if (this.encryptThenMac) {
      const body = Buffer.concat([iv, this.encrypt(iv, plaintext)]);
      return Buffer.concat([body, this.mac(seq, type, version, body)]);
    }
    const mac = this.mac(seq, type, version, plaintext);
    return Buffer.concat([iv, this.encrypt(iv, Buffer.concat([plaintext, mac]))]);
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
    return Buffer.concat([d.update(data), d.final()]);
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
   * is always computed, over a length that does not depend on whether the padding was
   * good, so the failure looks the same either way (Lucky Thirteen countermeasure in the
   * spirit of RFC 5246 §6.2.3.2 and its implementation note).
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
    const expected = this.mac(seq, type, version, content);
    // Hash the remaining bytes too so the HMAC work does not depend on the padding length.
    createHmac(this.macHash, this.macKey).update(plain.subarray(contentLength)).digest();
    const macOk = timingSafeEqual(expected, plain.subarray(contentLength, contentLength + this.macLength));
    if (!(macOk && good === -1)) throw badMac();
    return content;
  }
}

type AeadAlgorithm = "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";
// ChaCha20-Poly1305 has the same AEAD call shape as GCM; the cast only picks an overload.

/** AEAD protection for TLS 1.2 (RFC 5288 / RFC 7905 nonces) and TLS 1.3 (RFC 8446 §5.2). */
export class AeadProtection implements RecordProtection {
  readonly isNull = false;
  private readonly seq = new Sequence();
  private readonly explicitNonce: boolean;

  constructor(
    private readonly algorithm: AeadAlgorithm,
    private readonly key: Buffer,
    /** 4-byte salt (TLS 1.2 GCM) or 12-byte IV (ChaCha20 in 1.2, everything in 1.3). */
    private readonly iv: Buffer,
    readonly tls13: boolean,
  ) {
    this.explicitNonce = !tls13 && algorithm !== "chacha20-poly1305";
  }

  private nonce(seq: Buffer): Buffer {
    if (this.explicitNonce) return Buffer.concat([this.iv, seq]);
    const n = Buffer.from(this.iv);
    for (let i = 0; i < 8; i++) n[n.length - 8 + i]! ^= seq[i]!;
    return n;
  }

  seal(type: ContentType, version: number, plaintext: Buffer): Buffer {
    const seq = this.seq.next();
    const nonce = this.nonce(seq);
    const inner = this.tls13 ? Buffer.concat([plaintext, Buffer.from([type])]) : plaintext;
    const outerLength = inner.length + 16 + (this.explicitNonce ? 8 : 0);
    const aad = this.tls13 ? tls13Header(outerLength) : header(seq, type, version, plaintext.length);
    const c = createCipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: inner.length });
    const ct = Buffer.concat([c.update(inner), c.final(), c.getAuthTag()]);
    return this.explicitNonce ? Buffer.concat([seq, ct]) : ct;
  }

  open(type: ContentType, version: number, body: Buffer): { type: ContentType; plaintext: Buffer } {
    const seq = this.seq.next();
    const prefix = this.explicitNonce ? 8 : 0;
    if (body.length < prefix + 16) throw badMac();
    const nonce = this.explicitNonce ? Buffer.concat([this.iv, body.subarray(0, 8)]) : this.nonce(seq);
    const ct = body.subarray(prefix, body.length - 16);
    const aad = this.tls13 ? tls13Header(body.length) : header(seq, type, version, ct.length);
    let plain: Buffer;
    try {
      const d = createDecipheriv(this.algorithm as CipherGCMTypes, this.key, nonce, { authTagLength: 16 });
      d.setAAD(aad, { plaintextLength: ct.length });
      d.setAuthTag(body.subarray(body.length - 16));
      plain = Buffer.concat([d.update(ct), d.final()]);
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

function tls13Header(length: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = ContentType.application_data;
  h.writeUInt16BE(0x0303, 1);
  h.writeUInt16BE(length, 3);
  return h;
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
