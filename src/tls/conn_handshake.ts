/**
 * The handshake's side of a TlsSocket: the HandshakeIO it offers the handshake code. Whole
 * handshake messages queue here as the record layer assembles them, handshake messages and
 * ChangeCipherSpec queue for sending, and the record protections change when the handshake
 * says so. TlsSocket (conn.ts) adds the record intake, the Duplex and failure handling.
 */
import { AlertDescription, TlsError } from "./alert.ts";
import { ContentType, HandshakeType, ProtocolVersion } from "./constants.ts";
import { HandshakeAssembler, type HandshakeIO, type HandshakeMessage } from "./handshake_io.ts";
import { frameHandshake } from "./messages.ts";
import { NULL_PROTECTION, type RecordProtection } from "./protection.ts";
import { fragments } from "./record.ts";
import { SocketFace } from "./socket_face.ts";

/** The HandshakeIO half of a TLS connection; the record layer half extends it. */
export abstract class HandshakeSocket extends SocketFace implements HandshakeIO {
  protected readonly assembler = new HandshakeAssembler();
  protected readProtection: RecordProtection = NULL_PROTECTION;
  protected writeProtection: RecordProtection = NULL_PROTECTION;
  protected pendingRead: RecordProtection | undefined;
  protected recordVersion: number = ProtocolVersion.TLS10;
  /** Handshake messages received and not yet read by the handshake. */
  protected readonly queue: HandshakeMessage[] = [];
  /** The handshake waiting for a message or ChangeCipherSpec. */
  protected waiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  protected ccsSeen = false;
  protected compatCcs = false;
  protected appDataAllowed = false;
  protected failureHint = false;
  protected explainAlert: ((alert: AlertDescription) => TlsError | undefined) | undefined;
  /** Sealed records waiting for flush(). */
  protected outbox: Buffer[] = [];
  /** Handshake messages written and not yet sealed into records. */
  protected handshakeOut: Buffer[] = [];
  protected failure: Error | undefined;

  /** Protects one record with the current write protection. */
  protected abstract seal(type: ContentType, fragment: Buffer): Buffer;
  /** Opens buffered records; with `needInput`, also a ChangeCipherSpec held back for the handshake. */
  protected abstract drain(needInput?: boolean): void;

  readMessage(): Promise<HandshakeMessage> {
    if (this.queue.length === 0) this.drain(true);
    const next = this.queue.shift();
    // From the peer's Finished on, its application data may follow (and waits for the handshake
    // to complete before delivery); before it, application data is a protocol violation.
    if (next?.type === HandshakeType.finished) this.appDataAllowed = true;
    if (next) return Promise.resolve(next);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.waiter = { resolve, reject };
    }).then(() => this.readMessage());
  }

  writeMessage(type: HandshakeType, body: Buffer): Buffer {
    const raw = frameHandshake(type, body);
    this.handshakeOut.push(raw);
    return raw;
  }

  writeChangeCipherSpec(next: RecordProtection): void {
    this.sealHandshake();
    this.outbox.push(this.seal(ContentType.change_cipher_spec, Buffer.from([1])));
    this.writeProtection = next;
  }

  setWriteProtection(next: RecordProtection): void {
    this.sealHandshake();
    this.writeProtection = next;
  }

  setPendingRead(next: RecordProtection): void {
    this.pendingRead = next;
    this.ccsSeen = false;
  }

  setReadProtection(next: RecordProtection): void {
    // A key change must fall on a record boundary with nothing else of that record left (RFC 8446 §5.1).
    if (this.assembler.partial || this.queue.length > 0) {
      throw new TlsError(AlertDescription.unexpected_message, "handshake message spans a key change");
    }
    this.readProtection = next;
  }

  async readChangeCipherSpec(): Promise<void> {
    this.drain(true);
    while (!this.ccsSeen) {
      if (this.queue.length > 0) {
        throw new TlsError(
          AlertDescription.unexpected_message,
          "handshake message where ChangeCipherSpec was expected",
        );
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve, reject) => {
        this.waiter = { resolve, reject };
      });
    }
  }

  flush(): Promise<void> {
    this.sealHandshake();
    const data = Buffer.concat(this.outbox);
    this.outbox = [];
    if (data.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.transport.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  setRecordVersion(version: number): void {
    this.recordVersion = version;
  }

  explainPeerAlert(explain: ((alert: AlertDescription) => TlsError | undefined) | undefined): void {
    this.explainAlert = explain;
  }

  expectRefusalForMissingCertificate(): void {
    this.failureHint = true;
  }

  allowCompatChangeCipherSpec(): void {
    this.compatCcs = true;
  }

  /** Takes a ChangeCipherSpec record: the pending read protection (TLS 1.2) comes into force. */
  protected acceptChangeCipherSpec(body: Buffer): void {
    if (body.length !== 1 || body[0] !== 1)
      throw new TlsError(AlertDescription.decode_error, "malformed ChangeCipherSpec");
    if (!this.pendingRead || this.assembler.partial) {
      throw new TlsError(AlertDescription.unexpected_message, "unexpected ChangeCipherSpec");
    }
    this.readProtection = this.pendingRead;
    this.pendingRead = undefined;
    this.ccsSeen = true;
    this.wake();
  }

  protected sealHandshake(): void {
    if (this.handshakeOut.length === 0) return;
    const all = Buffer.concat(this.handshakeOut);
    this.handshakeOut = [];
    for (const f of fragments(all)) this.outbox.push(this.seal(ContentType.handshake, f));
  }

  protected wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve();
  }
}
