/**
 * The `kms://HOST:PORT/KEY_ID?client-key=PATH&password-file=PATH&ca=PATH` key reference,
 * parsed strictly: unknown or repeated parameters, a missing key id or client key are errors
 * (a typo must never silently select another key or trust store).
 */
import { KeyError } from "../keys/types.ts";

/** A parsed `kms://` reference. */
export interface KmsKeyRef {
  /** `host:port` for the client. */
  readonly endpoint: string;
  /** Key id (`key-...`) or alias (`alias/NAME`). */
  readonly keyId: string;
  /** Client key file path. */
  readonly clientKey: string;
  /** Password file path. */
  readonly passwordFile: string;
  /** Instance CA file path; undefined means the system trust store. */
  readonly ca: string | undefined;
}

const PARAMS = new Set(["client-key", "password-file", "ca"]);

function bad(message: string): KeyError {
  return new KeyError("bad-reference", `kms:// reference: ${message}`);
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw bad(`bad percent-encoding in the ${what}`);
  }
}

/** Parses a `kms://` reference. */
export function parseKmsRef(ref: string): KmsKeyRef {
  const m = /^kms:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/([^?#]+)(?:\?([^#]*))?$/.exec(ref);
  if (!m) throw bad("expected kms://HOST:PORT/KEY_ID?client-key=PATH&password-file=PATH&ca=PATH");
  const [, host = "", portText = "", keyText = "", query = ""] = m;
  const port = Number(portText);
  if (port < 1 || port > 65535) throw bad(`port ${portText} is out of range`);
  const keyId = decode(keyText, "key id");
  if (!/^(key-[A-Za-z0-9]+|alias\/[A-Za-z0-9_/.-]+)$/.test(keyId))
    throw bad(`"${keyId}" is not a key id or alias`);
  const params = new Map<string, string>();
  for (const part of query === "" ? [] : query.split("&")) {
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    if (!PARAMS.has(name)) throw bad(`unknown parameter "${name}" (client-key, password-file, ca)`);
    if (params.has(name)) throw bad(`parameter "${name}" is repeated`);
    const value = decode(eq < 0 ? "" : part.slice(eq + 1), name);
    if (value === "") throw bad(`parameter "${name}" is empty`);
    params.set(name, value);
  }
  const clientKey = params.get("client-key");
  const passwordFile = params.get("password-file");
  if (!clientKey) throw bad("client-key=PATH is required");
  if (!passwordFile) throw bad("password-file=PATH is required");
  return { endpoint: `${host}:${port}`, keyId, clientKey, passwordFile, ca: params.get("ca") };
}
