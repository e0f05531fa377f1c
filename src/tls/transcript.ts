/**
 * The handshake transcript (RFC 8446 §4.4.1, RFC 5246 §7.4.9): every handshake message of
 * the handshake, in order, as running hashes. The hash is not known until the ServerHello
 * chooses a cipher suite, so messages are buffered until then and hashed once; after that
 * each message updates the running hash, and a digest is taken from a copy, so nothing is
 * hashed twice. The message bytes themselves are kept only as long as someone may need
 * them: a TLS 1.1/1.2 CertificateVerify signs the messages, not a digest of them.
 */
import { createHash, type Hash } from "node:crypto";
import { AlertDescription, fail } from "./alert.ts";
import { HandshakeType } from "./constants.ts";
import type { PrfHash } from "./prf.ts";

/** The transcript hash: a TLS 1.2/1.3 suite's hash, or the MD5||SHA-1 pair of TLS 1.0/1.1 (as the PRF's). */
export type TranscriptHash = PrfHash;

/** The node:crypto hashes that run for a transcript hash (two for MD5||SHA-1). */
function algorithmsOf(hash: TranscriptHash): string[] {
  return hash === "md5-sha1" ? ["md5", "sha1"] : [hash];
}

/** Hashes `parts` as one input with `hash` (MD5||SHA-1 concatenates the two digests). */
function digestOf(hash: TranscriptHash, parts: readonly Buffer[]): Buffer {
  return Buffer.concat(
    algorithmsOf(hash).map((a) => {
      const h = createHash(a);
      for (const p of parts) h.update(p);
      return h.digest();
    }),
  );
}

/** A transcript used out of order: a bug of ours, never the peer's doing. */
function internal(message: string): never {
  fail(AlertDescription.internal_error, `transcript: ${message}`);
}

/** The handshake messages so far, as running hashes and, while needed, as bytes. */
export class Transcript {
  /** The chosen hash; undefined until {@link useHash}. */
  private algorithm: TranscriptHash | undefined;
  /** The running hashes, once the hash is chosen. */
  private running: Hash[] = [];
  /** The messages, in order, until {@link releaseMessages}. */
  private kept: Buffer[] | undefined = [];

  /** Adds one framed handshake message (4-byte header and body). */
  add(message: Buffer): void {
    for (const h of this.running) h.update(message);
    this.kept?.push(message);
  }

  /** The hash chosen, if any. */
  get hashName(): TranscriptHash | undefined {
    return this.algorithm;
  }

  /** Chooses the hash (once the cipher suite is known) and hashes what was buffered. */
  useHash(hash: TranscriptHash): void {
    if (this.algorithm !== undefined) internal(`the transcript hash is already ${this.algorithm}`);
    if (this.kept === undefined) internal("the transcript messages were released before a hash was chosen");
    this.algorithm = hash;
    this.running = algorithmsOf(hash).map((a) => createHash(a));
    for (const m of this.kept) for (const h of this.running) h.update(m);
  }

  /** Hash(messages so far), from copies of the running hashes. */
  hash(): Buffer {
    return Buffer.concat(this.runningHashes().map((h) => h.copy().digest()));
  }

  /**
   * Hash(messages so far + `extra`) without adding `extra`: the PSK binder's hash over the
   * transcript and the truncated ClientHello (RFC 8446 §4.2.11.2). Before a hash is chosen,
   * `hash` names the one to use over the buffered messages.
   */
  hashWith(extra: Buffer, hash: TranscriptHash): Buffer {
    if (this.algorithm === undefined) return digestOf(hash, [...this.messages(), extra]);
    if (this.algorithm !== hash) internal(`the transcript hash is ${this.algorithm}, not ${hash}`);
    return Buffer.concat(this.running.map((h) => h.copy().update(extra).digest()));
  }

  /**
   * After a HelloRetryRequest, ClientHello1 is replaced by the synthetic message_hash
   * message carrying Hash(ClientHello1) (RFC 8446 §4.4.1). The hash must be chosen and the
   * messages kept; every message after ClientHello1 stays as it was.
   */
  replaceWithMessageHash(): void {
    const [clientHello1, ...rest] = this.messages();
    const hash = this.algorithm;
    if (!clientHello1 || hash === undefined || hash === "md5-sha1")
      internal("message_hash needs a TLS 1.3 hash and the first ClientHello");
    const digest = digestOf(hash, [clientHello1]);
    const synthetic = Buffer.concat([Buffer.from([HandshakeType.message_hash, 0, 0, digest.length]), digest]);
    this.kept = [];
    this.running = algorithmsOf(hash).map((a) => createHash(a));
    for (const m of [synthetic, ...rest]) this.add(m);
  }

  /** The messages so far, joined, while they are kept (a TLS 1.1/1.2 CertificateVerify signs them). */
  bytes(): Buffer {
    return Buffer.concat(this.messages());
  }

  /** Stops keeping the message bytes: nothing that follows needs more than the hash. */
  releaseMessages(): void {
    if (this.algorithm === undefined) internal("releasing the transcript messages before a hash is chosen");
    this.kept = undefined;
  }

  /** A copy of this transcript's state, which the original's later messages do not change. */
  snapshot(): Transcript {
    const copy = new Transcript();
    copy.algorithm = this.algorithm;
    copy.running = this.running.map((h) => h.copy());
    copy.kept = this.kept ? [...this.kept] : undefined;
    return copy;
  }

  private messages(): readonly Buffer[] {
    if (this.kept === undefined) internal("the transcript messages were released");
    return this.kept;
  }

  private runningHashes(): Hash[] {
    if (this.algorithm === undefined) internal("the transcript hash is not chosen yet");
    return this.running;
  }
}
