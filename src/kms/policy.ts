/**
 * Access point policies: which keys (id or alias patterns), which operations, and from which
 * source addresses. Parsed strictly when an access point is created, checked per request.
 */
import { BlockList, isIP } from "node:net";
import { HsmkitError, type OptionText } from "../errors.ts";
import type { AccessPolicy } from "./store.ts";

/** The operations a policy can name (the API names of the protocol). */
export const OPERATIONS = [
  "Sign",
  "Verify",
  "GetPublicKey",
  "Encrypt",
  "Decrypt",
  "GenerateDataKey",
  "GenerateRandom",
  "AdvanceEncrypt",
  "AdvanceDecrypt",
  "AdvanceGenerateDataKey",
  "GenerateDataKeyPair",
  "GenerateDataKeyPairWithoutPlaintext",
  "AdvanceGenerateDataKeyPair",
  "AdvanceGenerateDataKeyPairWithoutPlaintext",
  "GetSecretValue",
] as const;

/** An operation name. */
export type Operation = (typeof OPERATIONS)[number];

/** True when `name` is an operation. */
export function isOperation(name: string): name is Operation {
  return (OPERATIONS as readonly string[]).includes(name);
}

/** Secret name patterns: the name characters plus `*`. */
const SECRET_PATTERN = /^[A-Za-z0-9_/+=.@*-]{1,192}$/;

/** Why a policy string was refused. */
export class PolicyError extends HsmkitError {
  constructor(message: string | OptionText) {
    super(message);
    this.name = "PolicyError";
  }
}

function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/**
 * Builds a policy from comma lists, validating every entry: `keys` are key id or alias
 * patterns, `secrets` secret name patterns (`*` matches any run of characters in both). Keys
 * and secrets are granted separately: `keys: "*"` alone reads no secret. At least one of the
 * two lists must name something.
 */
export function parsePolicy(keys: string, operations = "*", sourceIps = "", secrets = ""): AccessPolicy {
  const keyPatterns = splitList(keys);
  const secretPatterns = splitList(secrets);
  if (keyPatterns.length === 0 && secretPatterns.length === 0)
    throw new PolicyError(
      (name) => `${name("keys")} needs at least one key id, alias or pattern (or give ${name("secrets")})`,
    );
  for (const p of keyPatterns) {
    if (!/^[A-Za-z0-9_./*-]+$/.test(p)) throw new PolicyError(`bad key pattern "${p}"`);
  }
  for (const p of secretPatterns) {
    if (!SECRET_PATTERN.test(p)) throw new PolicyError(`bad secret name pattern "${p}"`);
  }
  const ops = splitList(operations);
  if (ops.length === 0)
    throw new PolicyError((name) => `${name("operations")} needs at least one operation or *`);
  for (const op of ops) {
    if (op !== "*" && !isOperation(op)) {
      throw new PolicyError(`unknown operation "${op}" (known: ${OPERATIONS.join(", ")}, or *)`);
    }
  }
  const ips = splitList(sourceIps);
  for (const ip of ips) parseCidr(ip);
  return {
    keys: keyPatterns,
    operations: ops,
    sourceIps: ips,
    ...(secretPatterns.length > 0 ? { secrets: secretPatterns } : {}),
  };
}

function parseCidr(text: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } {
  const [address = "", prefixText] = text.split("/");
  const version = isIP(address);
  if (version === 0) throw new PolicyError(`bad source address "${text}"`);
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (
    !Number.isInteger(prefix) ||
    prefix < 0 ||
    prefix > max ||
    (prefixText !== undefined && !/^\d+$/.test(prefixText))
  ) {
    throw new PolicyError(`bad prefix length in "${text}"`);
  }
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

const compiled = new Map<string, RegExp>();

function globMatches(pattern: string, value: string): boolean {
  let re = compiled.get(pattern);
  if (!re) {
    const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
    re = new RegExp(`^${escaped}$`);
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re.test(value);
}

/** Whether the policy lets this operation run. */
export function allowsOperation(policy: AccessPolicy, operation: string): boolean {
  return policy.operations.includes("*") || policy.operations.includes(operation);
}

/** Whether the policy covers a key, named by its id or any of its aliases. */
export function allowsKey(policy: AccessPolicy, keyId: string, aliases: readonly string[]): boolean {
  return policy.keys.some((p) => globMatches(p, keyId) || aliases.some((a) => globMatches(p, a)));
}

/** Whether the policy names this secret (policies written before secrets existed name none). */
export function allowsSecret(policy: AccessPolicy, name: string): boolean {
  return (policy.secrets ?? []).some((p) => globMatches(p, name));
}

/** Whether a request from `address` is allowed (an empty list allows every address). */
export function allowsSource(policy: AccessPolicy, address: string): boolean {
  if (policy.sourceIps.length === 0) return true;
  const plain = address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  const family = isIP(plain) === 4 ? "ipv4" : "ipv6";
  const list = new BlockList();
  for (const entry of policy.sourceIps) {
    const cidr = parseCidr(entry);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return isIP(plain) !== 0 && list.check(plain, family);
}
