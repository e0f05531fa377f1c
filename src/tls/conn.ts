/**
 * TlsSocket: a stream.Duplex that speaks TLS over any transport Duplex (usually a
 * net.Socket), shaped like Node's tls.TLSSocket where callers look (authorized,
 * getPeerCertificate(), getProtocol(), getCipher(), alpnProtocol), so http, https,
 * undici and Express run on top unchanged. It owns the record layer and hands whole
 * handshake messages to the handshake code through HandshakeIO (conn_handshake.ts).
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { AlertDescription, AlertLevel, peerAlertError, TlsError } from "./alert.ts";
import { HandshakeSocket } from "./conn_handshake.ts";
import { ContentType, HandshakeType, ProtocolVersion } from "./constants.ts";
import type { HandshakeIO, HandshakeMessage, HandshakeResult } from "./handshake_io.ts";
import { fragments, openRecord, type RawRecord, RecordReader } from "./record.ts";

/** Bytes a handshaking connection buffers (unread records, early data) before pausing its transport. */
const MAX_BUFFERED = 256 * 1024;
/**
 * Records that carry nothing (ignored warning alerts, compatibility ChangeCipherSpecs, empty
 * application data, KeyUpdates, HelloRequests) accepted in a row before the peer is cut off: each
 * costs us work and, for KeyUpdate and HelloRequest, a reply, so an endless stream of them is a
 * denial of service. Application data from the peer starts the count again.
 */
const MAX_EMPTY_RECORDS = 32;

export type { HandshakeResult } from "./handshake_io.ts";

/** Runs one side's handshake over the given IO. */
export type HandshakeRunner = (io: HandshakeIO, socket: TlsSocket) => Promise<HandshakeResult>;

/** Options common to both sides. */
export interface TlsSocketOptions {
  /** Abort the handshake after this many milliseconds (default 30 s). */
  handshakeTimeout?: number;
}

/** A TLS connection as a Duplex stream of application data. */
export class TlsSocket extends HandshakeSocket {
  private readonly reader = new RecordReader();
  private earlyBytes = 0;
  private pausedForHandshake = false;
  private peerClosed = false;
  private emptyRecords = 0;
  private heldRecord: RawRecord | undefined;
  private handshaking = true;
  private readonly earlyData: Buffer[] = [];
  private readonly pendingWrites: Array<() => void> = [];
  private closeNotifySent = false;

  constructor(
    transport: Duplex,
    private readonly role: "client" | "server",
    runner: HandshakeRunner,
    options: TlsSocketOptions = {},
  ) {
    super(transport);
    transport.on("data", (chunk: Buffer) => this.onData(chunk));
    transport.on("end", () => this.onTransportEnd());
    // Transport errors (ECONNREFUSED, ECONNRESET...) pass through as they are, so callers
    // can tell a network failure from a TLS one.
    transport.on("error", (err: Error) => this.fail(err, false));
    transport.on("close", () => {
      if (!this.destroyed) this.onTransportEnd();
    });
    transport.on("timeout", () => this.emit("timeout"));
    const timer = setTimeout(() => {
      if (this.handshaking)
        this.fail(new TlsError(AlertDescription.user_canceled, "TLS handshake timed out", "closed"));
    }, options.handshakeTimeout ?? 30_000);
    timer.unref();
    queueMicrotask(() => this.runHandshake(runner).finally(() => clearTimeout(timer)));
  }

  private async runHandshake(runner: HandshakeRunner): Promise<void> {
    try {
      const result = await runner(this, this);
      if (this.failure) return;
      this.result = result;
      this.authorized = result.authorized;
      this.authorizationError = result.authorizationError;
      this.alpnProtocol = result.alpnProtocol;
      this.handshaking = false;
      this.assembler.handshakeDone();
      for (const msg of this.queue.splice(0)) this.onPostHandshake(msg);
      for (const data of this.earlyData.splice(0)) this.push(data);
      this.earlyBytes = 0;
      this.drain();
      this.flowControl();
      for (const w of this.pendingWrites.splice(0)) w();
      this.emit(this.role === "client" ? "secureConnect" : "secure");
      if (this.role === "client") this.emit("secure");
    } catch (err) {
      this.fail(err);
    }
  }

  // ---- record layer ------------------------------------------------------------------

  protected seal(type: ContentType, fragment: Buffer): Buffer {
    return this.writeProtection.seal(type, this.recordVersion, fragment);
  }

  private onData(chunk: Buffer): void {
    if (this.failure || this.destroyed) return;
    this.reader.push(chunk);
    this.drain();
    this.flowControl();
  }

