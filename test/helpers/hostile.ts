/**
 * A raw TCP "server" for hostile-peer tests of a TLS client. It knows only the TLS record
 * framing (RFC 5246 §6.2 / RFC 8446 §5.1), nothing of our TLS code: it reads the client's first
 * handshake message (the ClientHello, possibly spread over several records), hands it to the
 * test's script, which writes whatever bytes it likes (truncated records, lying lengths, wrong
 * content types, garbage), and records everything the client sends back and how it closed.
 *
 *   const server = await hostileServer(async (conn) => {
 *     await conn.write(recordBytes(ContentType.handshake, 0x0303, handshakeBytes(2, Buffer.alloc(3))));
 *     await conn.waitForClose(5000);
 *   });
 *   t.after(() => server.close());
 *   ... point the client at server.port ...
 *   const result = await server.nextResult();
 *   assert.deepEqual(result.alerts, [{ level: 2, description: 50 }]); // fatal decode_error
 */
import net from "node:net";

/** TLS record content types. */
export const ContentType = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;

/** Common protocol versions as they appear on the wire. */
export const Version = { tls10: 0x0301, tls11: 0x0302, tls12: 0x0303 } as const;

/** One TLS record. */
export interface TlsRecord {
  type: number;
  version: number;
  payload: Buffer;
}

/** An alert as sent in clear (level 1 warning / 2 fatal; description per RFC 8446 §6). */
export interface Alert {
  level: number;
  description: number;
}

/**
 * A record: type (1 byte), version (2), length (2, from the payload), payload. The payload is
 * not checked against any limit, so an oversized record is just a large payload.
 */
export function recordBytes(type: number, version: number, payload: Uint8Array): Buffer {
  if (payload.length > 0xffff) throw new RangeError("record payload longer than a 16-bit length can say");
  return Buffer.concat([recordHeader(type, version, payload.length), payload]);
}

/** A record header alone, with any length you like (e.g. one that lies about what follows). */
export function recordHeader(type: number, version: number, length: number): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(type, 0);
  header.writeUInt16BE(version, 1);
  header.writeUInt16BE(length, 3);
  return header;
}

/** A handshake message: msg_type (1 byte), length (3, from the body), body. */
export function handshakeBytes(msgType: number, body: Uint8Array): Buffer {
  if (body.length > 0xffffff) throw new RangeError("handshake body longer than a 24-bit length can say");
  const header = Buffer.alloc(4);
  header.writeUInt8(msgType, 0);
  header.writeUIntBE(body.length, 1, 3);
  return Buffer.concat([header, body]);
}

/** An alert record payload (2 bytes). */
export function alertBytes(level: number, description: number): Buffer {
  return Buffer.from([level, description]);
}

/** Splits bytes into complete records; `rest` holds a trailing incomplete record, if any. */
export function parseRecords(bytes: Buffer): { records: TlsRecord[]; rest: Buffer } {
  const records: TlsRecord[] = [];
  let offset = 0;
  while (bytes.length - offset >= 5) {
    const length = bytes.readUInt16BE(offset + 3);
    if (bytes.length - offset - 5 < length) break;
    records.push({
      type: bytes[offset]!,
      version: bytes.readUInt16BE(offset + 1),
      payload: bytes.subarray(offset + 5, offset + 5 + length),
    });
    offset += 5 + length;
  }
  return { records, rest: bytes.subarray(offset) };
}

/** The alerts in clear among records (an encrypted alert is application data or opaque to us). */
export function alertsIn(records: readonly TlsRecord[]): Alert[] {
  return records
    .filter((r) => r.type === ContentType.alert && r.payload.length === 2)
    .map((r) => ({ level: r.payload[0]!, description: r.payload[1]! }));
}

/** How the client ended the connection: FIN, reset, or not (yet). */
export type CloseKind = "fin" | "reset" | null;

