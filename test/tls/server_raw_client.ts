/**
 * A hostile raw TLS 1.1/1.2 client for server tests, built from hsmkit's own codecs, PRF
 * and record protection rather than its handshake: it sends exactly the bytes a test
 * asks for (bad RSA padding, wrong premaster versions, malformed or fragmented messages)
 * and records everything the server answers, including how it closed.
 */
import { constants, publicEncrypt, randomBytes, X509Certificate } from "node:crypto";
import net from "node:net";
import { openKey } from "../../src/keys/index.ts";
import { suiteById } from "../../src/tls/cipher_suites.ts";
import { ContentType, ExtensionType, HandshakeType } from "../../src/tls/constants.ts";
import { u16ListExtension } from "../../src/tls/extensions.ts";
import { HandshakeAssembler, type HandshakeMessage } from "../../src/tls/handshake_io.ts";
import {
  decodeCertificate12,
  decodeServerHello,
  type Extension,
  encodeClientHello,
  encodeRsaClientKeyExchange,
  frameHandshake,
  type ServerHello,
} from "../../src/tls/messages.ts";
import { finishedData, keyBlock, masterSecret, transcriptHash } from "../../src/tls/prf.ts";
import {
  keyBlockLayout,
  protectionFor,
  type RecordProtection,
  splitKeyBlock,
} from "../../src/tls/protection.ts";
import { createServer, type TlsServerOptions } from "../../src/tls/server.ts";
import { parseRecords, recordBytes, type TlsRecord } from "../helpers/hostile.ts";
import { makePki, type Pki } from "../helpers/pki.ts";

/** A raw TCP connection that speaks records and remembers what the server sent. */
export class RawConnection {
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  /** How the server ended the connection, once it has. */
  closed: "fin" | "reset" | undefined;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on("end", () => {
      this.closed ??= "fin";
      this.wake();
    });
    socket.on("error", () => {
      this.closed ??= "reset";
      this.wake();
    });
    socket.on("close", () => {
      this.closed ??= "fin";
      this.wake();
    });
  }

  /** Connects to 127.0.0.1:port. */
  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
      socket.once("connect", () => resolve(new RawConnection(socket)));
      socket.once("error", reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Sends raw bytes. */
  send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** Everything the server has sent so far. */
  received(): Buffer {
    return this.buffer;
  }

  /** The server's complete records so far. */
  records(): TlsRecord[] {
    return parseRecords(this.buffer).records;
  }

  /** Waits until `ready()` holds or the server closes; false on timeout. */
  async until(ready: () => boolean, timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.closed || Date.now() > deadline) return ready();
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.max(1, deadline - Date.now())).unref();
      });
    }
    return true;
  }

  /** Waits for the server to close (or timeout) and returns all it sent. */
  async finish(timeoutMs = 10_000): Promise<{ bytes: Buffer; closed: "fin" | "reset" | undefined }> {
    await this.until(() => this.closed !== undefined, timeoutMs);
    return { bytes: this.buffer, closed: this.closed };
  }

  /** Closes our side. */
  destroy(): void {
    this.socket.destroy();
  }
}

/** What goes into a test ClientHello. */
export interface HelloOptions {
  version?: number;
  suites: number[];
  extensions?: Extension[];
  sessionId?: Buffer;
  compression?: number[];
  random?: Buffer;
}

/** The default extensions: signature_algorithms and supported_groups a real client would send. */
export function defaultExtensions(): Extension[] {
  return [
    u16ListExtension(ExtensionType.signature_algorithms, [0x0804, 0x0401, 0x0403]),
    u16ListExtension(ExtensionType.supported_groups, [29, 23]),
  ];
}

/** A ClientHello handshake message (header + body). */
export function clientHello(opts: HelloOptions): Buffer {
  const body = encodeClientHello({
    version: opts.version ?? 0x0303,
    random: opts.random ?? randomBytes(32),
    sessionId: opts.sessionId ?? Buffer.alloc(0),
    cipherSuites: opts.suites,
    compressionMethods: opts.compression ?? [0],
    extensions: opts.extensions ?? defaultExtensions(),
  });
  return frameHandshake(HandshakeType.client_hello, body);
}

/** A handshake record (plaintext) carrying the given messages. */
export function handshakeRecord(messages: Buffer, version = 0x0303): Buffer {
  return recordBytes(ContentType.handshake, version, messages);
}

/** Decodes the plaintext handshake messages among records. */
export function handshakeMessages(records: readonly TlsRecord[]): HandshakeMessage[] {
  const assembler = new HandshakeAssembler();
  const out: HandshakeMessage[] = [];
  for (const r of records) {
    if (r.type !== ContentType.handshake) break;
    assembler.push(Buffer.from(r.payload));
    for (let m = assembler.next(); m; m = assembler.next()) out.push(m);
  }
  return out;
}

/** How the raw client builds its RSA ClientKeyExchange. */
export type PremasterMode =
  /** A correct premaster with the ClientHello version, PKCS#1 v1.5 padded: the handshake succeeds. */
  | "good"
  /** Block type 1 instead of 2: the key handle's decryption fails. */
  | "bad-padding"
  /** A correctly padded premaster, but the client derives its keys from a different one. */
  | "wrong-premaster"
  /** A correctly padded premaster whose version bytes are 03 01, used by the client as is. */
  | "wrong-version"
  /** A correctly padded 47-byte premaster, used by the client as is. */
  | "wrong-length"
  /** A good premaster, but a Finished of 11 bytes instead of 12. */
  | "short-finished";

/** The result of a raw RSA-key-exchange handshake attempt. */
export interface RsaAttempt {
  conn: RawConnection;
  serverHello: ServerHello;
  /** Everything the server sent after its first flight, until it closed or finished. */
  answer: Buffer;
  /** The client's read and write states, for talking on after a good handshake. */
  read: RecordProtection;
  write: RecordProtection;
}

