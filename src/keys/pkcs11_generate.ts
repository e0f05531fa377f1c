/**
 * Key pair generation on PKCS#11 tokens: the private half is created sensitive,
 * non-extractable and private, so it can never leave the token; both halves carry the
 * URI's label and one random CKA_ID.
 */
import { randomBytes } from "node:crypto";
import pkcs11js from "pkcs11js";
import { KEY_GEN_TYPES, type KeyGenParams, type KeyGenType } from "./keygen.ts";
import { handleFor, openToken } from "./pkcs11.ts";
import { firstLine } from "./pkcs11_module.ts";
import { findObjects } from "./pkcs11_objects.ts";
import { findCurve } from "./public_key.ts";
import { KeyError, type PrivateKeyHandle } from "./types.ts";

const { CKA_CLASS, CKA_LABEL, CKA_ID, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY } =
  pkcs11js;

/**
 * Generates a key pair on a token: non-extractable, sensitive, private, labelled with the
 * URI's object and sharing a random CKA_ID with its public half. Refuses a label in use.
 */
export async function generatePkcs11Key(ref: string, type: KeyGenType): Promise<PrivateKeyHandle> {
  const { uri, context } = await openToken(ref);
  try {
    const label = uri.object;
    if (label === undefined) {
      throw new KeyError("bad-reference", "key generation needs object=LABEL in the PKCS#11 URI");
    }
    const id = uri.id ?? randomBytes(16);
    const key = await context.exclusive(() =>
      context.withSession(async (session) => {
        if (findObjects(context, session, [{ type: CKA_LABEL, value: label }], 1).length > 0) {
          throw new KeyError("exists", `token '${context.label}' already has an object '${label}'`);
        }
        if (findObjects(context, session, [{ type: CKA_ID, value: id }], 1).length > 0) {
          throw new KeyError(
            "exists",
            `token '${context.label}' already has an object with id ${id.toString("hex")}`,
          );
        }
        const { mechanism, publicTemplate, privateTemplate } = generationTemplates(
          KEY_GEN_TYPES[type],
          label,
          id,
        );
        const { lib } = context.module;
        try {
          const pair = await context.module.track(
            lib.C_GenerateKeyPairAsync(session, mechanism, publicTemplate, privateTemplate),
          );
          return pair.privateKey;
        } catch (err) {
          const reason = firstLine(err);
          throw new KeyError("backend", `key generation on token '${context.label}' failed: ${reason}`, {
            cause: err,
          });
        }
      }),
    );
    return await handleFor(context, key, { ...uri, object: label });
  } catch (err) {
    context.release();
    throw err;
  }
}

/** Mechanism and attribute templates for C_GenerateKeyPair. */
function generationTemplates(
  params: KeyGenParams,
  label: string,
  id: Buffer,
): { mechanism: pkcs11js.Mechanism; publicTemplate: pkcs11js.Template; privateTemplate: pkcs11js.Template } {
  const common: pkcs11js.Template = [
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: CKA_LABEL, value: label },
    { type: CKA_ID, value: id },
  ];
  const publicTemplate: pkcs11js.Template = [
    { type: CKA_CLASS, value: CKO_PUBLIC_KEY },
    ...common,
    { type: pkcs11js.CKA_PRIVATE, value: false },
    { type: pkcs11js.CKA_VERIFY, value: true },
  ];
  const privateTemplate: pkcs11js.Template = [
    { type: CKA_CLASS, value: CKO_PRIVATE_KEY },
    ...common,
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
  ];
  if (params.type === "rsa") {
    publicTemplate.push(
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_MODULUS_BITS, value: params.bits },
      { type: CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
    );
    privateTemplate.push({ type: pkcs11js.CKA_DECRYPT, value: true });
    return { mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN }, publicTemplate, privateTemplate };
  }
  const curve = findCurve(params.curve ?? "");
  if (!curve) throw new KeyError("unsupported", `cannot generate a key on curve ${params.curve}`);
  publicTemplate.push({ type: CKA_EC_PARAMS, value: curve.oidDer });
  // Only signing: tokens default other usages (SoftHSM2 sets CKA_DECRYPT) unless told.
  privateTemplate.push(
    { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_DERIVE, value: false },
  );
  return { mechanism: { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN }, publicTemplate, privateTemplate };
}
