/**
 * What a handshake sees of its connection: whole handshake messages in, messages and
 * ChangeCipherSpec out, and the moments the record protection changes. Handshake code
 * (handshake_client.ts, handshake_server.ts) is written against this, not against sockets.
 */
import { timingSafeEqual } from "node:crypto";
import { AlertDescription, fail, TlsError } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { HandshakeType, MAX_HANDSHAKE_MESSAGE, type ProtocolVersion } from "./constants.ts";
import type { RecordProtection } from "./protection.ts";
import { copyFront } from "./record.ts";

/** What a completed handshake tells the connection. */
export interface HandshakeResult {
  version: ProtocolVersion;
  suite: CipherSuite;
  /** The peer's chain as sent, leaf first (DER). */
  peerCertificates: Buffer[];
  /** True when the peer's chain was validated (or, on a server, a valid client chain was presented). */
  authorized: boolean;
  /** Why the peer is not authorized, when it is not. */
  authorizationError: string | undefined;
  alpnProtocol: string | false;
  /** Handles post-handshake messages (TLS 1.3 tickets, KeyUpdate); undefined refuses them all. */
  postHandshake?: (msg: HandshakeMessage) => void;
}

/** One handshake message: its type, its body, and the exact bytes for the transcript. */
export interface HandshakeMessage {
  type: HandshakeType;
  body: Buffer;
  raw: Buffer;
}

/** The handshake's view of a connection. */
export interface HandshakeIO {
  /** The next handshake message from the peer. */
  readMessage(): Promise<HandshakeMessage>;
  /** Queues a handshake message; returns its framed bytes for the transcript. */
  writeMessage(type: HandshakeType, body: Buffer): Buffer;
  /** Queues ChangeCipherSpec, then protects everything written after it with `next`. */
  writeChangeCipherSpec(next: RecordProtection): void;
  /** Switches the write protection without a ChangeCipherSpec (TLS 1.3). */
  setWriteProtection(next: RecordProtection): void;
  /** Arms the read protection that takes effect when the peer's ChangeCipherSpec arrives. */
  setPendingRead(next: RecordProtection): void;
  /** Switches the read protection at the current message boundary (TLS 1.3). */
  setReadProtection(next: RecordProtection): void;
  /** Resolves once the peer's ChangeCipherSpec has been processed. */
  readChangeCipherSpec(): Promise<void>;
  /** Sends everything queued, as few records as possible. */
  flush(): Promise<void>;
  /**
   * Until called again with undefined, a fatal alert from the peer is reported as the error
   * `explain` returns for it (when it returns one) instead of a bare "peer sent alert".
   */
  explainPeerAlert(explain: ((alert: AlertDescription) => TlsError | undefined) | undefined): void;
  /** We answered a CertificateRequest with no certificate: explain a fatal alert that follows as that. */
  expectRefusalForMissingCertificate(): void;
  /** From now until the handshake ends, ignore unprotected ChangeCipherSpec records (TLS 1.3 compatibility mode). */
  allowCompatChangeCipherSpec(): void;
  /** Sets the version written in record headers. */
  setRecordVersion(version: number): void;
}

/**
 * Handshake records one message may be spread over. A peer needs at most 16 for the largest
 * message we accept at full-size records; 1024 leaves room for any sane fragmentation while a
 * peer sending one byte per record is cut off after a bounded amount of work.
 */
export const MAX_RECORDS_PER_MESSAGE = 1024;
/**
 * Handshake plaintext one handshake may bring in (four messages of the largest size we accept):
 * with the per-message record bound, it caps the work any peer can make us do before the
 * handshake ends, whatever it sends.
 */
export const MAX_HANDSHAKE_BYTES = 4 * MAX_HANDSHAKE_MESSAGE;

/**
 * Reassembles handshake messages from handshake records (fragmented or coalesced). Fragments
 * are kept as a list and copied once, when a message is complete; the 4-byte header is read
 * across fragments without joining them, so the work is linear in the bytes received whatever
 * the fragmentation (joining every fragment to read a header made 1-byte records quadratic).
 */
