/**
 * The transport a server TlsSocket reads through. A TLS 1.2 client sends Certificate,
 * ClientKeyExchange, CertificateVerify, ChangeCipherSpec and its encrypted Finished in one
 * flight, usually one TCP segment, but the server can arm the keys that ChangeCipherSpec
 * switches to only after the key handle has answered (an RSA decryption or an ECDH on
 * ClientKeyExchange). The record layer processes a segment in one go and refuses a
 * ChangeCipherSpec that arrives before its keys, so this stream holds incoming bytes at
 * a ChangeCipherSpec record while the handshake is busy (with the key handle), passes it
 * on when the handshake waits for input (so an early one is refused at once), and becomes
 * a plain pass-through once the handshake has armed the next read state. Everything else
 * is the TCP socket's.
 */
import type { AddressInfo, Socket } from "node:net";
import { Duplex } from "node:stream";
import { ContentType } from "./constants.ts";

/** The most bytes held back while waiting for the handshake (a client flight is far smaller). */
const MAX_HELD = 256 * 1024;

/** A net.Socket look-alike that can hold back records from a ChangeCipherSpec on. */
export class ServerTransport extends Duplex {
  private held: Buffer = Buffer.alloc(0);
  /** Bytes of the current record still to pass before the next record header. */
  private skip = 0;
  private gated = true;
  private stopped = false;
  private ended = false;
  /** The handshake is blocked waiting for input. */
  private waiting = false;
  /** Kept from the start: a destroyed net.Socket forgets its peer, but error reports still need it. */
  private readonly peer: { address?: string; port?: number; family?: string };

  constructor(readonly socket: Socket) {
    super({ allowHalfOpen: false });
    this.peer = { address: socket.remoteAddress, port: socket.remotePort, family: socket.remoteFamily };
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => {
      this.ended = true;
      if (!this.stopped) this.push(null);
    });
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
    socket.on("timeout", () => this.emit("timeout"));
  }

  /** Lets everything through from now on: the handshake has armed the keys a ChangeCipherSpec needs. */
  open(): void {
    if (!this.gated) return;
    this.gated = false;
    this.stopped = false;
    const held = this.held;
    this.held = Buffer.alloc(0);
    if (held.length > 0) this.deliver(held);
    if (this.ended) this.push(null);
  }

  /**
   * Tells the gate whether the handshake is blocked waiting for input. While it is, nothing
   * is held: the record layer must see a ChangeCipherSpec (and refuse it if it is early).
   * Once the handshake is busy again, a later ChangeCipherSpec is held again.
   */
  setWaiting(waiting: boolean): void {
    this.waiting = waiting;
    if (waiting) this.passHeld();
  }

  private passHeld(): void {
    if (!this.gated || !this.stopped) return;
    this.stopped = false;
    const held = this.held;
    this.held = Buffer.alloc(0);
    this.scan(held, true);
    if (this.ended && !this.stopped) this.push(null);
  }

  private onData(chunk: Buffer): void {
    if (!this.gated) {
      this.deliver(chunk);
      return;
    }
    if (this.stopped) {
      this.held = Buffer.concat([this.held, chunk]);
      if (this.held.length > MAX_HELD)
        this.destroy(new Error("client sent too much before its keys were set"));
      return;
    }
    this.scan(this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk, false);
  }

  /** Delivers whole records up to the next ChangeCipherSpec (past the first one when `passFirst`). */
  private scan(buf: Buffer, passFirst: boolean): void {
    let pass = passFirst;
    let i = 0;
    for (;;) {
      const step = Math.min(this.skip, buf.length - i);
      i += step;
      this.skip -= step;
      if (this.skip > 0 || buf.length - i < 5) break;
      if (buf[i] === ContentType.change_cipher_spec && !this.waiting) {
        if (!pass) {
          this.stopped = true;
          break;
        }
        pass = false;
      }
      this.skip = 5 + buf.readUInt16BE(i + 3);
    }
    this.held = Buffer.from(buf.subarray(i));
    if (i > 0) this.deliver(buf.subarray(0, i));
  }

  private deliver(data: Buffer): void {
    if (!this.push(data)) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    // Corked writes from the record layer leave in one go.
    this.socket.cork();
    chunks.forEach(({ chunk }, i) => {
      this.socket.write(chunk, i === chunks.length - 1 ? callback : undefined);
    });
    this.socket.uncork();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }

  /** The TCP socket's remote address. */
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress ?? this.peer.address;
  }

  /** The TCP socket's remote port. */
  get remotePort(): number | undefined {
    return this.socket.remotePort ?? this.peer.port;
  }

  /** The TCP socket's remote address family. */
  get remoteFamily(): string | undefined {
    return this.socket.remoteFamily ?? this.peer.family;
  }

  /** The TCP socket's local address. */
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  /** The TCP socket's local port. */
  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  /** The TCP socket's address(). */
  address(): AddressInfo | Record<string, never> {
    return this.socket.address();
  }

  /** Passes through to the TCP socket. */
  setTimeout(ms: number, callback?: () => void): this {
    this.socket.setTimeout(ms);
    if (callback) this.once("timeout", callback);
    return this;
  }

  /** Passes through to the TCP socket. */
  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }

  /** Passes through to the TCP socket. */
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }

  /** Passes through to the TCP socket. */
  ref(): this {
    this.socket.ref();
    return this;
  }

  /** Passes through to the TCP socket. */
  unref(): this {
    this.socket.unref();
    return this;
  }
}
