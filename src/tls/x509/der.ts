/**
 * A minimal, bounds-checked DER reader: the parser of certificates and CRLs
 * (certificate.ts, crl.ts, extensions.ts decode every field with it, keeping exact bytes where
 * they matter: the signed TBS block, raw distinguished names, GeneralNames with raw IP octets,
 * algorithm parameters). It insists on a single well-formed DER element before OpenSSL, or
 * @peculiar/x509 formatting a name for a message, sees the input.
 */
import { X509ParseError } from "./errors.ts";

/** One decoded tag-length-value element; `bytes` is the whole element, `content` its value. */
export interface DerElement {
  /** The identifier octet (class, constructed bit and tag number < 31). */
  readonly tag: number;
  /** The complete encoding, header included. */
  readonly bytes: Buffer;
  /** The value octets only. */
  readonly content: Buffer;
}

/** Universal and context tags used by X.509. */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag number `n`, constructed or primitive. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/** Reads consecutive DER elements from a buffer, never past its end. */
export class DerReader {
  private offset = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  /** True when every byte has been consumed. */
  get done(): boolean {
    return this.offset >= this.buf.length;
  }

  /** The tag of the next element without consuming it, or -1 at the end. */
  peekTag(): number {
    return this.done ? -1 : this.buf[this.offset]!;
  }

  /** Reads the next element; with `expectTag` it must carry that tag. */
  read(expectTag?: number): DerElement {
    const start = this.offset;
    if (this.buf.length - start < 2) throw this.fail("truncated element header");
    const tag = this.buf[start]!;
    if ((tag & 0x1f) === 0x1f) throw this.fail("multi-byte tags are not used in X.509");
    if (expectTag !== undefined && tag !== expectTag) {
      throw this.fail(`expected tag 0x${hex2(expectTag)}, found 0x${hex2(tag)}`);
    }
    let pos = start + 1;
    const first = this.buf[pos++]!;
    let length: number;
    if (first < 0x80) {
      length = first;
    } else {
      const count = first & 0x7f;
      // Indefinite lengths (0x80) are BER, not DER; more than 4 length octets cannot fit any certificate.
      if (count === 0 || count > 4) throw this.fail("invalid length encoding");
      if (this.buf.length - pos < count) throw this.fail("truncated length");
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + this.buf[pos++]!;
      if (length < 0x80 || (count > 1 && this.buf[pos - count] === 0)) throw this.fail("non-minimal length");
    }
    if (this.buf.length - pos < length) throw this.fail("truncated: element runs past the end of its input");
    this.offset = pos + length;
    return {
      tag,
      bytes: this.buf.subarray(start, pos + length),
      content: this.buf.subarray(pos, pos + length),
    };
  }

  /** Reads the next element only if it carries `tag`. */
  readOptional(tag: number): DerElement | undefined {
    return this.peekTag() === tag ? this.read(tag) : undefined;
  }

  /** Fails unless all input was consumed. */
  end(): void {
    if (!this.done) throw this.fail(`${this.buf.length - this.offset} unexpected trailing bytes`);
  }

  private fail(message: string): X509ParseError {
    return new X509ParseError(`${this.what}: ${message}`);
  }
}

/** Parses `buf` as exactly one DER element with the given tag (no trailing bytes). */
export function readSingle(buf: Buffer, tag: number, what: string): DerElement {
  const reader = new DerReader(buf, what);
  const element = reader.read(tag);
  reader.end();
  return element;
}

/** The children of a constructed element. */
export function children(element: DerElement, what: string): DerElement[] {
  const reader = new DerReader(element.content, what);
  const out: DerElement[] = [];
  while (!reader.done) out.push(reader.read());
  return out;
}

/** Decodes an OBJECT IDENTIFIER value to dotted form. */
export function decodeOid(content: Buffer, what = "object identifier"): string {
  if (content.length === 0 || content.length > 64) throw new X509ParseError(`${what}: bad length`);
  const arcs: number[] = [];
  let value = 0;
  for (let i = 0; i < content.length; i++) {
    const byte = content[i]!;
    if (value === 0 && byte === 0x80) throw new X509ParseError(`${what}: non-minimal arc`);
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new X509ParseError(`${what}: arc too large`);
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    } else if (i === content.length - 1) {
      throw new X509ParseError(`${what}: truncated arc`);
    }
  }
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

/** Decodes a small non-negative INTEGER (lengths, counters); refuses negatives and huge values. */
export function decodeSmallInteger(content: Buffer, what: string): number {
  if (content.length === 0 || content.length > 6) throw new X509ParseError(`${what}: bad integer`);
  if (content[0]! & 0x80) throw new X509ParseError(`${what}: negative integer`);
  return content.readUIntBE(0, content.length);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/**
 * Decodes a DER Time (UTCTime or GeneralizedTime, always in UTC with seconds and a "Z",
 * as RFC 5280 §4.1.2.5 requires). UTCTime years 50-99 are 19xx.
 */
export function decodeTime(element: DerElement, what: string): Date {
  const text = element.content.toString("latin1");
  const match =
    element.tag === 0x17
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : element.tag === 0x18
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
        : null;
  if (!match) throw new X509ParseError(`${what}: invalid time`);
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fullYear = element.tag === 0x17 ? (year >= 50 ? 1900 + year : 2000 + year) : year;
  const date = new Date(Date.UTC(fullYear, month - 1, day, hour, minute, second));
  // Date.UTC rolls over out-of-range fields (Feb 30 -> Mar 2); a round trip catches that.
  if (
    date.getUTCMonth() !== month - 1 ||
    date.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw new X509ParseError(`${what}: invalid time`);
  }
  return date;
}
