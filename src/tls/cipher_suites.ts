/**
 * The cipher suites hsmkit implements, as data: key exchange, bulk cipher, MAC and PRF hash.
 */
import { ConfigError } from "../errors.ts";
import { ProtocolVersion } from "./constants.ts";

/** How the premaster secret is agreed. */
export type KeyExchange = "rsa" | "ecdhe_rsa" | "ecdhe_ecdsa" | "tls13";

/** Bulk encryption: CBC with HMAC, or an AEAD. */
export type BulkCipher = "aes-128-cbc" | "aes-256-cbc" | "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";

/** The facts about one cipher suite. */
export interface CipherSuite {
  /** The IANA code point. */
  readonly id: number;
  /** The IANA name, e.g. TLS_RSA_WITH_AES_128_CBC_SHA256. */
  readonly name: string;
  /** The OpenSSL name, as Node's getCipher().name reports it. */
  readonly opensslName: string;
  readonly kx: KeyExchange;
  readonly cipher: BulkCipher;
  /** Encryption key length in bytes. */
  readonly keyLength: number;
  /** HMAC hash for CBC suites; undefined for AEAD. */
  readonly mac: "sha1" | "sha256" | "sha384" | undefined;
  /** HMAC key and tag length for CBC suites; 0 for AEAD. */
  readonly macLength: number;
  /** The PRF / transcript hash for TLS 1.2 (and the TLS 1.3 hash). */
  readonly prfHash: "sha256" | "sha384";
  /** Oldest version the suite may be used with. */
  readonly minVersion: ProtocolVersion;
  /** Newest version the suite may be used with. */
  readonly maxVersion: ProtocolVersion;
}

const { TLS11, TLS12, TLS13 } = ProtocolVersion;

function suite(
  id: number,
  name: string,
  opensslName: string,
  kx: KeyExchange,
  cipher: BulkCipher,
  mac: CipherSuite["mac"],
  prfHash: CipherSuite["prfHash"],
  minVersion: ProtocolVersion,
  maxVersion: ProtocolVersion,
): CipherSuite {
  const keyLength = cipher.startsWith("aes-128") ? 16 : 32;
  const macLength = mac === "sha1" ? 20 : mac === "sha256" ? 32 : mac === "sha384" ? 48 : 0;
  return { id, name, opensslName, kx, cipher, keyLength, mac, macLength, prfHash, minVersion, maxVersion };
}