  /**
   * While the handshake waits on the key handle, records pile up unread; past a bound the
   * transport is paused (and resumed once they are read), so a peer cannot fill our memory.
   */
  private flowControl(): void {
    const transport = this.transport as Socket;
    const over = this.handshaking && (this.reader.pending > MAX_BUFFERED || this.earlyBytes > MAX_BUFFERED);
    if (over && !this.pausedForHandshake) {
      this.pausedForHandshake = true;
      transport.pause?.();
    } else if (!over && this.pausedForHandshake) {
      this.pausedForHandshake = false;
      transport.resume?.();
    }
  }

  /**
   * Opens buffered records. During the handshake it stops as soon as a handshake message
   * is waiting, so a record that follows a key change is opened only after the handshake
   * code has installed the new keys (TLS 1.3 switches keys without a ChangeCipherSpec).
   */
  protected drain(needInput = false): void {
    try {
      while (!this.failure && !this.destroyed && !(this.handshaking && this.queue.length > 0)) {
        const rec = this.heldRecord ?? this.reader.next();
        this.heldRecord = undefined;
        if (!rec || this.peerClosed) return; // nothing is read after close_notify (RFC 5246 §7.2.1)
        if (this.shouldHold(rec, needInput)) {
          this.heldRecord = rec;
          return;
        }
        if (rec.type === ContentType.change_cipher_spec && this.compatCcs && this.handshaking) {
          this.refuseInterleaving(rec.type);
          // TLS 1.3 middlebox compatibility: an unprotected CCS is ignored (RFC 8446 §5).
          if (rec.body.length !== 1 || rec.body[0] !== 1)
            throw new TlsError(AlertDescription.unexpected_message, "malformed ChangeCipherSpec");
          this.countEmptyRecord("ChangeCipherSpec records");
          continue;
        }
        const { type, plaintext } = openRecord(this.readProtection, rec);
        this.onRecord(type, plaintext);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * A TLS 1.2 peer sends ChangeCipherSpec right behind the messages whose processing arms
   * its keys (ClientKeyExchange needs the key handle to decrypt, asynchronously). Until the
   * handshake has armed them, or asks for input without having done so, the record waits.
   */
  private shouldHold(rec: RawRecord, needInput: boolean): boolean {
    return (
      rec.type === ContentType.change_cipher_spec &&
      this.handshaking &&
      !this.compatCcs &&
      !this.pendingRead &&
      !needInput &&
      !this.waiter
    );
  }

  private onRecord(type: ContentType, plaintext: Buffer): void {
    this.refuseInterleaving(type);
    switch (type) {
      case ContentType.alert:
        this.onAlert(plaintext);
        return;
      case ContentType.change_cipher_spec:
        this.acceptChangeCipherSpec(plaintext);
        return;
      case ContentType.handshake: {
        if (plaintext.length === 0)
          throw new TlsError(AlertDescription.unexpected_message, "empty handshake record");
        this.assembler.push(plaintext);
        for (let m = this.assembler.next(); m; m = this.assembler.next()) {
          if (this.handshaking) this.queue.push(m);
          else this.onPostHandshake(m);
        }
        this.wake();
        return;
      }
      case ContentType.application_data:
        if (this.handshaking && !this.appDataAllowed) {
          throw new TlsError(
            AlertDescription.unexpected_message,
            "application data before the handshake finished",
          );
        }
        if (plaintext.length === 0) {
          this.countEmptyRecord("empty records");
          return;
        }
        this.emptyRecords = 0;
        if (this.handshaking) {
          this.earlyData.push(plaintext);
          this.earlyBytes += plaintext.length;
        } else if (!this.push(plaintext)) {
          (this.transport as Socket).pause?.();
        }
        return;
      default:
        throw new TlsError(AlertDescription.unexpected_message, `unexpected record type ${type}`);
    }
  }

  private onAlert(body: Buffer): void {
    if (body.length !== 2) throw new TlsError(AlertDescription.decode_error, "malformed alert");
    const [level, desc] = [body[0]!, body[1]!];
    if (desc === AlertDescription.close_notify) {
      if (this.handshaking)
        throw new TlsError(
          AlertDescription.close_notify,
          "peer closed the connection during the handshake",
          "closed",
        );
      this.peerClosed = true;
      this.push(null);
      return;
    }
    // TLS 1.3 treats every alert as fatal whatever its level (RFC 8446 §6), also while the
    // handshake is still running; before 1.3, warnings (no_renegotiation etc.) are informational.
    const tls13 =
      this.result?.version === ProtocolVersion.TLS13 || this.compatCcs || this.readProtection.tls13;
    if (level === AlertLevel.warning && desc !== AlertDescription.user_canceled && !tls13) {
      this.countEmptyRecord("warning alerts");
      return;
    }
    const explained = this.handshaking ? this.explainAlert?.(desc) : undefined;
    if (explained) {
      this.fail(explained, false);
      return;
    }
    const missingCertificate =
      desc === AlertDescription.certificate_required || (this.handshaking && this.failureHint);
    this.fail(peerAlertError(desc, this.role === "client" ? "server" : "client", missingCertificate), false);
  }

  /**
   * Handshake messages must not be interleaved with other record types (RFC 8446 §5.1; RFC 5246
   * §7.4 likewise): anything but a handshake record while part of a message waits is
   * unexpected_message, including an alert or ChangeCipherSpec.
   */
  private refuseInterleaving(type: ContentType): void {
    if (type !== ContentType.handshake && this.assembler.partial) {
      throw new TlsError(
        AlertDescription.unexpected_message,
        `record of type ${type} between the fragments of a handshake message`,
      );
    }
  }

  /** Counts a record that carried nothing; too many in a row end the connection. */
  private countEmptyRecord(what: string): void {
    if (++this.emptyRecords > MAX_EMPTY_RECORDS) {
      throw new TlsError(
        AlertDescription.unexpected_message,
        `too many ${what} in a row (more than ${MAX_EMPTY_RECORDS} without data)`,
      );
    }
  }

  private onPostHandshake(msg: HandshakeMessage): void {
    if (msg.type === HandshakeType.key_update) this.countEmptyRecord("KeyUpdate messages");
    if (this.result?.postHandshake) {
      this.result.postHandshake(msg);
      return;
    }
    // A renegotiation request (HelloRequest to a client, ClientHello to a server) before TLS 1.3
    // is refused politely with a warning and the connection carries on (RFC 5246 §7.2.2, RFC
    // 5746 §4.2); a flood of them, not.
    const renegotiation = this.role === "client" ? HandshakeType.hello_request : HandshakeType.client_hello;
    if (msg.type === renegotiation && this.result?.version !== ProtocolVersion.TLS13) {
      this.countEmptyRecord(this.role === "client" ? "HelloRequest messages" : "renegotiating ClientHellos");
      this.writeAlert(AlertLevel.warning, AlertDescription.no_renegotiation);
      return;
    }
    throw new TlsError(
      AlertDescription.unexpected_message,
      `unexpected ${HandshakeType[msg.type] ?? msg.type} after the handshake`,
    );
  }

  private writeAlert(level: AlertLevel, desc: AlertDescription): void {
    if (this.transport.destroyed || !this.transport.writable) return;
    try {
      this.transport.write(this.seal(ContentType.alert, Buffer.from([level, desc])));
    } catch {
      // Nothing more can be said on a broken transport.
    }
  }

  private onTransportEnd(): void {
    if (this.handshaking) {
      this.fail(
        new TlsError(
          AlertDescription.close_notify,
          "connection closed by peer during the TLS handshake",
          "closed",
        ),
        false,
      );
    } else {
      this.push(null);
      if (!this.destroyed) this.destroy();
    }
  }

  /** Ends the connection with an error, telling the peer with a fatal alert when we found the fault. */
  private fail(err: unknown, sendAlert = true): void {
    if (this.failure || this.destroyed) return;
    const error =
      err instanceof TlsError || (err instanceof Error && !sendAlert)
        ? err
        : new TlsError(
            AlertDescription.internal_error,
            err instanceof Error ? err.message : String(err),
            "protocol",
            { cause: err },
          );
    this.failure = error;
    if (sendAlert && error instanceof TlsError && error.kind !== "peer-alert" && error.kind !== "closed") {
      this.outbox = [];
      this.writeAlert(AlertLevel.fatal, error.alert);
    }
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(error);
    this.transport.end();
    this.destroy(error);
  }

  // ---- Duplex ------------------------------------------------------------------------

  override _read(): void {
    (this.transport as Socket).resume?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const send = () => {
      if (this.failure) return callback(this.failure);
      // The records' pieces are written as they are, corked so they leave in one writev, instead
      // of being joined into a copy.
      const pieces: Buffer[] = [];
      for (const f of fragments(chunk))
        pieces.push(...this.writeProtection.sealPieces(ContentType.application_data, this.recordVersion, f));
      this.transport.cork();
      pieces.forEach((piece, i) => {
        this.transport.write(piece, i === pieces.length - 1 ? callback : undefined);
      });
      if (pieces.length === 0) callback();
      this.transport.uncork();
    };
    if (this.handshaking) this.pendingWrites.push(send);
    else send();
  }

  override _final(callback: (error?: Error | null) => void): void {
    const finish = () => {
      if (!this.closeNotifySent && !this.failure) {
        this.closeNotifySent = true;
        this.writeAlert(AlertLevel.warning, AlertDescription.close_notify);
      }
      this.transport.end();
      callback();
    };
    if (this.handshaking) this.pendingWrites.push(finish);
    else finish();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.failure && this.handshaking)
      this.failure = error ?? new TlsError(AlertDescription.user_canceled, "socket destroyed", "closed");
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure ?? new Error("socket destroyed"));
    this.transport.destroy();
    callback(error);
  }
}
