/**
 * The TLS clients bench/client.ts compares, each driven the same way against the native
 * server of bench/peers/native_tls_server.ts: hsmkit's TypeScript client (with any key
 * handle), Node's native tls client, and node-forge's TLS client. Plus the small byte
 * protocol that server speaks (download, upload, ping).
 */
import { spawnSync } from "node:child_process";
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from "node:crypto";
import { connect as netConnect } from "node:net";
import type { Duplex } from "node:stream";
import tls, { type SecureContext, type SecureVersion } from "node:tls";
import forge from "node-forge";
import type { PrivateKeyHandle } from "../src/keys/index.ts";
import { connect as hsmkitConnect } from "../src/tls/client.ts";
import type { Certificate } from "../src/tls/x509/certificate.ts";

/** Every network operation gives up after this long, so a broken peer never hangs the run. */
export const OP_TIMEOUT_MS = 60_000;
const HOST = "127.0.0.1";

/** A connection after its handshake, as the suite it actually negotiated. */
export interface Negotiated {
  protocol: string | null;
  /** IANA suite name. */
  suite: string | undefined;
}

/** Opens a fully handshaken TLS connection to a port of the native server. */
export type Opener = (port: number) => Promise<{ socket: Duplex; negotiated: Negotiated }>;

function withTimeout<T>(
  what: string,
  work: (settle: (err?: Error, v?: T) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: () => void = () => {};
    const timer = setTimeout(
      () => settle(new Error(`${what} timed out after ${OP_TIMEOUT_MS} ms`)),
      OP_TIMEOUT_MS,
    );
    let done = false;
    function settle(err?: Error, value?: T): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      if (err) reject(err);
      else resolve(value as T);
    }
    cleanup = work(settle);
  });
}

/** Waits for the socket's 'secureConnect', failing on 'error' or an early close. */
function handshaken(
  socket: Duplex,
  negotiated: () => Negotiated,
): Promise<{ socket: Duplex; negotiated: Negotiated }> {
  return withTimeout("handshake", (settle) => {
    const ok = (): void => settle(undefined, { socket, negotiated: negotiated() });
    const fail = (err: Error): void => {
      socket.destroy();
      settle(err);
    };
    const closed = (): void => settle(new Error("connection closed during the handshake"));
    socket.once("secureConnect", ok);
    socket.once("error", fail);
    socket.once("close", closed);
    return () => {
      socket.off("secureConnect", ok);
      socket.off("error", fail);
      socket.off("close", closed);
      // Later errors (a reset after we destroy the socket) must not crash the process.
      socket.on("error", () => {});
    };
  });
}

/** Settings for the native client on one suite: a SecureContext made once, as a tuned caller would. */
export function nativeOpener(opts: {
  ca: string;
  cert: string;
  key: string;
  ciphers: string;
  version: SecureVersion;
}): Opener {
  const secureContext: SecureContext = tls.createSecureContext({
    ca: opts.ca,
    cert: opts.cert,
    key: opts.key,
    ciphers: opts.ciphers,
    minVersion: opts.version,
    maxVersion: opts.version,
  });
  return (port) => {
    const socket = tls.connect({
      host: HOST,
      port,
      secureContext,
      minVersion: opts.version,
      maxVersion: opts.version,
    });
    return handshaken(socket, () => ({
      protocol: socket.getProtocol(),
      suite: socket.getCipher()?.standardName,
    }));
  };
}

/** hsmkit's client through its public connect(), with trust anchors parsed once and a key handle opened once. */
export function hsmkitOpener(opts: {
  ca: readonly Certificate[];
  cert: string;
  key: PrivateKeyHandle;
  ciphers: string;
  version: "1.1" | "1.2" | "1.3";
}): Opener {
  return (port) => {
    const socket = hsmkitConnect({
      host: HOST,
      port,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      ciphers: opts.ciphers,
      minVersion: opts.version,
      maxVersion: opts.version,
    });
    return handshaken(socket, () => ({
      protocol: socket.getProtocol(),
      suite: socket.getCipher()?.standardName,
    }));
  };
}

// ---- the server's byte protocol ------------------------------------------------------------

function header(command: "D" | "U", n: number): Buffer {
  const h = Buffer.alloc(9);
  h.write(command, 0, "latin1");
  h.writeBigUInt64BE(BigInt(n), 1);
  return h;
}

/** Resolves once `n` bytes have arrived on the socket. */
function receive(socket: Duplex, n: number): Promise<void> {
  return withTimeout(`receiving ${n} bytes`, (settle) => {
    let got = 0;
    const onData = (chunk: Buffer): void => {
      got += chunk.length;
      if (got >= n) settle();
    };
    const onError = (err: Error): void => settle(err);
    const onClose = (): void => settle(new Error(`connection closed after ${got} of ${n} bytes`));
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
    return () => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
  });
}

