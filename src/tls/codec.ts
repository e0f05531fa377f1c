/**
 * Bounds-checked reading and writing of TLS presentation-language structures (RFC 8446 §3).
 * Every read past the end raises a decode_error, so peer input can never index out of range.
 */
import { AlertDescription, TlsError } from "./alert.ts";

/** Reads big-endian integers and length-prefixed vectors from a buffer, never past its end. */
export class Reader {
  private offset = 0;

  constructor(
    private readonly buf: Buffer,
    /** Names the structure in error messages. */
    private readonly what = "message",
  ) {}

  /** Bytes not yet read. */
  get remaining(): number {
    return this.buf.length - this.offset;
  }

  private take(n: number): Buffer {
    if (n > this.remaining) {
      throw new TlsError(AlertDescription.decode_error, `truncated ${this.what}`);
    }
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** One byte. */
  u8(): number {
    return this.take(1)[0]!;
  }

  /** Two bytes, big-endian. */
  u16(): number {
    return this.take(2).readUInt16BE(0);
  }

  /** Three bytes, big-endian. */
  u24(): number {
    return this.take(3).readUIntBE(0, 3);
  }

  /** Four bytes, big-endian. */
  u32(): number {
    return this.take(4).readUInt32BE(0);
  }

  /** Exactly `n` bytes (a view into the input). */
  bytes(n: number): Buffer {
    return this.take(n);
  }

  /** A vector with a 1-byte length prefix; `min` is the smallest legal length. */
  vec8(min = 0): Buffer {
    return this.checked(this.take(this.u8()), min);
  }

  /** A vector with a 2-byte length prefix. */
  vec16(min = 0): Buffer {
    return this.checked(this.take(this.u16()), min);
  }

  /** A vector with a 3-byte length prefix. */
  vec24(min = 0): Buffer {
    return this.checked(this.take(this.u24()), min);
  }

  /** All bytes that are left. */
  rest(): Buffer {
    return this.take(this.remaining);
  }

  /** Fails unless every byte has been consumed. */
  end(): void {
    if (this.remaining !== 0) {
      throw new TlsError(AlertDescription.decode_error, `trailing bytes in ${this.what}`);
    }
  }

  private checked(v: Buffer, min: number): Buffer {
    if (v.length < min) throw new TlsError(AlertDescription.decode_error, `short vector in ${this.what}`);
    return v;
  }
}

/** Reads a list of fixed-size items (e.g. u16 code points) from a vector body. */
export function readU16List(body: Buffer, what: string): number[] {
  if (body.length % 2 !== 0) throw new TlsError(AlertDescription.decode_error, `odd-length ${what}`);
  const out: number[] = [];
  for (let i = 0; i < body.length; i += 2) out.push(body.readUInt16BE(i));
  return out;
}

/**
 * Accumulates bytes; length-prefixed vectors are written with their prefix. One buffer that
 * grows, not a Buffer per field: a handshake encodes a few hundred fields, and a small Buffer
 * each was a measurable part of its allocations. Encoders also write secrets (a session
 * ticket's state) that their callers zero in the result, so no other copy is left behind: an
 * outgrown buffer is zeroed, and so is the buffer when a write is refused. `finish()` ends the
 * Writer.
 */
export class Writer {
  private buf: Buffer;
  private length = 0;
  private finished = false;

  /** `capacity`: bytes to start with (it grows as needed). */
  constructor(capacity = 256) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** One byte (the low 8 bits of `v`). */
  u8(v: number): this {
    this.room(1)[this.length++] = v & 0xff;
    return this;
  }

  /** Two bytes, big-endian; RangeError outside 0..65535. */
  u16(v: number): this {
    return this.integer(v, 2);
  }

  /** Three bytes, big-endian; RangeError outside 0..2^24-1. */
  u24(v: number): this {
    return this.integer(v, 3);
  }

  /** Raw bytes. */
  bytes(v: Uint8Array): this {
    this.room(v.length).set(v, this.length);
    this.length += v.length;
    return this;
  }

  /** A vector with a 1-byte length prefix. */
  vec8(v: Uint8Array): this {
    return this.prefixed(v, 1);
  }

  /** A vector with a 2-byte length prefix. */
  vec16(v: Uint8Array): this {
    return this.prefixed(v, 2);
  }

  /** A vector with a 3-byte length prefix. */
  vec24(v: Uint8Array): this {
    return this.prefixed(v, 3);
  }

  /**
   * The bytes written; the Writer takes no more writes. A result much smaller than the buffer
   * is copied out (the buffer then zeroed), so a small kept result does not pin the rest.
   */
  finish(): Buffer {
    this.finished = true;
    const view = this.buf.subarray(0, this.length);
    if (this.length * 4 >= this.buf.length) return view;
    const out = Buffer.from(view);
    view.fill(0);
    return out;
  }

  private prefixed(v: Uint8Array, size: 1 | 2 | 3): this {
    if (v.length >= 2 ** (8 * size))
      this.refuse(new RangeError(`vector of ${v.length} bytes exceeds its length prefix`));
    this.integer(v.length, size);
    return this.bytes(v);
  }

  private integer(v: number, size: 1 | 2 | 3): this {
    const buf = this.room(size);
    try {
      this.length = buf.writeUIntBE(v, this.length, size);
    } catch (err) {
      this.refuse(err);
    }
    return this;
  }

  /** Zeroes what was written and throws `err`: a refused encoding leaves nothing behind. */
  private refuse(err: unknown): never {
    this.buf.fill(0, 0, this.length);
    throw err;
  }

  /** The buffer, with at least `n` free bytes after what is written. */
  private room(n: number): Buffer {
    // Not refuse(): the buffer may be the very bytes finish() gave out.
    if (this.finished) throw new Error("Writer: written to after finish()");
    const need = this.length + n;
    if (need <= this.buf.length) return this.buf;
    const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf.fill(0, 0, this.length);
    this.buf = grown;
    return grown;
  }
}

/** Encodes a list of u16 values as a vector with a 2-byte length prefix. */
export function u16List(values: readonly number[]): Buffer {
  const w = new Writer();
  for (const v of values) w.u16(v);
  return new Writer().vec16(w.finish()).finish();
}
