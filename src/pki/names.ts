/**
 * Names in certificates: subject DNs, subjectAltName entries (DNS and IP only) and the
 * name constraints an intermediate may carry, parsed strictly from user text and
 * encoded as DER GeneralNames.
 */
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import { PkiError } from "./errors.ts";

/** One subjectAltName entry hsmkit issues. */
export type SanEntry =
  | { readonly type: "dns"; readonly value: string }
  | { readonly type: "ip"; readonly value: string };

/** One name-constraint subtree: a DNS suffix, an IP range or a directory name. */
export type NameConstraint =
  | { readonly type: "dns"; readonly value: string }
  | { readonly type: "ip"; readonly value: string; readonly prefix: number }
  | { readonly type: "dn"; readonly value: string };

/** Upper bound of a commonName (RFC 5280 ub-common-name). */
const MAX_CN_LENGTH = 64;

/**
 * True when `name` is a host name a certificate may carry: LDH labels of 1-63
 * characters, 253 in all, optionally a leading `*.` wildcard over at least two labels.
 */
export function isDnsName(name: string, allowWildcard: boolean): boolean {
  if (name.length === 0 || name.length > 253) return false;
  let labels = name.split(".");
  if (labels[0] === "*") {
    if (!allowWildcard || labels.length < 3) return false;
    labels = labels.slice(1);
  }
  return labels.every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(label));
}

