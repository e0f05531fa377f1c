/**
 * The record MAC for MAC-then-encrypt CBC suites, computed so that the hash work does not
 * depend on how much of a record was content and how much was padding (Lucky Thirteen,
 * AlFardan and Paterson 2013). Node's Hmac hides its compression function, so HMAC
 * (RFC 2104) is composed here from node:crypto hashes: the inner hash is copied to take
 * the real digest, then fed whole blocks, never finished, until it has run as many
 * compressions as the longest content the record could have held.
 */
import { createHash } from "node:crypto";

/** Largest number of filler blocks one record can need: padding is at most 256 bytes. */
const MAX_FILLER_BLOCKS = 6;

/** HMAC with a fixed number of compression-function calls per record size. */
export class ConstantWorkHmac {
  private readonly blockSize: number;
  private readonly lengthField: number;
  private readonly innerPad: Buffer;
  private readonly outerPad: Buffer;
  private readonly filler: Buffer;

  /** `key` is a TLS MAC key, never longer than the hash's block. */
  constructor(
    private readonly hash: "sha1" | "sha256" | "sha384",
    key: Buffer,
  ) {
    this.blockSize = hash === "sha384" ? 128 : 64;
    this.lengthField = hash === "sha384" ? 16 : 8;
    if (key.length > this.blockSize) throw new RangeError("MAC key longer than the hash block");
    const padded = Buffer.alloc(this.blockSize);
    key.copy(padded);
    this.innerPad = Buffer.from(padded.map((b) => b ^ 0x36));
    this.outerPad = Buffer.from(padded.map((b) => b ^ 0x5c));
    padded.fill(0);
    this.filler = Buffer.alloc(MAX_FILLER_BLOCKS * this.blockSize);
  }

  /** Compressions the inner hash runs over a header and `contentLength` bytes, final padding included. */
  innerCompressions(headerLength: number, contentLength: number): number {
    return Math.ceil((this.blockSize + headerLength + contentLength + 1 + this.lengthField) / this.blockSize);
  }

  /** Filler blocks that bring a `contentLength` record's work up to a `maxContent` one's. */
  fillerBlocks(headerLength: number, contentLength: number, maxContent: number): number {
    const extra =
      this.innerCompressions(headerLength, maxContent) - this.innerCompressions(headerLength, contentLength);
    if (extra < 0 || extra > MAX_FILLER_BLOCKS) throw new RangeError("MtE MAC filler out of range");
    return extra;
  }

  /**
   * HMAC(header || content), doing the compressions a `maxContent`-byte content would
   * have cost. `maxContent` must come from public sizes only (the record length).
   */
  mac(header: Buffer, content: Buffer, maxContent: number): Buffer {
    const inner = createHash(this.hash).update(this.innerPad).update(header).update(content);
    const innerDigest = inner.copy().digest();
    const extra = this.fillerBlocks(header.length, content.length, maxContent);
    // Whole blocks on top of what is buffered: exactly `extra` more compressions.
    inner.update(this.filler.subarray(0, extra * this.blockSize));
    return createHash(this.hash).update(this.outerPad).update(innerDigest).digest();
  }
}