function pkcs1Block(k: number, type: 1 | 2, message: Buffer): Buffer {
  // Type 1 pads with 0xff, type 2 with random non-zero bytes.
  const pad = type === 1 ? Buffer.alloc(k - 3 - message.length, 0xff) : randomBytes(k - 3 - message.length);
  for (let i = 0; i < pad.length; i++) if (pad[i] === 0) pad[i] = 1;
  return Buffer.concat([Buffer.from([0, type]), pad, Buffer.from([0]), message]);
}

/**
 * Runs a TLS 1.2 (or 1.1) RSA-key-exchange handshake against the server at `port`, with
 * the ClientKeyExchange built as `mode` says, then sends ChangeCipherSpec and a Finished
 * computed from the premaster the client believes in, and collects the server's answer.
 */
export async function rsaHandshake(
  port: number,
  mode: PremasterMode,
  version = 0x0303,
  /** Send ChangeCipherSpec + Finished this many ms after ClientKeyExchange, in a separate segment. */
  splitMs?: number,
): Promise<RsaAttempt> {
  const suiteId = version >= 0x0303 ? 0x003c : 0x002f;
  const suite = suiteById(suiteId)!;
  const conn = await RawConnection.open(port);
  const random = randomBytes(32);
  const hello = clientHello({ version, suites: [suiteId], random });
  conn.send(handshakeRecord(hello, 0x0301));
  const done = (msgs: HandshakeMessage[]) => msgs.some((m) => m.type === HandshakeType.server_hello_done);
  if (!(await conn.until(() => done(handshakeMessages(conn.records())))))
    throw new Error(`no ServerHelloDone: ${conn.received().toString("hex")}`);
  const flight = handshakeMessages(conn.records());
  const flightBytes = conn.received().length;
  const sh = decodeServerHello(flight[0]!.body);
  const leaf = decodeCertificate12(flight.find((m) => m.type === HandshakeType.certificate)!.body)[0]!;
  const serverKey = new X509Certificate(leaf).publicKey;
  const k = (serverKey.asymmetricKeyDetails?.modulusLength ?? 2048) / 8;

  const versionBytes = Buffer.from([version >> 8, version & 0xff]);
  let sent = Buffer.concat([versionBytes, randomBytes(46)]);
  let believed = sent;
  let padding: 1 | 2 = 2;
  if (mode === "bad-padding") padding = 1;
  if (mode === "wrong-premaster") believed = Buffer.concat([versionBytes, randomBytes(46)]);
  if (mode === "wrong-version") believed = sent = Buffer.concat([Buffer.from([3, 1]), randomBytes(46)]);
  if (mode === "wrong-length") believed = sent = Buffer.concat([versionBytes, randomBytes(45)]);
  const encrypted = publicEncrypt(
    { key: serverKey, padding: constants.RSA_NO_PADDING },
    pkcs1Block(k, padding, sent),
  );

  const transcript = [hello, ...flight.map((m) => m.raw)];
  const cke = frameHandshake(HandshakeType.client_key_exchange, encodeRsaClientKeyExchange(encrypted));
  transcript.push(cke);
  const prfHash = version >= 0x0303 ? suite.prfHash : "md5-sha1";
  const master = masterSecret(prfHash, believed, random, sh.random, undefined);
  const [m, kl, i] = keyBlockLayout(suite);
  const keys = splitKeyBlock(suite, keyBlock(prfHash, master, random, sh.random, 2 * (m + kl + i)));
  const write = protectionFor(suite, keys.client, false);
  const read = protectionFor(suite, keys.server, false);
  const finished = frameHandshake(
    HandshakeType.finished,
    finishedData(prfHash, master, "client", transcriptHash(prfHash, transcript)).subarray(
      0,
      mode === "short-finished" ? 11 : undefined,
    ),
  );
  const sealedFinished = write.seal(ContentType.handshake, version, finished).subarray(5); // seal returns a whole record
  const ccsAndFinished = Buffer.concat([
    recordBytes(ContentType.change_cipher_spec, version, Buffer.from([1])),
    recordBytes(ContentType.handshake, version, sealedFinished),
  ]);
  if (splitMs === undefined) {
    conn.send(Buffer.concat([handshakeRecord(cke, version), ccsAndFinished]));
  } else {
    conn.socket.setNoDelay(true);
    conn.send(handshakeRecord(cke, version));
    await new Promise((r) => setTimeout(r, splitMs));
    conn.send(ccsAndFinished);
  }
  // A good handshake ends with the server's ChangeCipherSpec + Finished; a bad one with a close.
  await conn.until(() => {
    const after = parseRecords(conn.received().subarray(flightBytes)).records;
    return after.some((r) => r.type === ContentType.handshake);
  });
  return { conn, serverHello: sh, answer: conn.received().subarray(flightBytes), read, write };
}

/** A server for raw-client tests, and how to stop it. */
export interface RawClientTarget {
  pki: Pki;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts an hsmkit TLS server on 127.0.0.1 with the test PKI's RSA server key: it answers the
 * first data it receives with "echo:" + that data and closes; handshake failures are ignored.
 */
export async function rawClientTarget(options: Partial<TlsServerOptions> = {}): Promise<RawClientTarget> {
  const pki = await makePki();
  const key = await openKey(pki.server.keyPath);
  const server = createServer({ cert: pki.server.chainPem, key, ...options });
  server.on("secureConnection", (s) => {
    s.on("error", () => {});
    s.on("data", (d: Buffer) => s.end(`echo:${d}`));
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    pki,
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await key.close();
    },
  };
}
