/**
 * Record framing (RFC 5246 §6.2, RFC 8446 §5.1): cuts a byte stream into records and
 * builds records from fragments. It knows nothing of sockets: bytes in, records out.
 */
import { AlertDescription, TlsError } from "./alert.ts";
import { ContentType, MAX_CIPHERTEXT, MAX_PLAINTEXT } from "./constants.ts";
import type { RecordProtection } from "./protection.ts";

/** One record as read from the wire (body still protected). */
export interface RawRecord {
  type: ContentType;
  version: number;
  body: Buffer;
}

const KNOWN_TYPES = new Set<number>([
  ContentType.change_cipher_spec,
  ContentType.alert,
  ContentType.handshake,
  ContentType.application_data,
]);

/** Accumulates incoming bytes and yields complete records, enforcing the size limits. */
export class RecordReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Adds bytes received from the transport. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Bytes received but not yet returned as records. */
  get pending(): number {
    return this.buffered;
  }

  /** The next complete record, or undefined when more bytes are needed. */
  next(): RawRecord | undefined {
    if (this.buffered < 5) return undefined;
    const head = this.peek(5);
    const type = head[0]!;
    const version = head.readUInt16BE(1);
    const length = head.readUInt16BE(3);
    if (!KNOWN_TYPES.has(type)) {
      throw new TlsError(AlertDescription.unexpected_message, `unknown record type ${type}`);
    }
    if (head[1] !== 3)
      throw new TlsError(AlertDescription.protocol_version, "record is not TLS (bad version)");
    if (length > MAX_CIPHERTEXT) {
      throw new TlsError(AlertDescription.record_overflow, `record of ${length} bytes exceeds the limit`);
    }
    if (this.buffered < 5 + length) return undefined;
    const all = this.take(5 + length);
    return { type: type as ContentType, version, body: all.subarray(5) };
  }

  private peek(n: number): Buffer {
    return this.chunks[0]!.length >= n ? this.chunks[0]!.subarray(0, n) : copyFront(this.chunks, n, false);
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length < n) return copyFront(this.chunks, n, true);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }
}

/**
 * Copies the first `n` bytes of a list of chunks into one new buffer; with `consume` they also
 * leave the list, in one splice at the end, so the work stays linear however many chunks they
 * span. The list must hold at least `n` bytes.
 */
export function copyFront(chunks: Buffer[], n: number, consume: boolean): Buffer {
  const out = Buffer.allocUnsafe(n);
  let filled = 0;
  let i = 0;
  while (filled < n) {
    const chunk = chunks[i]!;
    const used = Math.min(chunk.length, n - filled);
    chunk.copy(out, filled, 0, used);
    filled += used;
    if (consume && used < chunk.length) chunks[i] = chunk.subarray(used);
    else i++;
  }
  if (consume) chunks.splice(0, i);
  return out;
}

/** Frames one protected record body. */
export function frameRecord(type: ContentType, version: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt16BE(version, 1);
  head.writeUInt16BE(body.length, 3);
  return Buffer.concat([head, body]);
}

/** Splits data into plaintext fragments no larger than the record limit. */
export function* fragments(data: Buffer, max = MAX_PLAINTEXT): Generator<Buffer> {
  for (let o = 0; o < data.length; o += max) yield data.subarray(o, o + max);
}

/**
 * Opens a record with the current read protection, after the checks that depend on it: no
 * application data in the clear, TLS 1.3's ciphertext bound and outer type (RFC 8446 §5.1-5.2),
 * no protected ChangeCipherSpec; and the plaintext bound for every version.
 */
export function openRecord(
  protection: RecordProtection,
  rec: RawRecord,
): { type: ContentType; plaintext: Buffer } {
  if (protection.isNull && rec.type === ContentType.application_data)
    throw new TlsError(AlertDescription.unexpected_message, "application data before the handshake finished");
  if (protection.tls13 && rec.body.length > MAX_PLAINTEXT + 256)
    throw new TlsError(AlertDescription.record_overflow, "TLS 1.3 record longer than 2^14 + 256");
  if (protection.tls13 && rec.type !== ContentType.application_data) {
    throw new TlsError(
      AlertDescription.unexpected_message,
      `unprotected record of type ${rec.type} after the key change`,
    );
  }
  const { type, plaintext } = protection.open(rec.type, rec.version, rec.body);
  if (plaintext.length > MAX_PLAINTEXT)
    throw new TlsError(AlertDescription.record_overflow, "record plaintext too long");
  if (protection.tls13 && type === ContentType.change_cipher_spec)
    throw new TlsError(AlertDescription.unexpected_message, "protected ChangeCipherSpec");
  return { type, plaintext };
}