export class HandshakeAssembler {
  private parts: Buffer[] = [];
  private size = 0;
  /** Records that carried bytes of the message now being assembled. */
  private records = 0;
  /** Handshake bytes received so far in this handshake. */
  private total = 0;

  constructor(
    private readonly maxRecords = MAX_RECORDS_PER_MESSAGE,
    /** The bound on `total`; undefined once the handshake is over (post-handshake messages are bounded one by one). */
    private maxTotal: number | undefined = MAX_HANDSHAKE_BYTES,
  ) {}

  /** The handshake is over: from now on only the per-message bounds apply. */
  handshakeDone(): void {
    this.maxTotal = undefined;
  }

  /** True when bytes of an incomplete message are waiting. */
  get partial(): boolean {
    return this.size > 0;
  }

  /**
   * Adds the plaintext of one handshake record. Too many records for one message, or too many
   * bytes for one handshake, is unexpected_message.
   */
  push(fragment: Buffer): void {
    if (++this.records > this.maxRecords) {
      throw new TlsError(
        AlertDescription.unexpected_message,
        `handshake message spread over more than ${this.maxRecords} records`,
      );
    }
    this.total += fragment.length;
    if (this.maxTotal !== undefined && this.total > this.maxTotal) {
      throw new TlsError(
        AlertDescription.unexpected_message,
        `more than ${this.maxTotal} bytes of handshake messages in one handshake`,
      );
    }
    this.parts.push(fragment);
    this.size += fragment.length;
  }

  /** The next complete message, or undefined. */
  next(): HandshakeMessage | undefined {
    if (this.size < 4) return undefined;
    const length = (this.byteAt(1) << 16) | (this.byteAt(2) << 8) | this.byteAt(3);
    if (length > MAX_HANDSHAKE_MESSAGE) {
      throw new TlsError(
        AlertDescription.illegal_parameter,
        `handshake message of ${length} bytes is too large`,
      );
    }
    if (this.size < 4 + length) return undefined;
    const raw = this.take(4 + length);
    // The records of the next message count from the one that ends this message.
    this.records = this.size > 0 ? 1 : 0;
    return { type: raw[0]! as HandshakeType, body: raw.subarray(4), raw };
  }

  /** Byte `i` (< 4) of the buffered bytes, found across at most four fragments without copying. */
  private byteAt(i: number): number {
    let offset = i;
    for (const part of this.parts) {
      if (offset < part.length) return part[offset]!;
      offset -= part.length;
    }
    throw new RangeError("byteAt past the buffered bytes");
  }

  /** Copies the first n bytes out and drops them. */
  private take(n: number): Buffer {
    this.size -= n;
    return copyFront(this.parts, n, true);
  }
}

/** Fails with unexpected_message unless the message has the expected type. */
export function expectType(msg: HandshakeMessage, ...types: HandshakeType[]): void {
  if (!types.includes(msg.type)) {
    const want = types.map((t) => HandshakeType[t]).join(" or ");
    throw new TlsError(
      AlertDescription.unexpected_message,
      `expected ${want}, got ${HandshakeType[msg.type] ?? msg.type}`,
    );
  }
}

/**
 * Checks the peer's Finished against the verify_data we expect, in constant time. A Finished
 * of the wrong length cannot be decoded (decode_error, RFC 8446 §6.2); a mismatch is
 * decrypt_error (RFC 8446 §4.4.4, RFC 5246 §7.4.9).
 */
export function checkFinished(msg: HandshakeMessage, expected: Buffer, peer: "client" | "server"): void {
  expectType(msg, HandshakeType.finished);
  if (msg.body.length !== expected.length) {
    fail(
      AlertDescription.decode_error,
      `${peer} Finished is ${msg.body.length} bytes, not ${expected.length}`,
    );
  }
  if (!timingSafeEqual(msg.body, expected))
    fail(AlertDescription.decrypt_error, `${peer} Finished did not verify`);
}
