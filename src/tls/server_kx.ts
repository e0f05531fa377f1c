/**
 * The server's side of TLS 1.1/1.2 key exchange: picking a suite the key can serve, the
 * ECDHE ServerKeyExchange signed by the key handle, and the RSA premaster decrypted by
 * the key handle with the RFC 5246 §7.4.7.1 countermeasure against padding oracles.
 */
import { randomBytes } from "node:crypto";
import type { SchemeInfo } from "../keys/schemes.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import { AlertDescription, TlsError } from "./alert.ts";
import { type CipherSuite, suiteAllowsVersion } from "./cipher_suites.ts";
import type { ClientHelloInfo } from "./client_hello.ts";
import { ProtocolVersion } from "./constants.ts";
import { generateKeyShare, isSupportedGroup, type KeyShare, NamedGroup } from "./key_share.ts";
import { encodeEcdheParams, encodeEcdheServerKeyExchange } from "./messages.ts";
import { chooseScheme, signWith } from "./signature.ts";

/** The premaster secret length for RSA key exchange. */
const PREMASTER_LENGTH = 48;

/** RFC 5246 §7.4.1.4.1: a client without signature_algorithms accepts SHA-1 with RSA or ECDSA. */
const DEFAULT_SCHEME_CODES: readonly number[] = [0x0201, 0x0203];

/** A suite the server can serve to this client, with what its key exchange needs. */
export interface SuiteChoice {
  suite: CipherSuite;
  /** The ECDHE group, for ECDHE suites. */
  group: NamedGroup | undefined;
  /** How ServerKeyExchange is signed, for ECDHE suites. */
  scheme: SchemeInfo | undefined;
}

/** The server's first group the client supports; P-256 when the client names none (RFC 8422 §4). */
function chooseGroup(hello: ClientHelloInfo, ours: readonly NamedGroup[]): NamedGroup | undefined {
  const theirs = hello.groups;
  if (!theirs) return ours.find((g) => g === NamedGroup.secp256r1);
  return ours.find((g) => theirs.includes(g) && isSupportedGroup(g));
}

function keyFits(suite: CipherSuite, key: PrivateKeyHandle): boolean {
  if (suite.kx === "ecdhe_ecdsa") return key.type === "ec";
  return (suite.kx === "rsa" || suite.kx === "ecdhe_rsa") && key.type === "rsa";
}

/**
 * The first suite, in server order, that the client offered, the version allows and the
 * key can serve: RSA key exchange needs an RSA key; ECDHE needs a shared group, the
 * uncompressed point format and a signature scheme the client accepts.
 */
export function selectSuite(
  hello: ClientHelloInfo,
  suites: readonly CipherSuite[],
  groups: readonly NamedGroup[],
  key: PrivateKeyHandle,
  version: ProtocolVersion,
): SuiteChoice {
  const group = chooseGroup(hello, groups);
  const uncompressed = !hello.pointFormats || hello.pointFormats.includes(0);
  const codes = hello.signatureSchemes ?? DEFAULT_SCHEME_CODES;
  for (const suite of suites) {
    if (suite.kx === "tls13" || !hello.cipherSuites.includes(suite.id)) continue;
    if (!suiteAllowsVersion(suite, version) || !keyFits(suite, key)) continue;
    if (suite.kx === "rsa") return { suite, group: undefined, scheme: undefined };
    if (group === undefined || !uncompressed) continue;
    try {
      return { suite, group, scheme: chooseScheme(key, version, codes) };
    } catch {
      // No scheme the client accepts: try the next suite.
    }
  }
  throw new TlsError(
    AlertDescription.handshake_failure,
    `no cipher suite in common (this server's ${key.type.toUpperCase()} key serves ${
      suites
        .filter((s) => keyFits(s, key) && suiteAllowsVersion(s, version))
        .map((s) => s.name)
        .join(", ") || "none of the configured suites"
    })`,
  );
}

/** An ECDHE ServerKeyExchange body and the ephemeral key behind it. */
export interface EcdheOffer {
  body: Buffer;
  share: KeyShare;
}

/** Makes the ephemeral key and signs client_random + server_random + params with the key handle. */
export async function ecdheServerKeyExchange(
  key: PrivateKeyHandle,
  choice: SuiteChoice,
  version: ProtocolVersion,
  clientRandom: Buffer,
  serverRandom: Buffer,
): Promise<EcdheOffer> {
  if (choice.group === undefined || !choice.scheme)
    throw new TlsError(AlertDescription.internal_error, "ECDHE suite chosen without a group or scheme");
  const share = generateKeyShare(choice.group);
  const signed = Buffer.concat([
    clientRandom,
    serverRandom,
    encodeEcdheParams(choice.group, share.publicKey),
  ]);
  const signature = await signWith(key, choice.scheme, signed);
  const body = encodeEcdheServerKeyExchange({
    group: choice.group,
    publicKey: share.publicKey,
    scheme: version >= ProtocolVersion.TLS12 ? choice.scheme.code : undefined,
    signature,
  });
  return { body, share };
}

/** 0xff when a === b, else 0x00, without branching on the values (bytes 0..255 or small ints). */
function equalMask(a: number, b: number): number {
  const x = a ^ b;
  return (((x | -x) >>> 31) ^ 1) * 0xff;
}

/**
 * Decrypts the RSA-encrypted premaster with the key handle (RFC 5246 §7.4.7.1). A random
 * premaster is made first; on any decryption failure, a wrong length or version bytes
 * other than ClientHello.client_version, that random one is used instead, selected with
 * masks rather than branches. The caller carries on either way: a bad premaster shows up
 * only as the client's Finished failing to decrypt, exactly as a wrong key would.
 */
export async function decryptPremaster(
  key: PrivateKeyHandle,
  encrypted: Buffer,
  clientVersion: number,
): Promise<Buffer> {
  const random = randomBytes(PREMASTER_LENGTH);
  let decrypted: Buffer;
  if (key.decryptImplicit) {
    // The key decides between its plaintext and our random bytes without throwing or branching.
    decrypted = await key.decryptImplicit(encrypted, PREMASTER_LENGTH, random);
  } else {
    try {
      decrypted = await key.decrypt(encrypted);
    } catch {
      decrypted = Buffer.alloc(0);
    }
  }
  const candidate = Buffer.alloc(PREMASTER_LENGTH);
  decrypted.copy(candidate, 0, 0, PREMASTER_LENGTH);
  const good =
    equalMask(decrypted.length, PREMASTER_LENGTH) &
    equalMask(candidate[0]!, clientVersion >> 8) &
    equalMask(candidate[1]!, clientVersion & 0xff);
  const out = Buffer.alloc(PREMASTER_LENGTH);
  for (let i = 0; i < PREMASTER_LENGTH; i++) {
    out[i] = (candidate[i]! & good) | (random[i]! & ~good & 0xff);
  }
  decrypted.fill(0);
  candidate.fill(0);
  random.fill(0);
  return out;
}
