/**
 * RFC 7512 PKCS#11 URIs: `pkcs11:token=T;object=O;type=private?module-path=M&pin-value=P`.
 * Parsing is strict: unknown standard attributes, repeats, bad percent-encoding,
 * characters that must be encoded, and values longer than the token can hold are all
 * rejected with a KeyError of kind "bad-reference", so a typo never silently matches
 * a different key.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { TOKEN_CALL_MODES, type TokenCallMode } from "./pkcs11_calls.ts";
import { KeyError } from "./types.ts";

/** The object classes a URI's `type` attribute can name. */
export type Pkcs11ObjectType = "private" | "public" | "cert" | "secret-key" | "data";

/** A parsed PKCS#11 URI. Text attributes are decoded; `id` is raw bytes. */
export interface Pkcs11Uri {
  /** Token label (CK_TOKEN_INFO.label). */
  readonly token?: string;
  /** Token manufacturer ID. */
  readonly manufacturer?: string;
  /** Token serial number. */
  readonly serial?: string;
  /** Token model. */
  readonly model?: string;
  /** Module (library) manufacturer ID, from C_GetInfo. */
  readonly libraryManufacturer?: string;
  /** Module (library) description, from C_GetInfo. */
  readonly libraryDescription?: string;
  /** Module version "major[.minor]". */
  readonly libraryVersion?: { readonly major: number; readonly minor: number };
  /** Slot description. */
  readonly slotDescription?: string;
  /** Slot manufacturer ID. */
  readonly slotManufacturer?: string;
  /** Slot ID as a number. */
  readonly slotId?: number;
  /** Object label (CKA_LABEL). */
  readonly object?: string;
  /** Object class. */
  readonly type?: Pkcs11ObjectType;
  /** Object ID (CKA_ID) bytes. */
  readonly id?: Buffer;
  /** PIN given inline (pin-value). */
  readonly pinValue?: string;
  /** File the PIN is read from (pin-source, a path or a file: URI, already resolved to a path). */
  readonly pinSource?: string;
  /** Explicit module library path. */
  readonly modulePath?: string;
  /** Module name, resolved against the system's PKCS#11 module directories. */
  readonly moduleName?: string;
  /**
   * Where the key's token calls run (`x-hsmkit-calls`, an RFC 7512 vendor attribute): `auto`
   * (the default), `worker` or `inline`; see pkcs11_calls.ts.
   */
  readonly calls?: TokenCallMode;
}

/** Longest URI accepted; real URIs are a few hundred bytes, this bounds the work on junk. */
export const MAX_PKCS11_URI_LENGTH = 8192;

// CK_TOKEN_INFO / CK_SLOT_INFO / CK_INFO fixed field sizes: a longer value can never match.
const FIELD_LIMITS: Readonly<Record<string, number>> = {
  token: 32,
  manufacturer: 32,
  serial: 16,
  model: 16,
  "library-manufacturer": 32,
  "library-description": 32,
  "slot-description": 64,
  "slot-manufacturer": 32,
};

// Characters RFC 7512 allows unencoded (pk11-pchar / pk11-qchar beyond unreserved).
const UNRESERVED = "A-Za-z0-9\\-._~";
const PATH_CHARS = new RegExp(`^[${UNRESERVED}:\\[\\]@!$'()*+,=&;%]*$`);
const QUERY_CHARS = new RegExp(`^[${UNRESERVED}:\\[\\]@!$'()*+,=/?|;&%]*$`);

const PATH_ATTRS = new Set([
  "token",
  "manufacturer",
  "serial",
  "model",
  "library-manufacturer",
  "library-description",
  "library-version",
  "object",
  "type",
  "id",
  "slot-description",
  "slot-manufacturer",
  "slot-id",
]);
const QUERY_ATTRS = new Set(["pin-source", "pin-value", "module-name", "module-path", "x-hsmkit-calls"]);
const OBJECT_TYPES = new Set<string>(["private", "public", "cert", "secret-key", "data"]);

function bad(message: string): KeyError {
  return new KeyError("bad-reference", `invalid PKCS#11 URI: ${message}`);
}

/** True when `ref` uses the pkcs11: scheme (case-insensitive, as URI schemes are). */
export function isPkcs11Uri(ref: string): boolean {
  return ref.slice(0, 7).toLowerCase() === "pkcs11:";
}

/** Percent-decodes to bytes; every '%' must start a two-digit hex escape. */
export function percentDecode(text: string, what: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw bad(`bad percent-escape in ${what}`);
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (ch < 0x80) {
      out.push(ch);
    } else {
      // The character-set checks reject raw non-ASCII first; this keeps the function total.
      out.push(...Buffer.from(text[i] ?? "", "utf8"));
    }
  }
  return Buffer.from(out);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeText(raw: string, name: string): string {
  try {
    return utf8.decode(percentDecode(raw, name));
  } catch (err) {
    if (err instanceof KeyError) throw err;
    throw bad(`${name} is not valid UTF-8 after percent-decoding`);
  }
}

