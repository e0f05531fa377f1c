/**
 * Name constraints (RFC 5280 §4.2.1.10) for DNS names, IP addresses and directory names,
 * permitted and excluded. Rules:
 * - a DNS constraint "example.com" covers example.com and every name below it; ".example.com"
 *   covers only names below it; "" covers everything. A wildcard SAN `*.example.com` is
 *   inside "example.com", and is caught by an excluded "bad.example.com" it could expand to;
 * - an IP constraint is address+mask (8 bytes IPv4, 32 bytes IPv6) and only constrains
 *   addresses of its own family; a non-contiguous mask is refused;
 * - a directoryName constraint covers names that start with its RDNs (compared as encoded
 *   bytes, no string normalisation); it applies to the subject (when not empty) and to
 *   directoryName SANs;
 * - constraints on email, URI and other name forms are not implemented: if such a
 *   constraint exists and the certificate carries a name of that form, it is refused
 *   (fail closed) rather than silently accepted.
 */
import type { Certificate, NameConstraints } from "./certificate.ts";
import { formatName, nameRdns } from "./dn.ts";
import type { GeneralName, GeneralNameType } from "./generalnames.ts";
import { isValidDnsSan } from "./hostname.ts";
import { formatIpAddress } from "./ip.ts";

/** The outcome of checking one certificate against one CA's constraints. */
export type ConstraintCheck = { ok: true } | { ok: false; detail: string };

const IMPLEMENTED: ReadonlySet<GeneralNameType> = new Set(["dns", "ip", "dn"]);

/** Checks every name of `cert` (subject and SANs) against `constraints`. */
export function checkNameConstraints(constraints: NameConstraints, cert: Certificate): ConstraintCheck {
  return checkNames(constraints, cert.subjectAltNames, cert.subjectDer);
}

/**
 * Checks a certificate's names, given apart from any certificate (a CA checks them before
 * it signs): the SANs, and the subject DN unless it is empty.
 */
export function checkNames(
  constraints: NameConstraints,
  subjectAltNames: readonly GeneralName[],
  subjectDer: Buffer,
): ConstraintCheck {
  const names: GeneralName[] = [...subjectAltNames];
  if (nameRdns(subjectDer).length > 0) names.push({ type: "dn", der: subjectDer });
  for (const name of names) {
    const sameType = (c: GeneralName) => c.type === name.type;
    const permitted = constraints.permitted.filter(sameType);
    const excluded = constraints.excluded.filter(sameType);
    if (permitted.length === 0 && excluded.length === 0) continue;
    // A name that is not a host name cannot be placed in (or out of) a DNS subtree.
    if (name.type === "dns" && !isValidDnsSan(name.value)) {
      return {
        ok: false,
        detail: `${describe(name)} is not a valid host name, so DNS name constraints cannot apply`,
      };
    }
    if (!IMPLEMENTED.has(name.type)) {
      return {
        ok: false,
        detail: `${describe(name)} is under a ${name.type} name constraint this validator does not implement`,
      };
    }
    for (const constraint of excluded) {
      const covered = covers(constraint, name, "excluded");
      if (covered === "malformed")
        return { ok: false, detail: `malformed constraint ${describe(constraint)}` };
      if (covered)
        return { ok: false, detail: `${describe(name)} is in the excluded subtree ${describe(constraint)}` };
    }
    if (permitted.length === 0) continue;
    let inside = false;
    for (const constraint of permitted) {
      const covered = covers(constraint, name, "permitted");
      if (covered === "malformed")
        return { ok: false, detail: `malformed constraint ${describe(constraint)}` };
      inside ||= covered;
    }
    if (!inside) {
      const allowed = permitted.map(describe).join(", ");
      return { ok: false, detail: `${describe(name)} is outside the permitted subtrees (${allowed})` };
    }
  }
  return { ok: true };
}

/** Whether `constraint` covers `name` (both of the same type). */
function covers(
  constraint: GeneralName,
  name: GeneralName,
  mode: "permitted" | "excluded",
): boolean | "malformed" {
  if (constraint.type === "dns" && name.type === "dns") return dnsCovers(constraint.value, name.value, mode);
  if (constraint.type === "ip" && name.type === "ip") return ipCovers(constraint.bytes, name.bytes);
  if (constraint.type === "dn" && name.type === "dn") return dnCovers(constraint.der, name.der);
  return false;
}

function dnsCovers(constraintText: string, nameText: string, mode: "permitted" | "excluded"): boolean {
  const constraint = constraintText.toLowerCase();
  const name = nameText.toLowerCase().replace(/\.$/, "");
  if (constraint === "") return true;
  if (within(name, constraint)) return true;
  // An excluded subtree must also catch a wildcard that could expand into it:
  // `*.example.com` can become `bad.example.com`, which "bad.example.com" excludes.
  if (mode === "excluded" && name.startsWith("*.")) {
    const parent = name.slice(2);
    const bare = constraint.replace(/^\./, "");
    const firstDot = bare.indexOf(".");
    return firstDot > 0 && bare.slice(firstDot + 1) === parent && !constraint.startsWith(".");
  }
  return false;
}

/** DNS subtree membership: ".x" means strictly below x, "x" means x or below. */
function within(name: string, constraint: string): boolean {
  if (constraint.startsWith(".")) return name.endsWith(constraint) && name.length > constraint.length;
  return name === constraint || name.endsWith(`.${constraint}`);
}

function ipCovers(constraint: Buffer, address: Buffer): boolean | "malformed" {
  if (constraint.length !== 8 && constraint.length !== 32) return "malformed";
  const size = constraint.length / 2;
  const network = constraint.subarray(0, size);
  const mask = constraint.subarray(size);
  if (!isContiguousMask(mask)) return "malformed";
  if (address.length !== size) return false;
  for (let i = 0; i < size; i++) {
    if ((address[i]! & mask[i]!) !== (network[i]! & mask[i]!)) return false;
  }
  return true;
}

function isContiguousMask(mask: Buffer): boolean {
  let seenZero = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (byte >> bit) & 1;
      if (set && seenZero) return false;
      if (!set) seenZero = true;
    }
  }
  return true;
}

function dnCovers(constraint: Buffer, name: Buffer): boolean {
  const prefix = nameRdns(constraint);
  const rdns = nameRdns(name);
  return prefix.length <= rdns.length && prefix.every((rdn, i) => rdn.equals(rdns[i]!));
}

function describe(name: GeneralName): string {
  switch (name.type) {
    case "dns":
      return `DNS:${name.value === "" ? '""' : name.value}`;
    case "ip":
      return name.bytes.length === 8 || name.bytes.length === 32
        ? `IP:${formatIpAddress(name.bytes.subarray(0, name.bytes.length / 2))}/${prefixLength(name.bytes.subarray(name.bytes.length / 2))}`
        : `IP:${formatIpAddress(name.bytes)}`;
    case "dn":
      return `DirName:${formatName(name.der)}`;
    case "email":
      return `email:${name.value}`;
    case "uri":
      return `URI:${name.value}`;
    default:
      return `name with tag 0x${name.tag.toString(16)}`;
  }
}

function prefixLength(mask: Buffer): number {
  let bits = 0;
  for (const byte of mask) for (let bit = 7; bit >= 0; bit--) bits += (byte >> bit) & 1;
  return bits;
}
