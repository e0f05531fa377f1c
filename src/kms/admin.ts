/**
 * Administrative operations on a KMS data directory (what the `hsmkit kms` subcommands do),
 * each audited with the actor `admin` from `local`. They run beside a live `kms serve` on the
 * same store (SQLite file or PostgreSQL database): the database serialises the writes, and
 * every server reads the store's change counter at the start of each request before it trusts
 * a memoised key or access point, so a change here reaches every node's next request.
 */

import type { CertBagCipher } from "../keys/pkcs12/write_legacy.ts";
import { AccessPointError, type CreatedAccessPoint, createAccessPoint } from "./access_point.ts";
import { createdDetail, REVOKE_OPERATION } from "./access_point_upgrade.ts";
import type { AuditEvent, AuditVerdict } from "./audit.ts";
import type { KmsInstance } from "./instance.ts";
import { checkAlias, KeyAdminError } from "./key_registry.ts";
import { PolicyError, parsePolicy } from "./policy.ts";
import { SECRET_OPERATIONS, secretKeyId } from "./secret_log.ts";
import type { SecretVersionRecord } from "./secret_store.ts";
import { SecretError, type SecretValue } from "./secrets.ts";
import type { KeyRecord, KeyVersionRecord } from "./store.ts";

async function audit(
  instance: KmsInstance,
  operation: string,
  keyId: string,
  detail: string,
  outcome = "ok",
): Promise<void> {
  await instance.audit.append(adminEvent(operation, keyId, detail, outcome));
}

function adminEvent(operation: string, keyId: string, detail: string, outcome = "ok"): AuditEvent {
  return { actor: "admin", source: "local", operation, keyId, outcome, requestId: "", detail };
}

/** The outcome of an admin command refused (as access point refusals carry their code). */
export const REFUSED = "Refused";

/**
 * Runs an admin command; when it is refused (a typed error: unknown secret or key, a name or
 * version id taken or malformed, a key in the wrong state...) the refusal is audited with
 * outcome {@link REFUSED} and the error's message, then the error is rethrown. The messages
 * name secrets, keys and versions, never a value. Nothing was written by the command: its
 * change and its entry commit together (AuditLog.appendWith) or not at all.
 */
async function refusable<T>(
  instance: KmsInstance,
  operation: string,
  keyId: string,
  run: () => Promise<T>,
): Promise<T> {
  // Names resolve through the read cache: first catch up with changes other nodes committed,
  // so an alias another node re-pointed is not acted on at its old key (as each request does).
  await instance.store.checkForChanges();
  try {
    return await run();
  } catch (err) {
    if (isRefusal(err)) {
      try {
        await audit(instance, operation, keyId, err.message, REFUSED);
      } catch {
        // The refusal is what the admin must see; an audit that fails too (a broken
        // database) is no reason to hide it behind a second error.
      }
    }
    throw err;
  }
}

function isRefusal(err: unknown): err is Error {
  return (
    err instanceof SecretError ||
    err instanceof KeyAdminError ||
    err instanceof PolicyError ||
    err instanceof AccessPointError
  );
}

/**
 * Creates a key (and optionally an alias for it): generated first, then the key, its alias
 * and the CreateKey entry commit in one transaction.
 */
export async function adminCreateKey(
  instance: KmsInstance,
  spec: string,
  usage: string,
  description = "",
  alias?: string,
): Promise<KeyRecord> {
  return refusable(instance, "CreateKey", "", async () => {
    if (alias !== undefined) checkAlias(alias);
    const { key, version } = await instance.keys.draft(spec, usage, description);
    return instance.audit.appendWith(async (tx) => {
      await instance.store.createKey(key, version, tx);
      // A new key's alias is a new alias: moving one clients use is a SetAlias, audited as one.
      if (alias !== undefined && !(await instance.store.createAlias(alias, key.id, tx)))
        throw new KeyAdminError(`alias "${alias}" already exists: a new key does not take it over`);
      const detail = `${spec} ${usage}${alias ? ` ${alias}` : ""}`;
      return { result: key, events: [adminEvent("CreateKey", key.id, detail)] };
    });
  });
}

/** Enables or disables a key, or schedules / cancels its deletion, with its entry in one transaction. */
export async function adminSetKeyState(
  instance: KmsInstance,
  idOrAlias: string,
  action: "enable" | "disable" | "schedule-deletion" | "cancel-deletion",
  pendingDays = 7,
): Promise<KeyRecord> {
  return refusable(instance, keyStateOperation(action), idOrAlias, async () => {
    const key = await instance.keys.require(idOrAlias);
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
    await instance.audit.appendWith(async (tx) => {
      if (!(await instance.store.setKeyState(key.id, state, when, tx)))
        throw new KeyAdminError(`no key "${idOrAlias}"`);
      return { result: undefined, events: [adminEvent(keyStateOperation(action), key.id, state)] };
    });
    return instance.keys.require(key.id);
  });
}

/** The audited operation name of a key state change. */
function keyStateOperation(action: string): string {
  return action === "enable" ? "EnableKey" : action === "disable" ? "DisableKey" : action;
}