/** Splits `name=value` pairs, rejecting empty names, missing '=', and repeats. */
function splitAttributes(part: string, separator: string, where: string): Map<string, string> {
  const attrs = new Map<string, string>();
  if (part === "") return attrs;
  for (const item of part.split(separator)) {
    if (item === "") throw bad(`empty attribute in ${where}`);
    const eq = item.indexOf("=");
    if (eq <= 0) throw bad(`attribute '${item.slice(0, 40)}' in ${where} has no name=value form`);
    const name = item.slice(0, eq).toLowerCase();
    if (attrs.has(name)) throw bad(`attribute '${name}' repeated`);
    attrs.set(name, item.slice(eq + 1));
  }
  return attrs;
}

function checkKnown(attrs: Map<string, string>, known: Set<string>, where: string): void {
  for (const name of attrs.keys()) {
    if (known.has(name)) continue;
    // A misspelt or misplaced attribute of ours would otherwise be ignored as another vendor's.
    if (name.startsWith("x-hsmkit-"))
      throw bad(`unknown ${where} attribute '${name}' (hsmkit reads x-hsmkit-calls, in the query)`);
    // RFC 7512 §2.3: vendor attributes start with "x-" and may be ignored; others must be known.
    if (!name.startsWith("x-")) throw bad(`unknown ${where} attribute '${name}'`);
  }
}

function parseVersion(text: string): { major: number; minor: number } {
  const m = /^(\d{1,3})(?:\.(\d{1,3}))?$/.exec(text);
  if (!m) throw bad(`library-version '${text.slice(0, 20)}' is not M or M.N`);
  return { major: Number(m[1]), minor: m[2] === undefined ? 0 : Number(m[2]) };
}

/** pin-source may be a plain path or a file: URI (RFC 7512 §2.4); anything else is refused. */
function resolvePinSource(value: string): string {
  if (value.startsWith("file:")) {
    try {
      return fileURLToPath(value);
    } catch {
      throw bad(`pin-source '${value.slice(0, 80)}' is not a usable file: URI`);
    }
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value)) throw bad("pin-source must be a file path or a file: URI");
  if (value === "") throw bad("pin-source is empty");
  return value;
}

type MutableUri = { -readonly [K in keyof Pkcs11Uri]: Pkcs11Uri[K] };

/** A text attribute, percent-decoded as UTF-8 and held to its PKCS#11 field size. */
function textAttribute(attrs: Map<string, string>, name: string): string | undefined {
  const raw = attrs.get(name);
  if (raw === undefined) return undefined;
  const value = decodeText(raw, name);
  const limit = FIELD_LIMITS[name];
  if (limit !== undefined && Buffer.byteLength(value, "utf8") > limit) {
    throw bad(`${name} is longer than the ${limit} bytes PKCS#11 allows`);
  }
  return value;
}

/** The path attributes: which module, slot, token and object. */
function readPath(path: Map<string, string>, result: MutableUri): void {
  result.token = textAttribute(path, "token");
  result.manufacturer = textAttribute(path, "manufacturer");
  result.serial = textAttribute(path, "serial");
  result.model = textAttribute(path, "model");
  result.libraryManufacturer = textAttribute(path, "library-manufacturer");
  result.libraryDescription = textAttribute(path, "library-description");
  result.slotDescription = textAttribute(path, "slot-description");
  result.slotManufacturer = textAttribute(path, "slot-manufacturer");
  result.object = textAttribute(path, "object");
  const version = textAttribute(path, "library-version");
  if (version !== undefined) result.libraryVersion = parseVersion(version);
  const slotId = textAttribute(path, "slot-id");
  if (slotId !== undefined) {
    if (!/^\d{1,19}$/.test(slotId)) throw bad("slot-id must be a decimal number");
    const n = Number(slotId);
    if (!Number.isSafeInteger(n)) throw bad("slot-id is out of range");
    result.slotId = n;
  }
  const type = textAttribute(path, "type");
  if (type !== undefined) {
    if (!OBJECT_TYPES.has(type))
      throw bad(`type '${type.slice(0, 20)}' is not one of ${[...OBJECT_TYPES].join(", ")}`);
    result.type = type as Pkcs11ObjectType;
  }
  const id = path.get("id");
  if (id !== undefined) {
    result.id = percentDecode(id, "id");
    if (result.id.length === 0) throw bad("id is empty");
    if (result.id.length > 256) throw bad("id is longer than 256 bytes");
  }
}

/** The query attributes: the PIN, the module, and hsmkit's own x-hsmkit-calls. */
function readQuery(query: Map<string, string>, result: MutableUri): void {
  result.pinValue = textAttribute(query, "pin-value");
  const pinSource = textAttribute(query, "pin-source");
  if (pinSource !== undefined) result.pinSource = resolvePinSource(pinSource);
  if (result.pinValue !== undefined && result.pinSource !== undefined) {
    throw bad("give either pin-value or pin-source, not both");
  }
  result.modulePath = textAttribute(query, "module-path");
  result.moduleName = textAttribute(query, "module-name");
  if (result.modulePath !== undefined && result.modulePath === "") throw bad("module-path is empty");
  if (result.moduleName !== undefined && !/^[A-Za-z0-9._+-]{1,100}$/.test(result.moduleName)) {
    throw bad("module-name must be a plain library name such as 'softhsm2'");
  }
  const calls = textAttribute(query, "x-hsmkit-calls");
  if (calls !== undefined) {
    const mode = TOKEN_CALL_MODES.find((m) => m === calls);
    if (!mode) throw bad(`x-hsmkit-calls must be one of ${TOKEN_CALL_MODES.join(", ")}`);
    result.calls = mode;
  }
}

