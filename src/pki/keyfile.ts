/**
 * Key-related user input: `--type` names, password files, and reading a file key back
 * for PFX export. Keys in tokens or a KMS never pass through here.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parseFileRef } from "../keys/file.ts";
import { isKeyGenType, KEY_GEN_TYPES, type KeyGenType, warnIfSecretFileExposed } from "../keys/index.ts";
import { messageOf, PkiError } from "./errors.ts";

/** Checks and narrows a `--type` value. */
export function parseKeyType(text: string): KeyGenType {
  if (isKeyGenType(text)) return text;
  throw new PkiError(
    "bad-input",
    `unknown key type '${text}' (use ${Object.keys(KEY_GEN_TYPES).join(", ")})`,
  );
}

/**
 * Reads a password file: the first line, without its line ending. The bytes are
 * returned in a Buffer the caller zeroes when done.
 */
export async function readPasswordFile(path: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new PkiError(
      "bad-input",
      `cannot read password file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  let end = data.indexOf(0x0a);
  if (end < 0) end = data.length;
  if (end > 0 && data[end - 1] === 0x0d) end--;
  const password = Buffer.from(data.subarray(0, end));
  data.fill(0);
  if (password.length === 0) throw new PkiError("bad-input", `password file ${path} is empty`);
  warnIfSecretFileExposed(path, "password file");
  return password;
}

/** True when a key reference names a token or KMS key, which no file can hold. */
export function isHardwareKeyRef(ref: string): boolean {
  return /^pkcs11:/i.test(ref) || /^kms:\/\//i.test(ref);
}

/**
 * Opens the private key of a file key reference (`path`, `file:path`, optionally
 * `?passphrase-file=PATH`) as a KeyObject, for the one export that needs the key itself
 * (PFX). Token and KMS references are refused: their keys cannot leave the hardware.
 */
export async function readFileKey(ref: string): Promise<KeyObject> {
  if (isHardwareKeyRef(ref)) {
    throw new PkiError(
      "not-exportable",
      "the private key is in a token or KMS and cannot be exported, so no PFX can be made; use the PEM chain with the key reference instead",
    );
  }
  let parsed: { path: string; passphraseFile: string | undefined };
  try {
    parsed = parseFileRef(ref);
  } catch (err) {
    throw new PkiError("bad-input", messageOf(err));
  }
  let pem: Buffer;
  try {
    pem = await readFile(parsed.path);
  } catch (err) {
    throw new PkiError(
      "key",
      `cannot read key file ${parsed.path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  const passphrase = parsed.passphraseFile ? await readPasswordFile(parsed.passphraseFile) : undefined;
  try {
    return createPrivateKey(passphrase ? { key: pem, passphrase } : { key: pem });
  } catch {
    throw new PkiError(
      "key",
      passphrase
        ? `cannot open key file ${parsed.path}: wrong passphrase or not a private key`
        : `cannot open key file ${parsed.path}: not a private key, or encrypted (add ?passphrase-file=PATH)`,
    );
  } finally {
    passphrase?.fill(0);
    pem.fill(0);
  }
}
