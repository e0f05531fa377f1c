/**
 * Ephemeral (EC)DH key shares for ECDHE (RFC 8422) and TLS 1.3 key_share (RFC 8446 §4.2.8):
 * X25519, P-256, P-384, all from node:crypto.
 */
import {
  createECDH,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  type X25519KeyPairKeyObjectOptions,
} from "node:crypto";
import { AlertDescription, fail, TlsError } from "./alert.ts";

/** Named group code points. */
export enum NamedGroup {
  secp256r1 = 23,
  secp384r1 = 24,
  x25519 = 29,
}

/** The groups hsmkit offers, most preferred first. */
export const DEFAULT_GROUPS: readonly NamedGroup[] = [
  NamedGroup.x25519,
  NamedGroup.secp256r1,
  NamedGroup.secp384r1,
];

/** One side's ephemeral key: its public share and a way to agree on a secret. */
export interface KeyShare {
  readonly group: NamedGroup;
  /** The public value as sent on the wire. */
  readonly publicKey: Buffer;
  /** The shared secret with the peer's public value; illegal_parameter on a bad point. */
  agree(peerPublic: Buffer): Buffer;
}

/** A fresh X25519 private key and its raw public value, the public half encoded as JWK by the generation. */
function generateX25519(): { privateKey: KeyObject; raw: Buffer } {
  // Node's type declarations lack the JWK public encoding with a KeyObject private key; Node 20 has it.
  const options = { publicKeyEncoding: { format: "jwk" } } as unknown as X25519KeyPairKeyObjectOptions;
  const pair = generateKeyPairSync("x25519", options) as unknown as {
    privateKey: KeyObject;
    publicKey: { x?: unknown };
  };
  const x = pair.publicKey.x;
  const raw = typeof x === "string" ? Buffer.from(x, "base64url") : Buffer.alloc(0);
  if (raw.length !== 32) fail(AlertDescription.internal_error, "X25519 key generation gave no public key");
  return { privateKey: pair.privateKey, raw };
}

/**
 * Raw X25519 keys go in and out as JWK: Node 20 decodes that far faster than an SPKI DER.
 * The public key is encoded by the key generation itself, never by `export()` on the new
 * KeyObject: in Node 20, exporting a just-generated key as JWK holds the key's lock while it
 * allocates, a garbage collection then can finalize the generation job, whose destructor takes
 * the same lock, and the process hangs for good (an `hsmkit serve` hung so after some thousand
 * handshakes; a loop of key shares, within a second).
 */
function x25519Share(): KeyShare {
  const { privateKey, raw } = generateX25519();
  return {
    group: NamedGroup.x25519,
    publicKey: raw,
    agree(peer: Buffer): Buffer {
      if (peer.length !== 32)
        throw new TlsError(AlertDescription.illegal_parameter, "bad X25519 public key length");
      let peerKey: KeyObject;
      try {
        peerKey = createPublicKey({
          key: { kty: "OKP", crv: "X25519", x: peer.toString("base64url") },
          format: "jwk",
        });
      } catch {
        throw new TlsError(AlertDescription.illegal_parameter, "bad X25519 public key");
      }
      let secret: Buffer;
      try {
        secret = diffieHellman({ privateKey, publicKey: peerKey });
      } catch {
        // OpenSSL refuses small-order points itself.
        throw new TlsError(AlertDescription.illegal_parameter, "X25519 small-order point");
      }
      // An all-zero result means a small-order point (RFC 7748 §6.1).
      if (secret.every((b) => b === 0))
        throw new TlsError(AlertDescription.illegal_parameter, "X25519 small-order point");
      return secret;
    },
  };
}

function nistShare(group: NamedGroup, curve: string, pointLength: number): KeyShare {
  const ecdh = createECDH(curve);
  const pub = ecdh.generateKeys();
  return {
    group,
    publicKey: pub,
    agree(peer: Buffer): Buffer {
      if (peer.length !== pointLength || peer[0] !== 4) {
        throw new TlsError(
          AlertDescription.illegal_parameter,
          "EC point must be uncompressed and of the curve's size",
        );
      }
      try {
        return ecdh.computeSecret(peer);
      } catch {
        throw new TlsError(AlertDescription.illegal_parameter, "EC point is not on the curve");
      }
    },
  };
}

/** True for groups hsmkit implements. */
export function isSupportedGroup(group: number): group is NamedGroup {
  return group === NamedGroup.x25519 || group === NamedGroup.secp256r1 || group === NamedGroup.secp384r1;
}

/** Generates a fresh ephemeral key in the group. */
export function generateKeyShare(group: NamedGroup): KeyShare {
  switch (group) {
    case NamedGroup.x25519:
      return x25519Share();
    case NamedGroup.secp256r1:
      return nistShare(group, "prime256v1", 65);
    case NamedGroup.secp384r1:
      return nistShare(group, "secp384r1", 97);
  }
}
