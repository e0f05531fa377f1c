/**
 * Client and server settings as the handshakes consume them (already resolved: suites,
 * versions, keys and trust anchors are objects, not strings).
 */

import { ConfigError, type OptionNamer } from "../errors.ts";
import type { PrivateKeyHandle } from "../keys/types.ts";
import type { AlertDescription } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { ProtocolVersion, parseVersion, versionName } from "./constants.ts";
import type { NamedGroup } from "./key_share.ts";
import type { ClientSessionCache } from "./psk.ts";
import { type Certificate, parsePemBundle } from "./x509/certificate.ts";
import { X509ParseError } from "./x509/errors.ts";

/** The verdict on a peer's certificate chain. */
export type ChainVerdict = { ok: true } | { ok: false; reason: string; alert: AlertDescription };

/** Everything the client handshake needs. */
export interface ClientConfig {
  /** The DNS name sent as SNI; undefined for IP literals. */
  serverName: string | undefined;
  minVersion: ProtocolVersion;
  maxVersion: ProtocolVersion;
  /** Offered suites, in preference order. */
  suites: readonly CipherSuite[];
  /** Offered ECDHE groups, in preference order. */
  groups: readonly NamedGroup[];
  /** The client key for mutual TLS, if any. */
  key: PrivateKeyHandle | undefined;
  /** The client certificate chain (DER, leaf first) that goes with `key`. */
  certificateChain: readonly Buffer[];
  /** Checks the server's chain (leaf first); undefined skips checking. */
  verifyServer: ((chain: Buffer[]) => ChainVerdict) | undefined;
  /** Fail the handshake when verifyServer refuses (default true). */
  rejectUnauthorized: boolean;
  /** ALPN protocols to offer. */
  alpn: readonly string[];
  /** Offer encrypt_then_mac for CBC suites (RFC 7366). */
  encryptThenMac: boolean;
  /** Where TLS 1.3 tickets are kept for resumption; undefined: no resumption. */
  sessionCache: ClientSessionCache | undefined;
  /** What tickets are filed under: the server and the client identity ("host:port/servername#identity"). */
  sessionKey: string;
}

/** A TLS version as a wire value or as "1.1" / "1.2" / "1.3" (client and server options). */
export type VersionOption = ProtocolVersion | "1.1" | "1.2" | "1.3";

/** Wire versions a numeric option may name (TLS 1.0 only to be refused by name below the floor). */
const WIRE_VERSIONS: ReadonlySet<number> = new Set([
  ProtocolVersion.TLS10,
  ProtocolVersion.TLS11,
  ProtocolVersion.TLS12,
  ProtocolVersion.TLS13,
]);

/** Both sides' version range unless told otherwise: TLS 1.2 to 1.3, nothing below 1.1 at all. */
export const VERSION_DEFAULTS = {
  min: ProtocolVersion.TLS12,
  max: ProtocolVersion.TLS13,
  floor: ProtocolVersion.TLS11,
} as const;

/**
 * Resolves `minVersion` and `maxVersion` (defaults `min` and `max`); throws a ConfigError for an
 * unknown name, a minimum above the maximum, or a minimum below `floor`.
 */
export function resolveVersionRange(
  options: { minVersion?: VersionOption | undefined; maxVersion?: VersionOption | undefined },
  defaults: { readonly min: ProtocolVersion; readonly max: ProtocolVersion; readonly floor: ProtocolVersion },
): { minVersion: ProtocolVersion; maxVersion: ProtocolVersion } {
  const resolve = (option: "minVersion" | "maxVersion", fallback: ProtocolVersion): ProtocolVersion => {
    const v = options[option];
    if (v === undefined) return fallback;
    const parsed = typeof v === "number" ? (WIRE_VERSIONS.has(v) ? v : undefined) : parseVersion(v);
    if (parsed === undefined) {
      const shown = typeof v === "number" ? versionName(v) : `'${v}'`;
      throw new ConfigError(
        (name) => `unknown TLS version ${shown} in ${name(option)} (use 1.1, 1.2 or 1.3)`,
      );
    }
    return parsed;
  };
  const minVersion = resolve("minVersion", defaults.min);
  const maxVersion = resolve("maxVersion", defaults.max);
  if (minVersion > maxVersion) {
    // Name the default when one side was left out: the caller may not know it.
    const side = (name: OptionNamer, option: "minVersion" | "maxVersion", v: ProtocolVersion) =>
      `${options[option] === undefined ? "the default " : ""}${name(option)} (${versionName(v)})`;
    throw new ConfigError(
      (name) => `${side(name, "minVersion", minVersion)} is above ${side(name, "maxVersion", maxVersion)}`,
    );
  }
  if (minVersion < defaults.floor)
    throw new ConfigError(
      (name) => `${name("minVersion")} below ${versionName(defaults.floor)} is not supported`,
    );
  return { minVersion, maxVersion };
}

/**
 * Certificates given as PEM text or already parsed (a chain, trust anchors, client CAs); PEM
 * that holds none, or a bad one, is a ConfigError naming `option`.
 */
export function certificateList(
  option: "ca" | "cert" | "clientCa",
  input: string | Buffer | readonly Certificate[],
): Certificate[] {
  if (!(typeof input === "string" || Buffer.isBuffer(input))) return [...input];
  try {
    return parsePemBundle(input.toString());
  } catch (err) {
    if (!(err instanceof X509ParseError)) throw err;
    throw new ConfigError((name) => `${name(option)}: ${err.message}`, { cause: err });
  }
}
