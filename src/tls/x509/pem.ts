/**
 * Strict PEM (RFC 7468) decoding and encoding. Text between blocks is ignored (bundles
 * carry comments); inside a block only base64 and whitespace are allowed, so a damaged
 * file fails loudly instead of decoding to different bytes.
 */
import { X509ParseError } from "./errors.ts";

/** Largest PEM input accepted (the Debian CA bundle is about 220 KiB). */
export const MAX_PEM_BYTES = 16 * 1024 * 1024;

/** One decoded PEM block. */
export interface PemBlock {
  /** The label after BEGIN, e.g. "CERTIFICATE". */
  readonly label: string;
  /** The decoded body. */
  readonly der: Buffer;
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]*)-----$/;
const END = /^-----END ([A-Z0-9 ]*)-----$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** True when `data` looks like PEM text rather than DER (used to accept either form). */
export function looksLikePem(data: Uint8Array | string): boolean {
  const text = typeof data === "string" ? data : Buffer.from(data.subarray(0, 4096)).toString("latin1");
  return text.includes("-----BEGIN ");
}

/** Decodes every PEM block in `text`, in order; fails on unterminated or corrupt blocks. */
export function decodePemBlocks(text: string): PemBlock[] {
  if (text.length > MAX_PEM_BYTES) {
    throw new X509ParseError(`PEM input too large (${text.length} bytes > ${MAX_PEM_BYTES})`);
  }
  const blocks: PemBlock[] = [];
  let label: string | undefined;
  let body: string[] = [];
  let skipHeaders = false;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const begin = BEGIN.exec(line);
    const end = END.exec(line);
    if (label === undefined) {
      if (begin) {
        label = begin[1]!;
        body = [];
        skipHeaders = false;
      } else if (end) {
        throw new X509ParseError(`PEM line ${i + 1}: END without BEGIN`);
      }
      continue;
    }
    if (begin) throw new X509ParseError(`PEM line ${i + 1}: BEGIN inside an open ${label} block`);
    if (end) {
      if (end[1] !== label)
        throw new X509ParseError(`PEM line ${i + 1}: END ${end[1]} closes BEGIN ${label}`);
      blocks.push({ label, der: decodeBase64Strict(body.join(""), label, blocks.length + 1) });
      label = undefined;
      continue;
    }
    // RFC 1421 encapsulated headers (Proc-Type, DEK-Info) open legacy encrypted key blocks; they
    // are tolerated there (a chain file may hold such a key) and refused in any other block.
    if (line.includes(":")) {
      if (body.length > 0 || !label.endsWith("PRIVATE KEY")) {
        throw new X509ParseError(`PEM block #${blocks.length + 1} (${label}): unexpected header`);
      }
      skipHeaders = true;
      continue;
    }
    if (skipHeaders && line === "") continue;
    body.push(line);
  }
  if (label !== undefined)
    throw new X509ParseError(`PEM block #${blocks.length + 1} (${label}): no END line`);
  return blocks;
}

/** Encodes DER as a PEM block with 64-column lines. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function decodeBase64Strict(b64: string, label: string, index: number): Buffer {
  const compact = b64.replace(/\s+/g, "");
  if (compact.length === 0) throw new X509ParseError(`PEM block #${index} (${label}): empty body`);
  // Buffer.from(..., "base64") silently skips bad characters; check the alphabet and padding first.
  if (!BASE64.test(compact) || compact.length % 4 !== 0) {
    throw new X509ParseError(`PEM block #${index} (${label}): body is not valid base64`);
  }
  return Buffer.from(compact, "base64");
}