/** One client connection, as the script sees it. */
export interface HostileConnection {
  readonly socket: net.Socket;
  /** The client's first handshake message (4-byte header + body), or its first record's payload if that was not a handshake record. */
  readonly clientHello: Buffer;
  /** The raw bytes of the records that carried `clientHello`. */
  readonly firstRecords: Buffer;
  /** Writes bytes; resolves false if the client is gone. */
  write(bytes: Uint8Array): Promise<boolean>;
  /** Writes `bytes` in pieces of `chunkSize`, pausing `delayMs` between them (fragmentation tests). */
  writeSlowly(bytes: Uint8Array, chunkSize?: number, delayMs?: number): Promise<boolean>;
  /** Everything the client sent after `firstRecords`, so far. */
  received(): Buffer;
  /** Resolves with `received()` once it holds at least `n` bytes; rejects after `timeoutMs`. */
  waitForBytes(n: number, timeoutMs: number): Promise<Buffer>;
  /** Resolves with the next complete record the client sends (in order); rejects after `timeoutMs` or on close. */
  nextRecord(timeoutMs: number): Promise<TlsRecord>;
  /** Resolves with how the client closed, or null if it did not within `timeoutMs`. */
  waitForClose(timeoutMs: number): Promise<CloseKind>;
  /** Half-closes our side (sends FIN). */
  end(): void;
  /** Resets / drops the connection. */
  destroy(): void;
}

/** What happened on one connection, once it is over. */
export interface HostileResult {
  /** As in `HostileConnection`; null if the client sent no complete first message in time. */
  clientHello: Buffer | null;
  /** What the client sent after its first message. */
  received: Buffer;
  /** `received` split into complete records (a trailing partial record is left out). */
  records: TlsRecord[];
  /** Alerts in clear among `records`. */
  alerts: Alert[];
  /** How the client closed; null if it was still open when the connection was ended here. */
  clientClosed: CloseKind;
  /** The script's exception, or why no script ran, if any. */
  error?: string;
}

/** Options for `hostileServer`. */
export interface HostileOptions {
  /** How long to wait for the first message. Default 5 s. */
  helloTimeoutMs?: number;
  /** Give up on a first message larger than this. Default 64 KiB. */
  maxHelloBytes?: number;
  /** After the script returns, how long to wait for the client to close before dropping it. Default 2 s. */
  lingerMs?: number;
}

