/**
 * Client authentication on a TLS 1.1/1.2 server (RFC 5246 §7.4.4, §7.4.6, §7.4.8): the
 * CertificateRequest, the verdict on the client's chain, and the CertificateVerify check.
 */
import type { KeyObject } from "node:crypto";
import { AlertDescription, TlsError } from "./alert.ts";
import { ProtocolVersion } from "./constants.ts";
import type { HandshakeMessage } from "./handshake_io.ts";
import { decodeCertificate12, decodeDigitallySigned, encodeCertificateRequest12 } from "./messages.ts";
import type { ClientAuthConfig } from "./server_config.ts";
import { verifyHandshakeSignature, verifySchemeCodes } from "./signature.ts";
import { leafPublicKey } from "./verify_peer.ts";

const CERT_TYPE_RSA_SIGN = 1;
const CERT_TYPE_ECDSA_SIGN = 64;

/** A CertificateRequest body: RSA and ECDSA certificates, our verify schemes, the CA names. */
export function certificateRequestBody(auth: ClientAuthConfig, version: ProtocolVersion): Buffer {
  return encodeCertificateRequest12(
    {
      certificateTypes: [CERT_TYPE_RSA_SIGN, CERT_TYPE_ECDSA_SIGN],
      signatureSchemes: verifySchemeCodes(ProtocolVersion.TLS12),
      authorities: [...auth.authorities],
    },
    version,
  );
}

/** What the server concluded from the client's Certificate message. */
export interface ClientIdentity {
  chain: Buffer[];
  authorized: boolean;
  authorizationError: string | undefined;
  /** The leaf's public key, which must sign CertificateVerify; undefined when no certificate came. */
  publicKey: KeyObject | undefined;
}

/**
 * Reads the client's Certificate. With `require`, an empty or invalid chain ends the
 * handshake (handshake_failure for none, the verifier's alert otherwise); without it the
 * connection goes on unauthorized, and a sent certificate must still be proven by
 * CertificateVerify.
 */
export function readClientCertificate(msg: HandshakeMessage, auth: ClientAuthConfig): ClientIdentity {
  const chain = decodeCertificate12(msg.body);
  if (chain.length === 0) {
    const reason = "client sent no certificate";
    if (auth.require) throw new TlsError(AlertDescription.handshake_failure, reason, "certificate");
    return { chain, authorized: false, authorizationError: reason, publicKey: undefined };
  }
  const publicKey = leafPublicKey(chain[0]!, "client");
  const type = publicKey.asymmetricKeyType;
  if (type !== "rsa" && type !== "ec") {
    throw new TlsError(
      AlertDescription.unsupported_certificate,
      `client certificate has a ${type} key; RSA or EC is needed`,
      "certificate",
    );
  }
  const verdict = auth.verify(chain);
  if (verdict.ok) return { chain, authorized: true, authorizationError: undefined, publicKey };
  if (auth.require)
    throw new TlsError(verdict.alert, `client certificate refused: ${verdict.reason}`, "certificate");
  return { chain, authorized: false, authorizationError: verdict.reason, publicKey };
}

/**
 * Checks CertificateVerify over `messages`, every handshake message before it joined (TLS
 * 1.1/1.2 sign the messages, not a digest); decrypt_error when forged.
 */
export function checkCertificateVerify(
  msg: HandshakeMessage,
  publicKey: KeyObject,
  messages: Buffer,
  version: ProtocolVersion,
): void {
  const signed = decodeDigitallySigned(msg.body, version >= ProtocolVersion.TLS12);
  verifyHandshakeSignature(publicKey, signed.scheme, messages, signed.signature, version);
}
