/**
 * A handshake's messages in both directions: HandshakeIO with the transcript attached.
 * Every message read or written goes into the transcript here, in wire order, so no
 * handshake step records a message by hand (as Go's readHandshake(transcript) does).
 */
import type { HandshakeType } from "./constants.ts";
import { checkFinished, expectType, type HandshakeIO, type HandshakeMessage } from "./handshake_io.ts";
import { Transcript } from "./transcript.ts";

/** Reads and writes handshake messages, recording each in {@link transcript}. */
export class HandshakeChannel {
  /** Every handshake message of this handshake so far. */
  readonly transcript = new Transcript();

  constructor(
    /** The connection, for what is not a transcript message (keys, ChangeCipherSpec, tickets). */
    readonly io: HandshakeIO,
  ) {}

  /** The peer's next handshake message, whatever its type, recorded. */
  async read(): Promise<HandshakeMessage> {
    const msg = await this.io.readMessage();
    this.transcript.add(msg.raw);
    return msg;
  }

  /** The peer's next handshake message, which must be one of `types` (else unexpected_message). */
  async expect(...types: HandshakeType[]): Promise<HandshakeMessage> {
    const msg = await this.read();
    expectType(msg, ...types);
    return msg;
  }

  /** Queues a handshake message and records it. */
  write(type: HandshakeType, body: Buffer): void {
    this.transcript.add(this.io.writeMessage(type, body));
  }

  /** Reads the peer's Finished and checks it against the verify_data we expect (see {@link checkFinished}). */
  async readFinished(expected: Buffer, peer: "client" | "server"): Promise<void> {
    checkFinished(await this.read(), expected, peer);
  }
}