/** The listening server. */
export interface HostileServer {
  readonly host: string;
  readonly port: number;
  /** Results of finished connections, in order of finishing. */
  readonly results: HostileResult[];
  /** Resolves with the next result not yet returned by this method; rejects after `timeoutMs` (default 10 s). */
  nextResult(timeoutMs?: number): Promise<HostileResult>;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (ephemeral port) and runs `script` for each client connection. */
export async function hostileServer(
  script: (conn: HostileConnection, clientHello: Buffer) => Promise<void> | void,
  options: HostileOptions = {},
): Promise<HostileServer> {
  const results: HostileResult[] = [];
  const waiters: Array<() => void> = [];
  const sockets = new Set<net.Socket>();
  let delivered = 0;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    void handleConnection(socket, script, options).then((result) => {
      sockets.delete(socket);
      results.push(result);
      for (const w of waiters.splice(0)) w();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address() as net.AddressInfo;
  return {
    host: "127.0.0.1",
    port: address.port,
    results,
    nextResult(timeoutMs = 10_000) {
      const index = delivered++;
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (results[index]) {
            clearTimeout(timer);
            resolve(results[index]);
          } else waiters.push(check);
        };
        const timer = setTimeout(
          () => reject(new Error(`no connection finished within ${timeoutMs} ms`)),
          timeoutMs,
        );
        check();
      });
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads the first message, runs the script, lingers, and reports. */
async function handleConnection(
  socket: net.Socket,
  script: (conn: HostileConnection, clientHello: Buffer) => Promise<void> | void,
  options: HostileOptions,
): Promise<HostileResult> {
  let buffered = Buffer.alloc(0);
  let closed: CloseKind = null;
  // Our own destroy() also ends in "close"; only the client's doing counts.
  let closedHere = false;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    notify();
  });
  socket.on("end", () => {
    closed ??= "fin";
    notify();
  });
  socket.on("error", () => {
    closed ??= "reset";
    notify();
  });
  socket.on("close", () => {
    if (!closedHere) closed ??= "reset";
    notify();
  });

  /** Resolves when `ready()` returns a value, rejects on timeout or when `closed` and nothing came. */
  const waitFor = <T>(ready: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        let value: T | undefined;
        try {
          value = ready();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (value !== undefined) {
          done();
          resolve(value);
        } else if (closed) {
          done();
          reject(new Error(`client closed (${closed}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        listeners.delete(check);
      }
      listeners.add(check);
      check();
    });

  const finish = (hello: Buffer | null, skip: number, error?: string): HostileResult => {
    closedHere = true;
    socket.destroy();
    const received = buffered.subarray(skip);
    const { records } = parseRecords(received);
    const result: HostileResult = {
      clientHello: hello,
      received,
      records,
      alerts: alertsIn(records),
      clientClosed: closed,
    };
    return error === undefined ? result : { ...result, error };
  };

  const maxHello = options.maxHelloBytes ?? 65_536;
  let first: { hello: Buffer; length: number };
  try {
    first = await waitFor(
      () => {
        if (buffered.length > maxHello) throw new Error(`first message larger than ${maxHello} bytes`);
        return firstMessage(buffered);
      },
      options.helloTimeoutMs ?? 5000,
      "first message from the client",
    );
  } catch (err) {
    return finish(null, 0, err instanceof Error ? err.message : String(err));
  }

  const skip = first.length;
  let recordOffset = skip;
  const conn: HostileConnection = {
    socket,
    clientHello: first.hello,
    firstRecords: buffered.subarray(0, skip),
    write: (bytes) =>
      new Promise((resolve) => {
        if (socket.destroyed || !socket.writable) return resolve(false);
        socket.write(bytes, (err) => resolve(!err));
      }),
    async writeSlowly(bytes, chunkSize = 1, delayMs = 1) {
      for (let i = 0; i < bytes.length; i += chunkSize) {
        if (!(await conn.write(bytes.subarray(i, i + chunkSize)))) return false;
        await new Promise((r) => setTimeout(r, delayMs));
      }
      return true;
    },
    received: () => buffered.subarray(skip),
    waitForBytes: (n, timeoutMs) =>
      waitFor(
        () => (buffered.length - skip >= n ? buffered.subarray(skip) : undefined),
        timeoutMs,
        `${n} bytes`,
      ),
    nextRecord: (timeoutMs) =>
      waitFor(
        () => {
          const record = parseRecords(buffered.subarray(recordOffset)).records[0];
          if (record) recordOffset += 5 + record.payload.length;
          return record;
        },
        timeoutMs,
        "record",
      ),
    waitForClose: (timeoutMs) => waitFor(() => closed ?? undefined, timeoutMs, "close").catch(() => closed),
    end: () => socket.end(),
    destroy: () => {
      closedHere = true;
      socket.destroy();
    },
  };

  let error: string | undefined;
  try {
    await script(conn, first.hello);
  } catch (err) {
    error = `script failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  await conn.waitForClose(options.lingerMs ?? 2000);
  return finish(first.hello, skip, error);
}

/**
 * The first handshake message and how many bytes of records carried it, once complete. If the
 * first record is not a handshake record, that record's payload is the "message".
 */
function firstMessage(bytes: Buffer): { hello: Buffer; length: number } | undefined {
  let message = Buffer.alloc(0);
  let offset = 0;
  while (bytes.length - offset >= 5) {
    const type = bytes[offset]!;
    const length = bytes.readUInt16BE(offset + 3);
    if (bytes.length - offset - 5 < length) return undefined;
    const payload = bytes.subarray(offset + 5, offset + 5 + length);
    offset += 5 + length;
    if (type !== ContentType.handshake) {
      return message.length === 0 ? { hello: Buffer.from(payload), length: offset } : undefined;
    }
    message = Buffer.concat([message, payload]);
    if (message.length >= 4) {
      const total = 4 + message.readUIntBE(1, 3);
      if (message.length >= total) return { hello: message.subarray(0, total), length: offset };
    }
  }
  return undefined;
}
