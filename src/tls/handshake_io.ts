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

/**
 * Reassembles handshake messages from handshake records (fragmented or coalesced). Fragments
 * are kept as a list and copied once, when a message is complete, so a message sent one
 * byte per record costs linear time, not quadratic.
 */
export class HandshakeAssembler {
  private parts: Buffer[] = [];
  private size = 0;

  /** True when bytes of an incomplete message are waiting. */
  get partial(): boolean {
    return this.size > 0;
  }

  /** Adds the plaintext of one handshake record. */
  push(fragment: Buffer): void {
    this.parts.push(fragment);
    this.size += fragment.length;
  }

  /** The next complete message, or undefined. */
  next(): HandshakeMessage | undefined {
    if (this.size < 4) return undefined;
    const head = this.parts[0]!.length >= 4 ? this.parts[0]! : Buffer.concat(this.parts).subarray(0, 4);
    const length = head.readUIntBE(1, 3);
    if (length > MAX_HANDSHAKE_MESSAGE) {
      throw new TlsError(
        AlertDescription.illegal_parameter,
        `handshake message of ${length} bytes is too large`,
      );
    }
    if (this.size < 4 + length) return undefined;
    const raw = this.take(4 + length);
    return { type: raw[0]! as HandshakeType, body: raw.subarray(4), raw };
  }

  /** Copies the first n bytes out and drops them (an index, not Array.shift, keeps this linear). */
  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const part = this.parts[i]!;
      const used = Math.min(part.length, n - filled);
      part.copy(out, filled, 0, used);
      filled += used;
      if (used === part.length) i++;
      else this.parts[i] = part.subarray(used);
    }
    this.parts = this.parts.slice(i);
    this.size -= n;
    return out;
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
