/**
 * The TLS 1.0-1.2 pseudo-random function and what is derived from it (RFC 5246 §5,
 * RFC 2246 §5, RFC 7627). All primitives are node:crypto HMACs and hashes.
 */
import { createHmac } from "node:crypto";
import { Transcript } from "./transcript.ts";

/** The hash used by the TLS 1.2 PRF; "md5-sha1" selects the TLS 1.0/1.1 split PRF. */
export type PrfHash = "sha256" | "sha384" | "md5-sha1";

function pHash(hash: string, secret: Buffer, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  let total = 0;
  let a = seed;
  while (total < length) {
    a = createHmac(hash, secret).update(a).digest();
    const block = createHmac(hash, secret).update(a).update(seed).digest();
    out.push(block);
    total += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** PRF(secret, label, seed) truncated to `length` bytes. */
export function prf(hash: PrfHash, secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, "ascii"), seed]);
  if (hash !== "md5-sha1") return pHash(hash, secret, labelSeed, length);
  // TLS 1.0/1.1: the secret is split in two (overlapping by one byte when odd) and the
  // MD5 and SHA-1 streams are XORed.
  const half = Math.ceil(secret.length / 2);
  const md5 = pHash("md5", secret.subarray(0, half), labelSeed, length);
  const sha1 = pHash("sha1", secret.subarray(secret.length - half), labelSeed, length);
  for (let i = 0; i < length; i++) md5[i]! ^= sha1[i]!;
  return md5;
}

/** Hashes handshake messages the way Finished and EMS need: the PRF hash, or MD5||SHA-1 for TLS 1.0/1.1. */
export function transcriptHash(hash: PrfHash, messages: readonly Buffer[]): Buffer {
  const transcript = new Transcript();
  for (const m of messages) transcript.add(m);
  transcript.useHash(hash);
  return transcript.hash();
}

/** The 48-byte master secret: classic (randoms) or extended (session hash, RFC 7627). */
export function masterSecret(
  hash: PrfHash,
  premaster: Buffer,
  clientRandom: Buffer,
  serverRandom: Buffer,
  sessionHash: Buffer | undefined,
): Buffer {
  if (sessionHash) return prf(hash, premaster, "extended master secret", sessionHash, 48);
  return prf(hash, premaster, "master secret", Buffer.concat([clientRandom, serverRandom]), 48);
}

/** The key block, in RFC 5246 §6.3 order (server random first in the seed). */
export function keyBlock(
  hash: PrfHash,
  master: Buffer,
  clientRandom: Buffer,
  serverRandom: Buffer,
  length: number,
): Buffer {
  return prf(hash, master, "key expansion", Buffer.concat([serverRandom, clientRandom]), length);
}

/** Finished.verify_data (12 bytes) for the given side. */
export function finishedData(
  hash: PrfHash,
  master: Buffer,
  side: "client" | "server",
  handshakeHash: Buffer,
): Buffer {
  return prf(hash, master, `${side} finished`, handshakeHash, 12);
}
