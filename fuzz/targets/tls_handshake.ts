/**
 * Whole handshakes against a hostile peer: a real hsmkit server (mutual TLS, every version,
 * RSA and ECDHE suites, tickets, ALPN) takes the fuzzed bytes as a client's flight over TCP on
 * 127.0.0.1, and a real hsmkit client takes them as a server's flight. Each connection must end
 * with a TlsError or a transport error (never another exception, never a hang), and when we
 * detected a protocol violation the peer must have received our alert for it.
 */
import net, { type AddressInfo, type Socket } from "node:net";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { TlsError } from "../../src/tls/alert.ts";
import { connect } from "../../src/tls/client.ts";
import { TlsSocket } from "../../src/tls/conn.ts";
import { ContentType } from "../../src/tls/constants.ts";
import { serverHandshake } from "../../src/tls/handshake_server.ts";
import { RecordReader } from "../../src/tls/record.ts";
import { serverConfig } from "../../src/tls/server.ts";
import type { FuzzTarget } from "../target.ts";

/** A transport failure (the fuzzing peer closed or reset): as legitimate as a TlsError. */
function isTransportError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string";
}

const handshakeExpected = (err: unknown): boolean => err instanceof TlsError || isTransportError(err);

/**
 * Whether the last record the peer received can be the alert for `alert`: a plaintext alert
 * with that description, or a protected record (an encrypted alert: TLS 1.2 after
 * ChangeCipherSpec, or TLS 1.3's application_data wrapping) whose content we cannot see.
 */
function endsWithAlert(bytes: Buffer, alert: number): boolean {
  const reader = new RecordReader();
  reader.push(bytes);
  let last: { type: number; body: Buffer } | undefined;
  try {
    for (let r = reader.next(); r; r = reader.next()) last = r;
  } catch {
    return false;
  }
  if (last?.type === ContentType.application_data) return true;
  if (last?.type !== ContentType.alert) return false;
  return last.body.length !== 2 || last.body[1] === alert;
}

/** Waits for our TLS socket to close and returns the error it failed with, if any. */
function outcome(tls: TlsSocket): Promise<unknown> {
  return new Promise((resolve) => {
    let failure: unknown;
    tls.on("error", (err) => {
      failure ??= err;
    });
    tls.once("close", () => resolve(failure));
    tls.resume();
  });
}

/**
 * Checks one connection's end: untyped errors are rethrown; a protocol failure we detected
 * must have put its alert on the wire (RFC 8446 §6.2: send the alert, then close).
 */
function judge(failure: unknown, received: Received): void {
  if (failure === undefined) return;
  if (!handshakeExpected(failure)) throw failure;
  if (failure instanceof TlsError && failure.kind === "protocol" && !received.reset) {
    if (!endsWithAlert(received.bytes, failure.alert))
      throw new Error(
        `failed with '${failure.message}' (alert ${failure.alert}) but the peer received no such alert`,
      );
  }
  throw failure;
}

/** What the fuzzing peer got back: the bytes, and whether the connection was reset. */
interface Received {
  bytes: Buffer;
  /**
   * A reset (the endpoint closed with our bytes still unread) may discard data in flight, the
   * alert included: TCP, not TLS, so the alert is only required on connections that were not reset.
   */
  reset: boolean;
}

/** Sends `input` (then FIN) over a fresh connection and collects what comes back until close. */
function exchange(socket: Socket, input: Buffer): Promise<Received> {
  const chunks: Buffer[] = [];
  let reset = false;
  socket.on("data", (c: Buffer) => chunks.push(c));
  socket.on("error", () => {
    reset = true;
  });
  socket.end(input);
  return new Promise((resolve) =>
    socket.once("close", () => resolve({ bytes: Buffer.concat(chunks), reset })),
  );
}

async function listen(onConnection: (s: Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

const portOf = (s: net.Server): number => (s.address() as AddressInfo).port;

const SERVER_CIPHERS =
  "TLS_AES_128_GCM_SHA256,TLS_CHACHA20_POLY1305_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256," +
  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA";

const server: FuzzTarget = {
  name: "tls-server-handshake",
  about: "a real hsmkit server (1.1-1.3, mTLS, RSA/ECDHE, tickets, ALPN) reading a client's flight",
  async prepare(corpus) {
    const key = await openKey(corpus.peers.serverKeyPath);
    const cfg = serverConfig({
      cert: corpus.peers.serverChainPem,
      key,
      clientCa: corpus.peers.caPem,
      rejectUnauthorized: false,
      minVersion: "1.1",
      ciphers: SERVER_CIPHERS,
      ALPNProtocols: ["h2", "http/1.1"],
    });
    let pending: ((tls: TlsSocket) => void) | undefined;
    const tcp = await listen((raw) => {
      const tls = new TlsSocket(raw, "server", (io) => serverHandshake(io, cfg), { handshakeTimeout: 5000 });
      pending?.(tls);
    });
    return {
      seeds: corpus.clientFlights,
      expected: handshakeExpected,
      async run(input: Buffer) {
        const accepted = new Promise<TlsSocket>((resolve) => {
          pending = resolve;
        });
        const received = exchange(net.connect(portOf(tcp), "127.0.0.1"), input);
        const failure = await outcome(await accepted);
        judge(failure, await received);
      },
      close: () => closeAll(tcp, key),
    };
  },
};

const client: FuzzTarget = {
  name: "tls-client-handshake",
  about: "a real hsmkit client (1.1-1.3, mTLS, all suites) reading a server's plaintext flight",
  async prepare(corpus) {
    const key = await openKey(corpus.peers.clientKeyPath);
    let input: Buffer = Buffer.alloc(0);
    let received: Promise<Received> = Promise.resolve({ bytes: Buffer.alloc(0), reset: false });
    // The fuzzing "server" answers each connection with the current input, then FIN.
    const tcp = await listen((raw) => {
      received = exchange(raw, input);
    });
    return {
      seeds: corpus.serverFlights,
      expected: handshakeExpected,
      async run(bytes: Buffer) {
        input = bytes;
        const tls = connect({
          host: "127.0.0.1",
          port: portOf(tcp),
          servername: "localhost",
          ca: corpus.peers.caPem,
          key,
          cert: corpus.peers.clientChainPem,
          minVersion: "1.1",
          ciphers: `${SERVER_CIPHERS},TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`,
          handshakeTimeout: 5000,
        });
        const failure = await outcome(tls);
        judge(failure, await received);
      },
      close: () => closeAll(tcp, key),
    };
  },
};

async function closeAll(tcp: net.Server, key: PrivateKeyHandle): Promise<void> {
  await new Promise<void>((resolve) => tcp.close(() => resolve()));
  await key.close();
}

/** Handshake-level targets. */
export const TLS_HANDSHAKE_TARGETS: readonly FuzzTarget[] = [server, client];