/** Every suite hsmkit knows, in its default preference order. */
export const CIPHER_SUITES: readonly CipherSuite[] = [
  suite(
    0x1301,
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "tls13",
    "aes-128-gcm",
    undefined,
    "sha256",
    TLS13,
    TLS13,
  ),
  suite(
    0x1302,
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_256_GCM_SHA384",
    "tls13",
    "aes-256-gcm",
    undefined,
    "sha384",
    TLS13,
    TLS13,
  ),
  suite(
    0x1303,
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_CHACHA20_POLY1305_SHA256",
    "tls13",
    "chacha20-poly1305",
    undefined,
    "sha256",
    TLS13,
    TLS13,
  ),
  suite(
    0xc02b,
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ecdhe_ecdsa",
    "aes-128-gcm",
    undefined,
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0xc02f,
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ecdhe_rsa",
    "aes-128-gcm",
    undefined,
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0xc02c,
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ecdhe_ecdsa",
    "aes-256-gcm",
    undefined,
    "sha384",
    TLS12,
    TLS12,
  ),
  suite(
    0xc030,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ecdhe_rsa",
    "aes-256-gcm",
    undefined,
    "sha384",
    TLS12,
    TLS12,
  ),
  suite(
    0xcca9,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ecdhe_ecdsa",
    "chacha20-poly1305",
    undefined,
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0xcca8,
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ecdhe_rsa",
    "chacha20-poly1305",
    undefined,
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0xc023,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ecdhe_ecdsa",
    "aes-128-cbc",
    "sha256",
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0xc027,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ecdhe_rsa",
    "aes-128-cbc",
    "sha256",
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0xc024,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "ECDHE-ECDSA-AES256-SHA384",
    "ecdhe_ecdsa",
    "aes-256-cbc",
    "sha384",
    "sha384",
    TLS12,
    TLS12,
  ),
  suite(
    0xc028,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "ecdhe_rsa",
    "aes-256-cbc",
    "sha384",
    "sha384",
    TLS12,
    TLS12,
  ),
  suite(
    0xc009,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "ECDHE-ECDSA-AES128-SHA",
    "ecdhe_ecdsa",
    "aes-128-cbc",
    "sha1",
    "sha256",
    TLS11,
    TLS12,
  ),
  suite(
    0xc013,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "ECDHE-RSA-AES128-SHA",
    "ecdhe_rsa",
    "aes-128-cbc",
    "sha1",
    "sha256",
    TLS11,
    TLS12,
  ),
  suite(
    0xc00a,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ecdhe_ecdsa",
    "aes-256-cbc",
    "sha1",
    "sha256",
    TLS11,
    TLS12,
  ),
  suite(
    0xc014,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "ECDHE-RSA-AES256-SHA",
    "ecdhe_rsa",
    "aes-256-cbc",
    "sha1",
    "sha256",
    TLS11,
    TLS12,
  ),
  suite(
    0x009c,
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "AES128-GCM-SHA256",
    "rsa",
    "aes-128-gcm",
    undefined,
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0x009d,
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "AES256-GCM-SHA384",
    "rsa",
    "aes-256-gcm",
    undefined,
    "sha384",
    TLS12,
    TLS12,
  ),
  suite(
    0x003c,
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "AES128-SHA256",
    "rsa",
    "aes-128-cbc",
    "sha256",
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0x003d,
    "TLS_RSA_WITH_AES_256_CBC_SHA256",
    "AES256-SHA256",
    "rsa",
    "aes-256-cbc",
    "sha256",
    "sha256",
    TLS12,
    TLS12,
  ),
  suite(
    0x002f,
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "AES128-SHA",
    "rsa",
    "aes-128-cbc",
    "sha1",
    "sha256",
    TLS11,
    TLS12,
  ),
  suite(
    0x0035,
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "AES256-SHA",
    "rsa",
    "aes-256-cbc",
    "sha1",
    "sha256",
    TLS11,
    TLS12,
  ),
];

const byId = new Map(CIPHER_SUITES.map((s) => [s.id, s]));
const byName = new Map(CIPHER_SUITES.flatMap((s) => [[s.name, s] as const, [s.opensslName, s] as const]));

/** Looks a suite up by code point. */
export function suiteById(id: number): CipherSuite | undefined {
  return byId.get(id);
}

/** Looks a suite up by IANA or OpenSSL name. */
export function suiteByName(name: string): CipherSuite | undefined {
  return byName.get(name.trim());
}

/** True when the suite may be negotiated at this version. */
export function suiteAllowsVersion(s: CipherSuite, version: number): boolean {
  return version >= s.minVersion && version <= s.maxVersion;
}

/**
 * The default offer: TLS 1.3, then forward-secret AEAD, then ECDHE-CBC. The RSA key-exchange
 * suites (no forward secrecy) are used only when named, as the seed's older peers need.
 */
export function defaultSuites(): CipherSuite[] {
  return CIPHER_SUITES.filter((s) => s.kx !== "rsa");
}

/** Parses a comma-separated list of IANA or OpenSSL suite names; unknown names are an error. */
export function parseSuiteList(list: string): CipherSuite[] {
  const out: CipherSuite[] = [];
  for (const name of list.split(/[,:]/).filter((n) => n.trim() !== "")) {
    const s = suiteByName(name);
    if (!s)
      throw new ConfigError((option) => `unknown cipher suite '${name.trim()}' in ${option("ciphers")}`);
    if (!out.includes(s)) out.push(s);
  }
  if (out.length === 0) throw new ConfigError((option) => `${option("ciphers")} names no cipher suite`);
  return out;
}

/** The `ciphers` option (a list by name, or suites) resolved to suites; the default when absent. */
export function suiteOption(ciphers: string | readonly CipherSuite[] | undefined): CipherSuite[] {
  if (typeof ciphers === "string") return parseSuiteList(ciphers);
  return ciphers ? [...ciphers] : defaultSuites();
}
