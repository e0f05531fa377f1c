/**
 * The reference server for bench/client.ts: Node's own TLS (OpenSSL) demanding and verifying a
 * client certificate (requestCert + rejectUnauthorized), on one 127.0.0.1 listener per
 * configuration. Runs in its own process so its CPU is not counted against the client.
 *
 * Wire protocol after the handshake (the client drives it), repeated until the client closes:
 *   'D' + uint64 BE n  -> the server sends n bytes;
 *   'U' + uint64 BE n  -> the client sends n bytes, the server answers one byte 'K' once they
 *                         are all in ('U' with n = 0 is a ping proving the handshake completed
 *                         on the server, i.e. the client certificate was verified).
 */
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import tls, { type SecureVersion } from "node:tls";
import { announceReady, cpuMs, peerConfig, servePeerRequests } from "../lib.ts";

/** One listener's TLS settings. */
export interface ListenerConfig {
  name: string;
  minVersion: SecureVersion;
  maxVersion: SecureVersion;
  /** OpenSSL cipher string (TLS 1.3 suite names allowed, as Node accepts). */
  ciphers: string;
}

/** What the parent passes. */
export interface NativeServerConfig {
  /** Server certificate chain (leaf + intermediates), PEM path. */
  certPath: string;
  keyPath: string;
  /** Trust anchors for client certificates, PEM path. */
  caPath: string;
  listeners: ListenerConfig[];
}

/** What the server announces: the port of each listener by name. */
export type NativeServerReady = Record<string, number>;

/** Answer to a "stats" request. */
export interface NativeServerStats {
  /** Handshakes that completed with a verified client certificate, per listener. */
  verified: Record<string, number>;
  /** Handshakes the server refused or that broke (tlsClientError). */
  clientErrors: number;
  /** The first few tlsClientError messages. */
  errorSamples: string[];
  /** This process's CPU so far, ms. */
  cpuMs: number;
}

const HEADER = 9;
const MAX_TRANSFER = 2 ** 31;
const ACK = Buffer.from("K");
const block = Buffer.alloc(64 * 1024, 0x5a);

async function sendBytes(sock: tls.TLSSocket, n: number): Promise<void> {
  let left = n;
  while (left > 0 && !sock.destroyed) {
    const size = Math.min(left, block.length);
    left -= size;
    if (!sock.write(size === block.length ? block : block.subarray(0, size))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          sock.off("drain", done);
          sock.off("close", done);
          resolve();
        };
        sock.on("drain", done);
        sock.on("close", done);
      });
    }
  }
}

function serve(sock: tls.TLSSocket): void {
  let header = Buffer.alloc(0);
  let uploadLeft = 0;
  sock.on("error", () => {});
  sock.on("data", (chunk: Buffer) => {
    let off = 0;
    while (off < chunk.length) {
      if (uploadLeft > 0) {
        const take = Math.min(uploadLeft, chunk.length - off);
        uploadLeft -= take;
        off += take;
        if (uploadLeft === 0) sock.write(ACK);
        continue;
      }
      const part = chunk.subarray(off, off + HEADER - header.length);
      off += part.length;
      header = Buffer.concat([header, part]);
      if (header.length < HEADER) break;
      const command = String.fromCharCode(header[0]!);
      const n = Number(header.readBigUInt64BE(1));
      header = Buffer.alloc(0);
      if (n > MAX_TRANSFER || (command !== "D" && command !== "U")) {
        sock.destroy();
        return;
      }
      if (command === "D") void sendBytes(sock, n);
      else if (n === 0) sock.write(ACK);
      else uploadLeft = n;
    }
  });
}

const config = peerConfig<NativeServerConfig>();
const cert = readFileSync(config.certPath);
const key = readFileSync(config.keyPath);
const ca = readFileSync(config.caPath);
const verified: Record<string, number> = {};
let clientErrors = 0;
const errorSamples: string[] = [];
const servers: tls.Server[] = [];
const ports: NativeServerReady = {};

for (const l of config.listeners) {
  verified[l.name] = 0;
  const server = tls.createServer(
    {
      cert,
      key,
      ca,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: l.minVersion,
      maxVersion: l.maxVersion,
      ciphers: l.ciphers,
    },
    (sock) => {
      if (sock.authorized) verified[l.name]!++;
      serve(sock);
    },
  );
  server.on("tlsClientError", (err) => {
    clientErrors++;
    if (errorSamples.length < 5) errorSamples.push(`${l.name}: ${err.message}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  ports[l.name] = (server.address() as AddressInfo).port;
  servers.push(server);
}

servePeerRequests((body) => {
  if (body === "stats")
    return { verified, clientErrors, errorSamples, cpuMs: cpuMs() } satisfies NativeServerStats;
  throw new Error(`unknown request ${JSON.stringify(body)}`);
});
process.on("SIGTERM", () => {
  for (const s of servers) s.close();
  process.exit(0);
});
announceReady(ports);
