/**
 * What a handshake sees of its connection: whole handshake messages in, messages and
 * ChangeCipherSpec out, and the moments the record protection changes. Handshake code
 * (handshake_client.ts, handshake_server.ts) is written against this, not against sockets.
 */
import { timingSafeEqual } from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";
import { HandshakeType, MAX_HANDSHAKE_MESSAGE } from "./constants.ts";
import type { RecordProtection } from "./protection.ts";

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
  /** We answered a CertificateRequest with no certificate: explain a fatal alert that follows as that. */
  expectRefusalForMissingCertificate(): void;
  /** From now until the handshake ends, ignore unprotected ChangeCipherSpec records (TLS 1.3 compatibility mode). */
  allowCompatChangeCipherSpec(): void;
  /** Sets the version written in record headers. */
  setRecordVersion(version: number): void;
}

/** Reassembles handshake messages from handshake records (fragmented or coalesced). */
export class HandshakeAssembler {
  private buf: Buffer = Buffer.alloc(0);

  /** True when bytes of an incomplete message are waiting. */
  get partial(): boolean {
    return this.buf.length > 0;
  }

  /** Adds the plaintext of one handshake record. */
  push(fragment: Buffer): void {
    this.buf = this.buf.length === 0 ? fragment : Buffer.concat([this.buf, fragment]);
  }

  /** The next complete message, or undefined. */
  next(): HandshakeMessage | undefined {
    if (this.buf.length < 4) return undefined;
    const length = this.buf.readUIntBE(1, 3);
    if (length > MAX_HANDSHAKE_MESSAGE) {
      throw new TlsError(
        AlertDescription.illegal_parameter,
        `handshake message of ${length} bytes is too large`,
      );
    }
    if (this.buf.length < 4 + length) return undefined;
    const raw = Buffer.from(this.buf.subarray(0, 4 + length));
    this.buf = this.buf.subarray(4 + length);
    return { type: raw[0]! as HandshakeType, body: raw.subarray(4), raw };
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
 * Checks the peer's Finished against the verify_data we expect, in constant time, and adds
 * it to the transcript. A mismatch is decrypt_error (RFC 8446 §4.4.4, RFC 5246 §7.4.9).
 */
export function expectFinished(
  msg: HandshakeMessage,
  expected: Buffer,
  peer: "client" | "server",
  transcript: Buffer[],
): void {
  expectType(msg, HandshakeType.finished);
  if (msg.body.length !== expected.length || !timingSafeEqual(msg.body, expected)) {
    throw new TlsError(AlertDescription.decrypt_error, `${peer} Finished did not verify`);
  }
  transcript.push(msg.raw);
}
