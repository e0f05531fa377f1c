/**
 * GetSecretValue: the access point's policy must name the secret (`secrets` patterns; key
 * patterns grant no secret), checked before the secret is looked up so a refusal says
 * nothing about which names exist. Text values come back as they are, binary ones base64.
 */
import { KmsServiceError } from "./errors.ts";
import type { KmsInstance } from "./instance.ts";
import { allowsSecret } from "./policy.ts";
import { encodeMessage, type KmsMessages } from "./proto.ts";
import { SecretError, type SecretValue } from "./secrets.ts";
import type { RequestContext } from "./service_common.ts";

const MAX_NAME = 192;
const MAX_VERSION = 64;

/** Serves GetSecretValue. */
export async function getSecretValue(
  instance: KmsInstance,
  req: KmsMessages["GetSecretValueRequest"],
  ctx: RequestContext,
): Promise<Buffer> {
  const name = req.SecretName;
  if (name === "") throw new KmsServiceError("MissingParameter", "The parameter SecretName is missing.");
  if (name.length > MAX_NAME)
    throw new KmsServiceError("InvalidParam", "The parameter SecretName is too long.");
  if (req.VersionId.length > MAX_VERSION || req.VersionStage.length > MAX_VERSION)
    throw new KmsServiceError("InvalidParam", "VersionId and VersionStage are at most 64 characters.");
  ctx.keyId = `secret:${name}`;
  if (!allowsSecret(ctx.accessPoint.policy, name))
    throw new KmsServiceError("Forbidden.NoPermission", `This access point may not read secret "${name}".`);
  let read: SecretValue;
  try {
    read = await instance.secrets.read(name, { versionId: req.VersionId, stage: req.VersionStage });
  } catch (err) {
    throw toServiceError(err);
  }
  const { secret, version, value } = read;
  ctx.detail = `${version.versionId} ${version.stages.join(",") || "-"}`;
  try {
    return encodeMessage("GetSecretValueResponse", {
      SecretName: secret.name,
      SecretType: "Generic",
      SecretData: secret.dataType === "binary" ? value.toString("base64") : value.toString("utf8"),
      SecretDataType: secret.dataType,
      VersionStages: [...version.stages],
      VersionId: version.versionId,
      CreateTime: version.createdAt,
      RequestId: ctx.requestId,
      AutomaticRotation: "Disabled",
    });
  } finally {
    value.fill(0);
  }
}

function toServiceError(err: unknown): unknown {
  if (!(err instanceof SecretError)) return err;
  if (err.kind === "not-found") return new KmsServiceError("Forbidden.ResourceNotFound", err.message);
  if (err.kind === "key-state") return new KmsServiceError("IncorrectKeyState", err.message);
  if (err.kind === "invalid") return new KmsServiceError("InvalidParameter", err.message);
  return err; // corrupt storage: an internal failure, details stay in the server
}