/** Rotates a key: a new version becomes the one used by new operations (stored with its entry). */
export async function adminRotateKey(instance: KmsInstance, idOrAlias: string): Promise<KeyVersionRecord> {
  return refusable(instance, "RotateKey", idOrAlias, async () => {
    const { key, draft } = await instance.keys.draftVersion(idOrAlias);
    return instance.audit.appendWith(async (tx) => {
      const version = await instance.store.addVersion(key.id, (seq) => ({ ...draft, seq }), tx);
      return { result: version, events: [adminEvent("RotateKey", version.keyId, `v${version.seq}`)] };
    });
  });
}

/** Points an alias at a key, with its SetAlias entry in one transaction. */
export async function adminSetAlias(instance: KmsInstance, alias: string, idOrAlias: string): Promise<void> {
  return refusable(instance, "SetAlias", idOrAlias, async () => {
    checkAlias(alias);
    const key = await instance.keys.require(idOrAlias);
    await instance.audit.appendWith(async (tx) => {
      await instance.store.setAlias(alias, key.id, tx);
      return { result: undefined, events: [adminEvent("SetAlias", key.id, alias)] };
    });
  });
}

/** Removes an alias, with its DeleteAlias entry in one transaction. */
export async function adminDeleteAlias(instance: KmsInstance, alias: string): Promise<void> {
  return refusable(instance, "DeleteAlias", "", async () => {
    await instance.audit.appendWith(async (tx) => {
      // The target as deleted, in the transaction: a remembered one may be another node's past.
      const keyId = await instance.store.deleteAlias(alias, tx);
      if (!keyId) throw new KeyAdminError(`no alias "${alias}"`);
      return { result: undefined, events: [adminEvent("DeleteAlias", keyId, alias)] };
    });
  });
}

/** Options of {@link adminCreateAccessPoint}. */
export interface AccessPointOptions {
  readonly name: string;
  /** Key id / alias patterns (comma list); may be empty when `secrets` names some. */
  readonly keys?: string;
  /** Secret name patterns (comma list); keys patterns never grant secrets. */
  readonly secrets?: string;
  readonly operations?: string;
  readonly sourceIps?: string;
  readonly outDir: string;
  readonly certBagCipher?: CertBagCipher;
}

/** Creates an access point (its row committed with its entry) and writes its client key and password files. */
export async function adminCreateAccessPoint(
  instance: KmsInstance,
  o: AccessPointOptions,
): Promise<CreatedAccessPoint> {
  return refusable(instance, "CreateAccessPoint", "", async () => {
    const policy = parsePolicy(o.keys ?? "", o.operations ?? "*", o.sourceIps ?? "", o.secrets ?? "");
    // The row and its entry commit in one transaction. The public key's hash is in the entry
    // too: it then tells this row from one with a swapped key.
    return createAccessPoint(
      instance,
      {
        name: o.name,
        policy,
        outDir: o.outDir,
        ...(o.certBagCipher ? { certBagCipher: o.certBagCipher } : {}),
      },
      (record) => [
        adminEvent("CreateAccessPoint", "", createdDetail(record.id, o.name, policy, record.publicDer)),
      ],
    );
  });
}

/**
 * Revokes an access point by id or name: the row and its RevokeAccessPoint entry commit in one
 * transaction (the request path and `audit verify` treat that entry as the revocation's
 * record). A row failing its integrity check is overwritten with a sealed Revoked row that
 * grants nothing, and that is audited too: an attacker who breaks a MAC must not make a row
 * unrevokable.
 */
export async function adminRevokeAccessPoint(instance: KmsInstance, idOrName: string): Promise<string> {
  return refusable(instance, REVOKE_OPERATION, "", async () => {
    const ap = await instance.accessPoints.findByIdOrName(idOrName);
    const when = new Date().toISOString();
    return instance.audit.appendWith(async (tx) => {
      if (ap) {
        if (!(await instance.accessPoints.revokeIn(tx, ap.id, when)))
          throw new KeyAdminError(`access point ${ap.id} is already revoked`);
        return { result: ap.id, events: [adminEvent(REVOKE_OPERATION, "", ap.id)] };
      }
      const id = await instance.accessPoints.revokeTampered(tx, idOrName, when);
      if (id === undefined) throw new KeyAdminError(`no access point "${idOrName}"`);
      const overwritten = `access point ${id} failed its integrity check: overwritten with a sealed Revoked row granting nothing`;
      return {
        result: id,
        events: [
          adminEvent(REVOKE_OPERATION, "", id),
          adminEvent("AccessPointIntegrity", "", overwritten, "Overwritten"),
        ],
      };
    });
  });
}

/** Options of {@link adminCreateSecret}. */
export interface SecretOptions {
  readonly name: string;
  /** The first value; zeroed by the caller afterwards. */
  readonly value: Buffer;
  /** An AES key (id or alias) to seal the values; default the instance's secrets key. */
  readonly keyId?: string;
  readonly versionId?: string;
  /** Binary values come back base64 from GetSecretValue; text ones must be UTF-8. */
  readonly binary?: boolean;
  readonly description?: string;
}

