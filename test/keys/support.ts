/**
 * Shared checks for key handle tests: signatures judged by node:crypto and by the openssl
 * command line, for every scheme a handle claims.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { constants, createHash, type KeyObject, publicEncrypt, verify } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { publicKeyPem } from "../../src/keys/index.ts";
import { SCHEMES, type SignatureScheme } from "../../src/keys/schemes.ts";
import { KeyError, type KeyErrorKind, type PrivateKeyHandle } from "../../src/keys/types.ts";

const run = promisify(execFile);

/** Runs a command and returns stdout; rejects with stderr in the message on failure. */
export async function sh(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { env: env ?? process.env, maxBuffer: 1 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} failed: ${e.stderr ?? e.message}`);
  }
}

/** node:crypto's verdict on a signature. */
export function nodeVerifies(
  publicKey: KeyObject,
  scheme: SignatureScheme,
  message: Uint8Array,
  sig: Buffer,
): boolean {
  const info = SCHEMES[scheme];
  if (info.padding === "pss") {
    return verify(
      info.hash,
      message,
      { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: info.hashLength },
      sig,
    );
  }
  return verify(info.hash, message, publicKey, sig);
}

/**
 * openssl's verdict: `openssl dgst -verify` (PSS with saltlen = digest length), or for
 * the bare MD5+SHA-1 form `openssl pkeyutl -verify` over the 36-byte digest.
 */
export async function opensslVerifies(
  publicPem: string,
  scheme: SignatureScheme,
  message: Uint8Array,
  sig: Buffer,
): Promise<boolean> {
  const info = SCHEMES[scheme];
  const dir = await mkdtemp(join(tmpdir(), "hsmkit-verify-"));
  try {
    const pub = join(dir, "pub.pem");
    const msg = join(dir, "msg");
    const sigFile = join(dir, "sig");
    await writeFile(pub, publicPem);
    await writeFile(sigFile, sig);
    let args: string[];
    if (info.hash === "md5-sha1") {
      const digest = Buffer.concat([
        createHash("md5").update(message).digest(),
        createHash("sha1").update(message).digest(),
      ]);
      await writeFile(msg, digest);
      args = ["pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", msg, "-sigfile", sigFile];
    } else {
      await writeFile(msg, message);
      args = ["dgst", `-${info.hash}`, "-verify", pub, "-signature", sigFile];
      if (info.padding === "pss") {
        args.push("-sigopt", "rsa_padding_mode:pss", "-sigopt", `rsa_pss_saltlen:${info.hashLength}`);
      }
      args.push(msg);
    }
    try {
      const out = await sh("openssl", args);
      return /Verified OK|Verified Successfully/.test(out);
    } catch {
      return false;
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Async iterable over a buffer in small chunks, to exercise streaming signatures. */
export async function* chunks(data: Uint8Array, size = 7): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

/**
 * Signs with every scheme the handle lists (from bytes and from a stream) and requires
 * node:crypto and openssl to accept each signature, and to reject it for another message.
 */
export async function assertAllSchemesVerify(handle: PrivateKeyHandle): Promise<void> {
  const pem = publicKeyPem(handle);
  assert.ok(handle.schemes.length > 0);
  for (const scheme of handle.schemes) {
    const message = Buffer.from(`message for ${scheme} with ${handle.description}`);
    const sig = await handle.sign(scheme, message);
    assert.ok(nodeVerifies(handle.publicKey, scheme, message, sig), `node rejects ${scheme}`);
    assert.ok(await opensslVerifies(pem, scheme, message, sig), `openssl rejects ${scheme}`);
    assert.ok(
      !nodeVerifies(handle.publicKey, scheme, Buffer.from("other"), sig),
      `${scheme} verifies anything`,
    );
    const streamed = await handle.sign(scheme, chunks(message));
    assert.ok(nodeVerifies(handle.publicKey, scheme, message, streamed), `node rejects streamed ${scheme}`);
  }
}

/** Checks that RSA decryption round-trips and that corrupted ciphertexts reject with kind "decrypt". */
export async function assertDecrypts(handle: PrivateKeyHandle): Promise<void> {
  const secret = Buffer.from("0303 pre-master secret, 48 bytes long.........");
  const ct = publicEncrypt({ key: handle.publicKey, padding: constants.RSA_PKCS1_PADDING }, secret);
  assert.deepEqual(await handle.decrypt(ct), secret);
  const corrupted = Buffer.from(ct);
  corrupted[10] = (corrupted[10] as number) ^ 0x40;
  await assertKeyError(handle.decrypt(corrupted), "decrypt");
  await assertKeyError(handle.decrypt(ct.subarray(1)), "decrypt");
  await assertKeyError(handle.decrypt(Buffer.alloc(ct.length, 0xff)), "decrypt");
  // A correctly padded block with no zero separator (raw RSA on a block we build): rejected.
  const noSeparator = Buffer.alloc(ct.length, 0x11);
  noSeparator[0] = 0;
  noSeparator[1] = 2;
  const raw = publicEncrypt({ key: handle.publicKey, padding: constants.RSA_NO_PADDING }, noSeparator);
  await assertKeyError(handle.decrypt(raw), "decrypt");
  // Only 7 bytes of padding before the separator: one short of the minimum 8.
  const shortPadding = Buffer.from(noSeparator);
  shortPadding[9] = 0;
  const rawShort = publicEncrypt({ key: handle.publicKey, padding: constants.RSA_NO_PADDING }, shortPadding);
  await assertKeyError(handle.decrypt(rawShort), "decrypt");
  // Exactly 8 bytes of padding is valid: the rest is the message.
  const minimal = Buffer.from(noSeparator);
  minimal[10] = 0;
  const rawMinimal = publicEncrypt({ key: handle.publicKey, padding: constants.RSA_NO_PADDING }, minimal);
  assert.deepEqual(await handle.decrypt(rawMinimal), minimal.subarray(11));
  // Block type 1 (signature padding) is not encryption padding.
  const type1 = Buffer.from(minimal);
  type1[1] = 1;
  const rawType1 = publicEncrypt({ key: handle.publicKey, padding: constants.RSA_NO_PADDING }, type1);
  await assertKeyError(handle.decrypt(rawType1), "decrypt");
}

/** Awaits a promise that must reject with a KeyError of the given kind (and message pattern). */
export async function assertKeyError(
  promise: Promise<unknown>,
  kind: KeyErrorKind,
  pattern?: RegExp,
): Promise<KeyError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof KeyError, `expected a KeyError, got ${String(err)}`);
    assert.equal(err.kind, kind, `kind of "${err.message}"`);
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected a KeyError of kind ${kind}, but it succeeded`);
}
