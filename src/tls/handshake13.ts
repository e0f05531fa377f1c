/**
 * Pieces both TLS 1.3 handshakes use: record protection from a traffic secret, writing the
 * Certificate + CertificateVerify pair, and KeyUpdate after the handshake.
 */

import type { SchemeInfo } from "../keys/schemes.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { HandshakeType } from "./constants.ts";
import type { HandshakeChannel } from "./handshake_channel.ts";
import type { HandshakeIO } from "./handshake_io.ts";
import { nextTrafficSecret, trafficKeys } from "./key_schedule.ts";
import { encodeDigitallySigned } from "./messages.ts";
import { certificateVerifyContent, decodeKeyUpdate, encodeCertificate13 } from "./messages13.ts";
import { AeadProtection, type RecordProtection } from "./protection.ts";
import { signWith } from "./signature.ts";

/** Record protection for a TLS 1.3 traffic secret. */
export function protection13(suite: CipherSuite, secret: Buffer): RecordProtection {
  const { key, iv } = trafficKeys(suite.prfHash, secret, suite.keyLength);
  return new AeadProtection(suite.cipher as "aes-128-gcm", key, iv, true);
}

/**
 * Writes Certificate and, when there is a key to prove it with, CertificateVerify signed
 * by the key handle over the transcript (RFC 8446 §4.4.2-3); both go into the transcript.
 */
export async function writeCertificateAndVerify(
  channel: HandshakeChannel,
  side: "client" | "server",
  context: Buffer,
  chain: readonly Buffer[],
  signer: { key: PrivateKeyHandle; scheme: SchemeInfo } | undefined,
): Promise<void> {
  channel.write(HandshakeType.certificate, encodeCertificate13({ context, chain: [...chain] }));
  if (!signer) return;
  const content = certificateVerifyContent(side, channel.transcript.hash());
  const signature = await signWith(signer.key, signer.scheme, content);
  channel.write(
    HandshakeType.certificate_verify,
    encodeDigitallySigned({ scheme: signer.scheme.code, signature }),
  );
}

/**
 * The application traffic secrets of one side after the handshake, stepped forward by
 * KeyUpdate (RFC 8446 §4.6.3): the peer's update moves our read key, and when it asks,
 * we answer with our own update and move our write key.
 */
export class TrafficSecrets {
  constructor(
    private readonly io: HandshakeIO,
    private readonly suite: CipherSuite,
    private read: Buffer,
    private write: Buffer,
  ) {}

  /** Handles a KeyUpdate message body from the peer. */
  onKeyUpdate(body: Buffer): void {
    const requested = decodeKeyUpdate(body);
    this.read = nextTrafficSecret(this.suite.prfHash, this.read);
    this.io.setReadProtection(protection13(this.suite, this.read));
    if (requested) {
      this.io.writeMessage(HandshakeType.key_update, Buffer.from([0]));
      this.write = nextTrafficSecret(this.suite.prfHash, this.write);
      this.io.setWriteProtection(protection13(this.suite, this.write));
      void this.io.flush().catch(() => {});
    }
  }
}