/** Parses a PKCS#11 URI (RFC 7512). Throws KeyError("bad-reference") on malformed input. */
export function parsePkcs11Uri(ref: string): Pkcs11Uri {
  if (ref.length > MAX_PKCS11_URI_LENGTH) throw bad(`longer than ${MAX_PKCS11_URI_LENGTH} characters`);
  if (!isPkcs11Uri(ref)) throw bad("does not start with 'pkcs11:'");
  const body = ref.slice(7);
  const q = body.indexOf("?");
  const pathPart = q < 0 ? body : body.slice(0, q);
  const queryPart = q < 0 ? "" : body.slice(q + 1);
  if (q >= 0 && queryPart === "") throw bad("empty query after '?'");
  if (body.includes("#")) throw bad("fragments ('#') are not allowed");
  if (!PATH_CHARS.test(pathPart)) throw bad(firstBadChar(pathPart, PATH_CHARS, "path"));
  if (!QUERY_CHARS.test(queryPart)) throw bad(firstBadChar(queryPart, QUERY_CHARS, "query"));

  const path = splitAttributes(pathPart, ";", "path");
  const query = splitAttributes(queryPart, "&", "query");
  checkKnown(path, PATH_ATTRS, "path");
  checkKnown(query, QUERY_ATTRS, "query");

  const result: MutableUri = {};
  readPath(path, result);
  readQuery(query, result);
  for (const key of Object.keys(result) as (keyof Pkcs11Uri)[]) {
    if (result[key] === undefined) delete result[key];
  }
  return result;
}

function firstBadChar(part: string, allowed: RegExp, where: string): string {
  for (const ch of part) {
    if (!allowed.test(ch)) {
      const shown = /^[\x21-\x7e]$/.test(ch)
        ? `'${ch}'`
        : `U+${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`;
      return `character ${shown} in the ${where} must be percent-encoded`;
    }
  }
  return `bad character in the ${where}`;
}

/** Where SoftHSM2 lives on Debian-like systems, tried in order after $HSMKIT_PKCS11_MODULE. */
const DEFAULT_MODULES = [
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/** System directories that hold PKCS#11 modules, for `module-name`. */
const MODULE_DIRS = [
  "/usr/lib/x86_64-linux-gnu/pkcs11",
  "/usr/lib/aarch64-linux-gnu/pkcs11",
  "/usr/lib/pkcs11",
  "/usr/lib64/pkcs11",
  "/usr/lib/softhsm",
  "/usr/lib/x86_64-linux-gnu/softhsm",
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib",
];

/**
 * The module library a URI selects: `module-path`, else `module-name` looked up in the
 * system module directories, else $HSMKIT_PKCS11_MODULE, else SoftHSM2's library.
 */
export function resolveModulePath(uri: Pkcs11Uri, env: NodeJS.ProcessEnv = process.env): string {
  if (uri.modulePath !== undefined) return uri.modulePath;
  if (uri.moduleName !== undefined) {
    const name = uri.moduleName;
    const files = name.endsWith(".so") ? [name] : [`${name}.so`, `lib${name}.so`, `${name}-pkcs11.so`];
    for (const dir of MODULE_DIRS) {
      for (const file of files) {
        const candidate = `${dir}/${file}`;
        if (existsSync(candidate)) return candidate;
      }
    }
    throw new KeyError("not-found", `PKCS#11 module '${name}' not found in ${MODULE_DIRS.join(", ")}`);
  }
  const fromEnv = env.HSMKIT_PKCS11_MODULE;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return DEFAULT_MODULES.find((p) => existsSync(p)) ?? (DEFAULT_MODULES[0] as string);
}

/** A URI for printing: the PIN value is replaced so it never reaches logs. */
export function redactPkcs11Uri(ref: string): string {
  return ref.replace(/(pin-value=)[^&]*/gi, "$1***");
}

/**
 * The reference to keep in a file: a PKCS#11 URI without its pin-value attribute (the PIN is
 * given again when the key is used: pin-source, HSMKIT_PIN or an override reference). Any
 * other reference is returned unchanged.
 */
export function withoutPinValue(ref: string): string {
  if (!isPkcs11Uri(ref)) return ref;
  const q = ref.indexOf("?");
  if (q < 0) return ref;
  const kept = ref
    .slice(q + 1)
    .split("&")
    .filter((attr) => !/^pin-value(=|$)/i.test(attr));
  return kept.length > 0 ? `${ref.slice(0, q)}?${kept.join("&")}` : ref.slice(0, q);
}
