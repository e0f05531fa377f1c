/**
 * Ephemeral (EC)DH key shares for ECDHE (RFC 8422) and TLS 1.3 key_share (RFC 8446 §4.2.8):
 * X25519, P-256, P-384, all from node:crypto.
 */
import { createECDH, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";

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

// Raw X25519 keys go in and out as JWK: Node 20 decodes that far faster than an SPKI DER.
function x25519Share(): KeyShare {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url");
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
