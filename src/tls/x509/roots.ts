/**
 * Loading trust anchors and certificate bundles from files.
 */
import { readFileSync } from "node:fs";
import { Certificate, parsePemBundle } from "./certificate.ts";
import { X509ParseError } from "./errors.ts";
import { decodePemBlocks } from "./pem.ts";

/** Where Debian keeps the system trust store. */
export const SYSTEM_ROOTS_PATH = "/etc/ssl/certs/ca-certificates.crt";
let systemRoots: Certificate[] | undefined;

/**
 * The Debian system roots, parsed once and cached. Certificates this module cannot parse
 * are skipped (a trust store is not ours to reject wholesale); an unreadable file throws.
 */
export function loadSystemRoots(path = SYSTEM_ROOTS_PATH): Certificate[] {
  if (path === SYSTEM_ROOTS_PATH && systemRoots) return systemRoots;
  const roots: Certificate[] = [];
  for (const block of decodePemBlocks(readFileSync(path, "utf8"))) {
    if (block.label !== "CERTIFICATE") continue;
    try {
      roots.push(Certificate.fromDer(block.der));
    } catch {
      // Skipped on purpose: see the doc comment.
    }
  }
  if (path === SYSTEM_ROOTS_PATH) systemRoots = roots;
  return roots;
}

/** Reads a PEM file of certificates (a chain, or a CA bundle); errors name the file. */
export function loadPemCertificates(path: string): Certificate[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new X509ParseError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return parsePemBundle(text);
  } catch (err) {
    throw new X509ParseError(`${path}: ${(err as Error).message}`);
  }
}
