/**
 * GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext and their Advance forms: a fresh
 * RSA or EC key pair for use outside the KMS, whose private key (PKCS#8) comes back wrapped
 * under an AES KMS key: as an Encrypt blob (Decrypt opens it with the returned Iv) or, for
 * the Advance forms, as an Advance blob (AdvanceDecrypt opens it alone). Specs are limited to
 * the set below: generating an RSA-4096 pair costs seconds of CPU per request, and the RSA
 * generations a process runs at once, and lets wait, are bounded (PAIR_GATE).
 */
import { generateKeyPair, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { advanceSealGcm } from "./advance_ops.ts";
import { KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import { encodeMessage } from "./proto.ts";
import { decodeRequest, type RequestContext, sealGcm, usableKey } from "./service_common.ts";
import { KEY_SPECS, SYMMETRIC_ALGORITHM } from "./specs.ts";
import { WorkGate } from "./work_gate.ts";

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * RSA key pair generations running at once in this process (half of libuv's default thread pool,
 * so Sign and Decrypt keep threads), waiting beyond them, and waiting per access point; more get
 * Rejected.Throttling. An RSA_3072 pair takes 0.1-1 s of a core, so the queue drains in seconds.
 * EC pairs (well under a millisecond) are not gated.
 */
export const PAIR_GATE = new WorkGate(2, 32, 8);

/** Key pair specs a data key pair may have. */
export const DATA_KEY_PAIR_SPECS = ["RSA_2048", "RSA_3072", "EC_P256", "EC_P384"] as const;

/** The four operations this file serves. */
export type DataKeyPairOperation =
  | "GenerateDataKeyPair"
  | "GenerateDataKeyPairWithoutPlaintext"
  | "AdvanceGenerateDataKeyPair"
  | "AdvanceGenerateDataKeyPairWithoutPlaintext";

/** What every form of the request carries (the Advance forms have no Algorithm). */
interface PairRequest {
  KeyId: string;
  Algorithm: string;
  KeyPairSpec: string;
  KeyFormat: string;
  Aad: Buffer;
}

function decodePairRequest(operation: DataKeyPairOperation, body: Buffer): PairRequest {
  if (operation === "GenerateDataKeyPair" || operation === "GenerateDataKeyPairWithoutPlaintext")
    return decodeRequest(`${operation}Request`, body);
  return { ...decodeRequest(`${operation}Request`, body), Algorithm: "" };
}

async function newPair(
  spec: string,
  ctx: RequestContext,
): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  if (!(DATA_KEY_PAIR_SPECS as readonly string[]).includes(spec)) {
    throw new KmsServiceError(
      "InvalidParameter",
      `KeyPairSpec must be one of ${DATA_KEY_PAIR_SPECS.join(", ")}.`,
    );
  }
  const info = KEY_SPECS[spec as (typeof DATA_KEY_PAIR_SPECS)[number]];
  if (info.kind !== "rsa") return generateKeyPairAsync("ec", { namedCurve: info.curve as string });
  return PAIR_GATE.run(() => generateKeyPairAsync("rsa", { modulusLength: info.bits }), {
    owner: ctx.accessPoint.id,
    refusal: () =>
      new KmsServiceError("Rejected.Throttling", "Too many key pairs are being generated; retry later."),
    ...(ctx.abandoned ? { signal: ctx.abandoned } : {}),
  });
}

function exportKey(key: KeyObject, type: "pkcs8" | "spki", format: "PEM" | "DER"): Buffer {
  if (format === "DER") return key.export({ type, format: "der" });
  return Buffer.from(key.export({ type, format: "pem" }) as string);
}

/** Serves one of the four data key pair operations. */
export async function generateDataKeyPair(
  instance: KmsInstance,
  operation: DataKeyPairOperation,
  body: Buffer,
  ctx: RequestContext,
): Promise<Buffer> {
  const req = decodePairRequest(operation, body);
  const advance = operation.startsWith("Advance");
  const withPlaintext = !operation.endsWith("WithoutPlaintext");
  const key = await usableKey(instance, req.KeyId, "ENCRYPT/DECRYPT", ctx);
  if (KEY_SPECS[key.spec].kind !== "aes")
    throw new KmsServiceError("UnsupportedOperation", `${operation} needs a symmetric key.`);
  if (req.Algorithm !== "" && req.Algorithm !== SYMMETRIC_ALGORITHM)
    throw new KmsServiceError("InvalidParameter", "Use Algorithm AES_GCM.");
  if (req.KeyPairSpec === "")
    throw new KmsServiceError("MissingParameter", "The parameter KeyPairSpec is missing.");
  const format = req.KeyFormat === "" ? "PEM" : req.KeyFormat;
  if (format !== "PEM" && format !== "DER")
    throw new KmsServiceError("InvalidParameter", "KeyFormat must be PEM or DER.");
  ctx.detail = `${req.KeyPairSpec} ${format}`;
  const pair = await newPair(req.KeyPairSpec, ctx);
  const privateKey = exportKey(pair.privateKey, "pkcs8", format);
  const publicKey = exportKey(pair.publicKey, "spki", format);
  try {
    const sealed = advance
      ? await advanceSealGcm(instance, key, privateKey, req.Aad, ctx)
      : await sealGcm(instance, key, privateKey, req.Aad, ctx);
    const common = {
      KeyId: key.id,
      Iv: sealed.iv,
      KeyPairSpec: req.KeyPairSpec,
      PrivateKeyCiphertextBlob: sealed.blob,
      PublicKey: publicKey,
      RequestId: ctx.requestId,
      Algorithm: SYMMETRIC_ALGORITHM,
      ...("version" in sealed ? { KeyVersionId: sealed.version.id } : {}),
      ...(withPlaintext ? { PrivateKeyPlaintext: privateKey } : {}),
    };
    return encodeMessage(`${operation}Response`, common);
  } finally {
    privateKey.fill(0);
  }
}