function drained(socket: Duplex): Promise<void> {
  return withTimeout("waiting for drain", (settle) => {
    const onDrain = (): void => settle();
    const onError = (err: Error): void => settle(err);
    const onClose = (): void => settle(new Error("connection closed while sending"));
    socket.once("drain", onDrain);
    socket.once("error", onError);
    socket.once("close", onClose);
    return () => {
      socket.off("drain", onDrain);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
  });
}

/** One round trip of application data: proves the server finished its side (client certificate verified). */
export async function ping(socket: Duplex): Promise<void> {
  const ack = receive(socket, 1);
  socket.write(header("U", 0));
  await ack;
}

/** Asks the server for `n` bytes and waits until all arrived. */
export async function download(socket: Duplex, n: number): Promise<void> {
  const all = receive(socket, n);
  socket.write(header("D", n));
  await all;
}

const block = Buffer.alloc(64 * 1024, 0xa5);

/** Sends `n` bytes (with back-pressure) and waits for the server's acknowledgement. */
export async function upload(socket: Duplex, n: number): Promise<void> {
  const ack = receive(socket, 1);
  socket.write(header("U", n));
  for (let left = n; left > 0; ) {
    const size = Math.min(left, block.length);
    left -= size;
    if (!socket.write(size === block.length ? block : block.subarray(0, size))) await drained(socket);
  }
  await ack;
}

// ---- node-forge ----------------------------------------------------------------------------

/** What forge needs, parsed once. */
export interface ForgeCredentials {
  caStore: forge.pki.CAStore;
  /** Client chain, PEM per certificate, leaf first. */
  chain: string[];
  key: forge.pki.rsa.PrivateKey;
}

/** Parses the trust anchor, the client chain and an RSA key (PEM) for forge. */
export function forgeCredentials(caPem: string, chainPem: string, keyPem: string): ForgeCredentials {
  const chain = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return {
    caStore: forge.pki.createCaStore([caPem]),
    chain,
    key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey,
  };
}

/**
 * One full forge handshake (TLS 1.1, TLS_RSA_WITH_AES_128_CBC_SHA, client certificate) over a
 * net.Socket, then a ping round trip, then close. forge's own chain verification stays on.
 */
export function forgeHandshakeAndPing(port: number, creds: ForgeCredentials): Promise<Negotiated> {
  return withTimeout("forge handshake", (settle) => {
    const socket = netConnect({ host: HOST, port });
    let reply = "";
    const conn = forge.tls.createConnection({
      server: false,
      caStore: creds.caStore,
      cipherSuites: [forge.tls.CipherSuites.TLS_RSA_WITH_AES_128_CBC_SHA!],
      verify: (_c, verified) => verified,
      connected: (c) => {
        c.prepare(header("U", 0).toString("binary"));
      },
      getCertificate: () => creds.chain,
      getSignature: (c, bytes, callback) => callback(c, creds.key.sign(bytes, "NONE")),
      tlsDataReady: (c) => {
        socket.write(Buffer.from(c.tlsData.getBytes(), "binary"));
      },
      dataReady: (c) => {
        reply += c.data.getBytes();
        if (reply.includes("K")) {
          const v = c.version;
          settle(undefined, { protocol: `TLSv1.${v.minor - 1}`, suite: c.session?.cipherSuite?.name });
        }
      },
      closed: () => settle(new Error("forge: connection closed before the reply")),
      error: (_c, err) => settle(new Error(`forge: ${err.message}`)),
    });
    socket.on("connect", () => conn.handshake());
    socket.on("data", (d: Buffer) => conn.process(d.toString("binary")));
    socket.on("error", (err) => settle(err));
    socket.on("close", () => settle(new Error("forge: socket closed before the reply")));
    return () => {
      socket.removeAllListeners("close");
      socket.on("error", () => {});
      socket.destroy();
    };
  });
}

/** What one 16 KiB AES-128-GCM record costs through the record layer's crypto calls. */
export interface RecordFloor {
  /** Process CPU per record sealed the way protection.ts seals (new cipher, AAD, update, final, tag). */
  sealMicros: number;
  /** The same for opening one. */
  openMicros: number;
  /** OpenSSL's own `speed -evp aes-128-gcm -bytes 16384`, per record (no per-record set-up). */
  opensslMicros: number | undefined;
}

/**
 * The floor under a TypeScript record layer: node:crypto has no way to re-key a cipher with a
 * new nonce or to write into a caller's buffer, so every record pays a cipher set-up and fresh
 * output buffers on top of the AES-GCM work that OpenSSL does in place for Node's native TLS.
 */
export function measureRecordFloor(records = 20_000): RecordFloor {
  const key = createSecretKey(randomBytes(16));
  const nonce = randomBytes(12);
  const aad = randomBytes(13);
  const plain = randomBytes(16384);
  const seal = (): [Buffer, Buffer] => {
    const c = createCipheriv("aes-128-gcm", key, nonce, { authTagLength: 16 });
    c.setAAD(aad);
    const body = c.update(plain);
    c.final();
    return [body, c.getAuthTag()];
  };
  const [body, tag] = seal();
  const open = (): Buffer => {
    const d = createDecipheriv("aes-128-gcm", key, nonce, { authTagLength: 16 });
    d.setAAD(aad);
    d.setAuthTag(tag);
    const out = d.update(body);
    d.final();
    return out;
  };
  const perRecord = (op: () => unknown): number => {
    for (let i = 0; i < 1000; i++) op();
    const before = process.cpuUsage();
    for (let i = 0; i < records; i++) op();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / records;
  };
  const sealMicros = perRecord(seal);
  const openMicros = perRecord(open);
  const speed = spawnSync("openssl", ["speed", "-evp", "aes-128-gcm", "-bytes", "16384", "-seconds", "2"], {
    encoding: "utf8",
  });
  // The last line reads "AES-128-GCM  <kB per second>k".
  const kbPerSecond = Number(/([\d.]+)k\s*$/.exec(speed.stdout?.trim() ?? "")?.[1]);
  const opensslMicros = kbPerSecond > 0 ? 16384 / (kbPerSecond * 1000) / 1e-6 : undefined;
  return { sealMicros, openMicros, opensslMicros };
}
