/**
 * Administrative operations on a KMS data directory (what the `hsmkit kms` subcommands do),
 * each audited with the actor `admin` from `local`. They run beside a live `kms serve` on the
 * same directory: SQLite WAL serialises the writes, and the server checks on every request
 * whether the database changed (`PRAGMA data_version`) before it trusts a memoised key or
 * access point, so a change here reaches the server's next request.
 */

import type { CertBagCipher } from "../keys/pkcs12/write_legacy.ts";
import { type CreatedAccessPoint, createAccessPoint } from "./access_point.ts";
import type { AuditVerdict } from "./audit.ts";
import type { KmsInstance } from "./instance.ts";
import { KeyAdminError } from "./key_registry.ts";
import { parsePolicy } from "./policy.ts";
import type { KeyRecord, KeyVersionRecord } from "./store.ts";

function audit(
  instance: KmsInstance,
  operation: string,
  keyId: string,
  detail: string,
  outcome = "ok",
): void {
  instance.audit.append({
    actor: "admin",
    source: "local",
    operation,
    keyId,
    outcome,
    requestId: "",
    detail,
  });
}

/** Creates a key (and optionally an alias for it). */
export async function adminCreateKey(
  instance: KmsInstance,
  spec: string,
  usage: string,
  description = "",
  alias?: string,
): Promise<KeyRecord> {
  const key = await instance.keys.create(spec, usage, description);
  if (alias !== undefined) instance.keys.setAlias(alias, key.id);
  audit(instance, "CreateKey", key.id, `${spec} ${usage}${alias ? ` ${alias}` : ""}`);
  return key;
}

/** Enables or disables a key, or schedules / cancels its deletion. */
export function adminSetKeyState(
  instance: KmsInstance,
  idOrAlias: string,
  action: "enable" | "disable" | "schedule-deletion" | "cancel-deletion",
  pendingDays = 7,
): KeyRecord {
  const key = instance.keys.require(idOrAlias);
  if (action === "cancel-deletion" && key.state !== "PendingDeletion") {
    throw new KeyAdminError(`key ${key.id} is not pending deletion`);
  }
  if (
    action === "schedule-deletion" &&
    (!Number.isInteger(pendingDays) || pendingDays < 7 || pendingDays > 366)
  ) {
    throw new KeyAdminError("the pending window is 7 to 366 days");
  }
  const [state, when] =
    action === "enable"
      ? (["Enabled", null] as const)
      : action === "schedule-deletion"
        ? (["PendingDeletion", new Date(Date.now() + pendingDays * 86_400_000).toISOString()] as const)
        : (["Disabled", null] as const);
  instance.store.setKeyState(key.id, state, when);
  audit(
    instance,
    action === "enable" ? "EnableKey" : action === "disable" ? "DisableKey" : action,
    key.id,
    state,
  );
  return instance.keys.require(key.id);
}

/** Rotates a key: a new version becomes the one used by new operations. */
export async function adminRotateKey(instance: KmsInstance, idOrAlias: string): Promise<KeyVersionRecord> {
  const version = await instance.keys.rotate(idOrAlias);
  audit(instance, "RotateKey", version.keyId, `v${version.seq}`);
  return version;
}

/** Points an alias at a key. */
export function adminSetAlias(instance: KmsInstance, alias: string, idOrAlias: string): void {
  instance.keys.setAlias(alias, idOrAlias);
  audit(instance, "SetAlias", instance.keys.require(alias).id, alias);
}

/** Removes an alias. */
export function adminDeleteAlias(instance: KmsInstance, alias: string): void {
  const keyId = instance.store.aliasTarget(alias);
  if (!keyId || !instance.store.deleteAlias(alias)) throw new KeyAdminError(`no alias "${alias}"`);
  audit(instance, "DeleteAlias", keyId, alias);
}

/** Options of {@link adminCreateAccessPoint}. */
export interface AccessPointOptions {
  readonly name: string;
  readonly keys: string;
  readonly operations?: string;
  readonly sourceIps?: string;
  readonly outDir: string;
  readonly certBagCipher?: CertBagCipher;
}

/** Creates an access point and writes its client key and password files. */
export async function adminCreateAccessPoint(
  instance: KmsInstance,
  o: AccessPointOptions,
): Promise<CreatedAccessPoint> {
  const policy = parsePolicy(o.keys, o.operations ?? "*", o.sourceIps ?? "");
  const created = await createAccessPoint(instance, {
    name: o.name,
    policy,
    outDir: o.outDir,
    ...(o.certBagCipher ? { certBagCipher: o.certBagCipher } : {}),
  });
  audit(instance, "CreateAccessPoint", "", `${created.record.id} ${o.name} keys=${policy.keys.join(",")}`);
  return created;
}

/** Revokes an access point by id or name. */
export function adminRevokeAccessPoint(instance: KmsInstance, idOrName: string): string {
  const ap = instance.store.findAccessPointByIdOrName(idOrName);
  if (!ap) throw new KeyAdminError(`no access point "${idOrName}"`);
  if (!instance.store.revokeAccessPoint(ap.id, new Date().toISOString())) {
    throw new KeyAdminError(`access point ${ap.id} is already revoked`);
  }
  audit(instance, "RevokeAccessPoint", "", ap.id);
  return ap.id;
}

/** Checks the audit chain. */
export function adminVerifyAudit(instance: KmsInstance): AuditVerdict {
  return instance.audit.verify();
}

/** Rows for `kms key list`: id, spec, usage, state, versions, aliases. */
export function keyTable(instance: KmsInstance): string[][] {
  return instance.store
    .listKeys()
    .map((k) => [
      k.id,
      k.spec,
      k.usage,
      k.state,
      `v${instance.keys.versions(k.id).length}`,
      instance.store.aliasesOf(k.id).join(",") || "-",
    ]);
}

/** Rows for `kms ap list`: id, name, state, keys, operations, source addresses. */
export function accessPointTable(instance: KmsInstance): string[][] {
  return instance.store
    .listAccessPoints()
    .map((ap) => [
      ap.id,
      ap.name,
      ap.state,
      ap.policy.keys.join(","),
      ap.policy.operations.join(","),
      ap.policy.sourceIps.join(",") || "any",
    ]);
}

/** Formats rows as aligned columns. */
export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