/**
 * Creates a secret with its first value (ACSCurrent): the rows and the CreateSecret entry
 * commit in one transaction (SecretVault.create); a refusal is audited.
 */
export async function adminCreateSecret(
  instance: KmsInstance,
  o: SecretOptions,
): Promise<SecretVersionRecord> {
  return refusable(instance, SECRET_OPERATIONS.create, secretKeyId(o.name), () =>
    instance.secrets.create(
      o.name,
      { value: o.value, ...(o.versionId !== undefined ? { versionId: o.versionId } : {}) },
      {
        ...(o.keyId !== undefined ? { keyId: o.keyId } : {}),
        dataType: o.binary ? "binary" : "text",
        description: o.description ?? "",
      },
    ),
  );
}

/**
 * Stores a new value that becomes ACSCurrent, with its PutSecretValue entry in the same
 * transaction; a refusal is audited.
 */
export async function adminPutSecretValue(
  instance: KmsInstance,
  name: string,
  value: Buffer,
  versionId?: string,
): Promise<SecretVersionRecord> {
  return refusable(instance, SECRET_OPERATIONS.put, secretKeyId(name), () =>
    instance.secrets.putValue(name, { value, ...(versionId !== undefined ? { versionId } : {}) }),
  );
}

/** Reads a value as an administrator (audited like an access point's read, refusals too). */
export async function adminGetSecretValue(
  instance: KmsInstance,
  name: string,
  by: { versionId?: string; stage?: string },
): Promise<SecretValue> {
  const read = await refusable(instance, "GetSecretValue", secretKeyId(name), () =>
    instance.secrets.read(name, by),
  );
  await audit(
    instance,
    "GetSecretValue",
    secretKeyId(name),
    `${read.version.versionId} ${read.version.stages.join(",") || "-"}`,
  );
  return read;
}

/** Deletes a secret and every value, with its DeleteSecret entry in the same transaction. */
export async function adminDeleteSecret(instance: KmsInstance, name: string): Promise<void> {
  await refusable(instance, SECRET_OPERATIONS.delete, secretKeyId(name), () => instance.secrets.delete(name));
}

/** Rows for `kms secret list`: name, type, sealing key, versions, current version, created. */
export async function secretTable(instance: KmsInstance): Promise<string[][]> {
  const rows: string[][] = [];
  for (const s of await instance.secrets.repository.list()) {
    const versions = await instance.secrets.repository.versions(s.name);
    // The audit log's ACSCurrent, not the stage rows' (a writer may point those elsewhere).
    const current = (await instance.secrets.history(s.name))?.current;
    rows.push([
      s.name,
      s.dataType,
      s.keyId ?? "instance",
      String(versions.length),
      current ?? "-",
      s.createdAt,
    ]);
  }
  return rows;
}

/**
 * Checks the audit chain, then that every access point the verified log revokes is Revoked
 * (or gone) in its table: a row put back from before its revocation carries a valid MAC, and
 * only the log shows it was revoked since. Then that every secret's ACSCurrent row is the
 * version the log made current, with the bytes it recorded.
 */
export async function adminVerifyAudit(instance: KmsInstance): Promise<AuditVerdict> {
  const verdict = await instance.audit.verify();
  if (!verdict.ok) return verdict;
  const bad = await instance.accessPoints.unrevoked();
  if (bad) {
    const reason = `it revokes access point ${bad.id}, whose row says ${bad.state} (an older copy of the row was put back)`;
    return { ok: false, count: verdict.count, seq: bad.seq, reason };
  }
  const secret = await instance.secrets.firstUnbacked();
  if (!secret) return verdict;
  const reason = `secret ${secret.name}'s ACSCurrent row ${secret.why} (stage or version rows edited or put back)`;
  return { ok: false, count: verdict.count, seq: verdict.count, reason };
}

/** Rows for `kms key list`: id, spec, usage, state, versions, aliases. */
export async function keyTable(instance: KmsInstance): Promise<string[][]> {
  const rows: string[][] = [];
  for (const k of await instance.store.listKeys()) {
    const versions = await instance.keys.versions(k.id);
    const aliases = await instance.store.aliasesOf(k.id);
    rows.push([k.id, k.spec, k.usage, k.state, `v${versions.length}`, aliases.join(",") || "-"]);
  }
  return rows;
}

/**
 * Rows for `kms ap list`: id, name, state, keys, operations, source addresses, secrets. A row
 * failing its integrity check is left out (and reported on stderr and in the audit).
 */
export async function accessPointTable(instance: KmsInstance): Promise<string[][]> {
  return (await instance.accessPoints.list()).map((ap) => [
    ap.id,
    ap.name,
    ap.state,
    ap.policy.keys.join(",") || "-",
    ap.policy.operations.join(","),
    ap.policy.sourceIps.join(",") || "any",
    ap.policy.secrets?.join(",") || "-",
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
