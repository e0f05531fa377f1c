/**
 * Server identity checks (RFC 6125 / RFC 9525). Decisions, all on the strict side:
 * - only subjectAltName is consulted; the subject common name is never used, even when
 *   the certificate has no SAN at all (as in Chrome, Go and RFC 9525);
 * - DNS names compare case-insensitively (ASCII), one trailing dot on either side ignored;
 *   internationalised names compare as A-labels (a U-label host is converted with
 *   node:url's domainToASCII first);
 * - a wildcard is only a whole left-most label `*`, matching exactly one non-empty label;
 *   partial wildcards (`f*.example.com`, `*x.example.com`) and wildcards over fewer than
 *   two further labels (`*.com`, `*`) never match. Without a public-suffix list `*.co.uk`
 *   is accepted;
 * - an IP literal host (v4, v6, [v6]) is matched only against iPAddress SANs, byte for
 *   byte after normalisation; a dNSName that spells an address never matches it, and an
 *   IPv4-mapped IPv6 address does not match an IPv4 SAN.
 */
import { domainToASCII } from "node:url";
import type { Certificate } from "./certificate.ts";
import { formatIpAddress, parseIpAddress } from "./ip.ts";

/** The result of an identity check: `reason` names the certificate and what it is valid for. */
export type IdentityCheck = { ok: true } | { ok: false; reason: string };

/** A normalised reference identity: what the client meant to connect to. */
export type ReferenceIdentity =
  | { readonly kind: "dns"; readonly name: string }
  | { readonly kind: "ip"; readonly bytes: Buffer }
  | { readonly kind: "invalid"; readonly reason: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
const MAX_NAME = 253;

/** Classifies and normalises a host string: an IP literal, a DNS name, or invalid (with why). */
export function parseReferenceIdentity(host: string): ReferenceIdentity {
  const ip = parseIpAddress(host);
  if (ip) return { kind: "ip", bytes: ip };
  if (host.includes(":") || host.startsWith("["))
    return { kind: "invalid", reason: `"${host}" is not a valid host name or IP address` };
  let name = host.endsWith(".") ? host.slice(0, -1) : host;
  // A U-label host (bücher.example) becomes its A-label; domainToASCII returns "" when that fails.
  if ([...name].some((ch) => ch.charCodeAt(0) > 0x7f)) name = domainToASCII(name);
  name = name.toLowerCase();
  const labels = name.split(".");
  if (name.length === 0 || name.length > MAX_NAME || !labels.every((l) => l.length <= 63 && LABEL.test(l))) {
    return { kind: "invalid", reason: `"${host}" is not a valid host name` };
  }
  return { kind: "dns", name };
}

/**
 * True when a dNSName SAN is a syntactically valid host name: letter-digit-hyphen labels
 * (underscore tolerated, as for reference names) of 1 to 63 characters, at most 253 in
 * all, no trailing dot, optionally a whole left-most `*` label. Name constraints can only
 * be applied to names of this shape (webpki refuses the others under DNS constraints).
 */
export function isValidDnsSan(presented: string): boolean {
  const name = presented.startsWith("*.") ? presented.slice(2) : presented;
  if (name.length === 0 || presented.length > MAX_NAME) return false;
  return name.split(".").every((label) => label.length <= 63 && LABEL.test(label.toLowerCase()));
}

/**
 * True when the presented dNSName `pattern` matches the normalised host `name`
 * (lower-case, no trailing dot, as {@link parseReferenceIdentity} returns).
 */
export function matchesDnsName(pattern: string, name: string): boolean {
  let presented = pattern.toLowerCase();
  if (presented.endsWith(".")) presented = presented.slice(0, -1);
  const patternLabels = presented.split(".");
  const hostLabels = name.split(".");
  if (patternLabels.some((l) => l.length === 0)) return false;
  if (!presented.includes("*")) return presented === name;
  // Only a complete left-most label may be a wildcard, with at least two labels after it.
  if (patternLabels[0] !== "*" || patternLabels.slice(1).some((l) => l.includes("*"))) return false;
  if (patternLabels.length < 3 || hostLabels.length !== patternLabels.length) return false;
  return hostLabels.slice(1).join(".") === patternLabels.slice(1).join(".") && hostLabels[0]!.length > 0;
}

/** Checks that `cert` is valid for the host (a DNS name, or an IP literal checked as an IP). */
export function checkHost(cert: Certificate, host: string): IdentityCheck {
  const ref = parseReferenceIdentity(host);
  if (ref.kind === "invalid") return { ok: false, reason: ref.reason };
  if (ref.kind === "ip") return checkIpBytes(cert, ref.bytes);
  if (cert.sanDns.some((pattern) => matchesDnsName(pattern, ref.name))) return { ok: true };
  return {
    ok: false,
    reason: `certificate ${cert.label} is not valid for host "${ref.name}"${presented(cert)}`,
  };
}

/** Checks that `cert` carries an iPAddress SAN equal to `ip` (text or 4/16 bytes). */
export function checkIp(cert: Certificate, ip: string | Uint8Array): IdentityCheck {
  const bytes = typeof ip === "string" ? parseIpAddress(ip) : Buffer.from(ip);
  if (!bytes || (bytes.length !== 4 && bytes.length !== 16)) {
    return { ok: false, reason: `"${String(ip)}" is not a valid IP address` };
  }
  return checkIpBytes(cert, bytes);
}

function checkIpBytes(cert: Certificate, bytes: Buffer): IdentityCheck {
  if (cert.sanIps.some((san) => san.equals(bytes))) return { ok: true };
  return {
    ok: false,
    reason: `certificate ${cert.label} is not valid for IP address ${formatIpAddress(bytes)}${presented(cert)}`,
  };
}

/** Lists what the certificate is valid for, so the user sees the mismatch at once. */
function presented(cert: Certificate): string {
  if (cert.subjectAltNames.length === 0) return " (it has no subjectAltName; the common name is not used)";
  const names = [
    ...cert.sanDns.map((d) => `DNS:${d}`),
    ...cert.sanIps.map((ip) => `IP:${formatIpAddress(ip)}`),
  ];
  if (names.length === 0) return " (its subjectAltName has no DNS or IP entries)";
  const shown = names.slice(0, 8).join(", ");
  return ` (valid for ${shown}${names.length > 8 ? `, and ${names.length - 8} more` : ""})`;
}