/** The 4 or 16 bytes of an IP address, or undefined when `text` is not one. */
export function ipToBytes(text: string): Uint8Array | undefined {
  const family = isIP(text);
  if (family === 4) return Uint8Array.from(text.split(".").map(Number));
  if (family !== 6) return undefined;
  // An embedded dotted quad (::ffff:1.2.3.4) becomes its two trailing 16-bit groups.
  let body = text;
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(body);
  if (quad?.[1]) {
    const b = quad[1].split(".").map(Number) as [number, number, number, number];
    body = `${body.slice(0, quad.index)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head = "", tail] = body.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  const out = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = Number.parseInt(group, 16);
    out[i * 2] = value >> 8;
    out[i * 2 + 1] = value & 0xff;
  });
  return out;
}

/**
 * Parses `DNS:a.example,IP:10.0.0.1,...` into SAN entries. Only DNS and IP are accepted;
 * DNS names are lower-cased; duplicates are dropped.
 */
export function parseSanList(text: string): SanEntry[] {
  const entries: SanEntry[] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const colon = item.indexOf(":");
    const kind = colon > 0 ? item.slice(0, colon).toUpperCase() : "";
    const value = item.slice(colon + 1).trim();
    let entry: SanEntry;
    if (kind === "DNS") {
      if (!isDnsName(value, true)) throw new PkiError("bad-input", `SAN '${item}' is not a valid DNS name`);
      entry = { type: "dns", value: value.toLowerCase() };
    } else if (kind === "IP") {
      if (!ipToBytes(value)) throw new PkiError("bad-input", `SAN '${item}' is not a valid IP address`);
      entry = { type: "ip", value };
    } else {
      throw new PkiError("bad-input", `SAN '${item}' is not DNS:name or IP:address`);
    }
    if (!entries.some((e) => e.type === entry.type && e.value === entry.value)) entries.push(entry);
  }
  return entries;
}

/** The SAN entry a common name stands for (a host name or an address), if it is one. */
export function sanFromCommonName(cn: string): SanEntry | undefined {
  if (ipToBytes(cn)) return { type: "ip", value: cn };
  if (isDnsName(cn, true)) return { type: "dns", value: cn.toLowerCase() };
  return undefined;
}

/** Checks a common name the user gave: present, printable, within the X.520 bound. */
export function checkCommonName(cn: string): void {
  if (cn.trim() === "") throw new PkiError("bad-input", (name) => `the common name (${name("cn")}) is empty`);
  if (cn.length > MAX_CN_LENGTH) {
    throw new PkiError("bad-input", `the common name is longer than ${MAX_CN_LENGTH} characters`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
  if (/[\u0000-\u001f\u007f]/.test(cn))
    throw new PkiError("bad-input", "the common name holds control characters");
}

/** A subject DN of just the common name, UTF8String-encoded as RFC 5280 asks of new certificates. */
export function subjectName(cn: string): x509.Name {
  checkCommonName(cn);
  return new x509.Name([{ CN: [{ utf8String: cn }] }]);
}

/** Context-specific tag helper: [n] IMPLICIT primitive. */
function implicit(tag: number, bytes: Uint8Array): asn1js.Primitive {
  return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: tag }, valueHex: bytes.slice().buffer });
}

/** DER GeneralName for a SAN entry: dNSName [2] or iPAddress [7]. */
function sanGeneralName(entry: SanEntry): asn1js.Primitive {
  if (entry.type === "dns") return implicit(2, new TextEncoder().encode(entry.value));
  const bytes = ipToBytes(entry.value);
  if (!bytes) throw new PkiError("bad-input", `'${entry.value}' is not an IP address`);
  return implicit(7, bytes);
}

/** The subjectAltName extension for these entries. */
export function subjectAltNameExtension(entries: readonly SanEntry[], critical = false): x509.Extension {
  const value = new asn1js.Sequence({ value: entries.map(sanGeneralName) }).toBER();
  return new x509.Extension("2.5.29.17", critical, value);
}

/**
 * Parses `DNS:example.com,IP:10.0.0.0/8,DN:O=Example` into name constraints. DNS values
 * follow RFC 5280 §4.2.1.10 (a leading dot means subdomains only); IP values are CIDR.
 */
export function parseNameConstraints(text: string): NameConstraint[] {
  const out: NameConstraint[] = [];
  // DN values contain commas, so a new item starts only where a known prefix follows one.
  for (const raw of text.split(/,(?=\s*(?:DNS|IP|DN):)/i)) {
    const item = raw.trim();
    if (item === "") continue;
    const colon = item.indexOf(":");
    const kind = colon > 0 ? item.slice(0, colon).toUpperCase() : "";
    const value = item.slice(colon + 1).trim();
    if (kind === "DNS") {
      const host = value.startsWith(".") ? value.slice(1) : value;
      if (!isDnsName(host, false))
        throw new PkiError("bad-input", `name constraint '${item}' is not a DNS name`);
      out.push({ type: "dns", value: value.toLowerCase() });
    } else if (kind === "IP") {
      const [address = "", bits = ""] = value.split("/");
      const bytes = ipToBytes(address);
      const prefix = Number(bits);
      if (!bytes || !/^\d+$/.test(bits) || prefix > bytes.length * 8) {
        throw new PkiError("bad-input", `name constraint '${item}' is not an IP range like 10.0.0.0/8`);
      }
      out.push({ type: "ip", value: address, prefix });
    } else if (kind === "DN") {
      let rdns = 0;
      try {
        rdns = new x509.Name(value).toJSON().length;
      } catch {
        rdns = 0;
      }
      // The library parses leniently: text without one TYPE=value pair yields an empty name.
      if (rdns === 0 || !/^\s*[A-Za-z0-9.]+\s*=/.test(value)) {
        throw new PkiError("bad-input", `name constraint '${item}' is not a distinguished name`);
      }
      out.push({ type: "dn", value });
    } else {
      throw new PkiError("bad-input", `name constraint '${item}' is not DNS:, IP: or DN:`);
    }
  }
  return out;
}

/** DER GeneralName for a name-constraint base: dNSName, iPAddress with mask, or directoryName [4]. */
function constraintGeneralName(c: NameConstraint): asn1js.BaseBlock {
  if (c.type === "dns") return implicit(2, new TextEncoder().encode(c.value));
  if (c.type === "ip") {
    const address = ipToBytes(c.value) ?? new Uint8Array();
    const mask = new Uint8Array(address.length);
    for (let bit = 0; bit < c.prefix; bit++) mask[bit >> 3] = (mask[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
    const masked = address.map((b, i) => b & (mask[i] ?? 0));
    const both = new Uint8Array(address.length * 2);
    both.set(masked, 0);
    both.set(mask, address.length);
    return implicit(7, both);
  }
  const name = asn1js.fromBER(new x509.Name(c.value).toArrayBuffer()).result;
  return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 4 }, value: [name] });
}

/** The critical nameConstraints extension (RFC 5280 §4.2.1.10). */
export function nameConstraintsExtension(
  permitted: readonly NameConstraint[],
  excluded: readonly NameConstraint[],
): x509.Extension {
  const subtrees = (tag: number, list: readonly NameConstraint[]) =>
    new asn1js.Constructed({
      idBlock: { tagClass: 3, tagNumber: tag },
      value: list.map((c) => new asn1js.Sequence({ value: [constraintGeneralName(c)] })),
    });
  const parts: asn1js.BaseBlock[] = [];
  if (permitted.length > 0) parts.push(subtrees(0, permitted));
  if (excluded.length > 0) parts.push(subtrees(1, excluded));
  return new x509.Extension("2.5.29.30", true, new asn1js.Sequence({ value: parts }).toBER());
}
