/**
 * Secrets: named values (a database password, an API token) with versions and version
 * stages, sealed at rest with AES-256-GCM under an AES KMS key (`keyId`) or, when none is
 * named, under the instance's secrets key (32 random bytes wrapped by the master key, made on
 * first use). The additional data names the secret, the version and the sealing key version,
 * so a value copied onto another row, or onto another version id, does not open.
 *
 * Which version carries which stage is the audit log's word, not the stage rows'
 * (secret_log.ts): every write here commits with its admin audit entry in one transaction, and
 * a read returns a version only when the verified log created it with those sealed bytes and,
 * read by stage, gave it that stage. A read the log does not back is refused and reported.
 *
 * Reading is the hot path (applications fetch a password on every start or pool refill):
 * the repository memoises rows until the database changes, and the sealing keys stay
 * unwrapped in memory as KeyObjects (the KMS key version through the key registry as for
 * every operation; the instance secrets key here). Plaintext values are never cached: each
 * read opens the value again, which costs one AES-GCM pass over a few bytes.
 */
import { createSecretKey, type KeyObject, randomBytes, randomUUID } from "node:crypto";
import type { AuditEvent } from "./audit.ts";
import type { KmsInstance } from "./instance.ts";
import type { IntegrityReports } from "./integrity_reports.ts";
import { aesGcmOpen, aesGcmSeal } from "./key_ops.ts";
import {
  loggedStages,
  SECRET_OPERATIONS,
  type SecretHistory,
  SecretLog,
  sealedDigest,
  secretDetail,
  secretKeyId,
  whyUnbacked,
} from "./secret_log.ts";
import {
  CURRENT_STAGE,
  type SecretRecord,
  type SecretRepository,
  type SecretVersionRecord,
  StoreSecretRepository,
} from "./secret_store.ts";
import { KEY_SPECS } from "./specs.ts";
import type { KeyRecord } from "./store.ts";

/** Fresh looks a secret read takes while its stage row and the log disagree differently each time. */
const LOOKUP_RETRIES = 8;
/** Secret names: letters, digits and `_ / + = . @ -`, 1 to 192 characters. */
export const SECRET_NAME = /^[A-Za-z0-9_/+=.@-]{1,192}$/;
/** Version ids and stages: letters, digits and `_ . -`, 1 to 64 characters. */
export const SECRET_VERSION = /^[A-Za-z0-9_.-]{1,64}$/;
/** Largest secret value. */
export const MAX_SECRET_BYTES = 64 * 1024;

const SECRETS_KEY_META = "secrets.key";
const SECRETS_KEY_AAD = "instance-secrets-key";

/** Why a secret operation was refused; `kind` tells the service which protocol code to use. */
export class SecretError extends Error {
  constructor(
    readonly kind: "invalid" | "not-found" | "key-state" | "corrupt",
    message: string,
  ) {
    super(message);
    this.name = "SecretError";
  }
}

/** A value read back. */
export interface SecretValue {
  readonly secret: SecretRecord;
  readonly version: SecretVersionRecord;
  /** The plaintext; the caller zeroes it once encoded. */
  readonly value: Buffer;
}

/** What a new value needs. */
export interface NewSecretValue {
  readonly value: Buffer;
  /** Default: a random UUID. */
  readonly versionId?: string;
}

/**
 * Secrets of one KMS instance. Writes are an administrator's (admin.ts) and audited as such,
 * each in the transaction of its change.
 */
export class SecretVault {
  private instanceKey: KeyObject | undefined;
  private readonly log: SecretLog;

  /** `reports` takes reads the audit log does not back (rate-limited: requests meet them). */
  constructor(
    private readonly instance: KmsInstance,
    private readonly reports: IntegrityReports,
    readonly repository: SecretRepository = new StoreSecretRepository(instance.store),
  ) {
    this.log = new SecretLog(instance.store, instance.audit);
  }

  /** What the verified audit log says about a secret (its versions and stages). */
  history(name: string): Promise<SecretHistory | undefined> {
    return this.log.history(name);
  }

  /** Creates a secret with its first value (ACSCurrent), audited as CreateSecret. */
  async create(
    name: string,
    first: NewSecretValue,
    o: { keyId?: string; dataType?: "text" | "binary"; description?: string } = {},
  ): Promise<SecretVersionRecord> {
    if (!SECRET_NAME.test(name))
      throw new SecretError("invalid", "a secret name is 1-192 letters, digits or _ / + = . @ -");
    const key = o.keyId === undefined ? undefined : await this.sealingKey(o.keyId);
    const secret: SecretRecord = {
      name,
      keyId: key?.id ?? null,
      dataType: o.dataType ?? "text",
      description: o.description ?? "",
      createdAt: new Date().toISOString(),
    };
    const version = await this.seal(secret, first);
    const detail = secretDetail(version.versionId, sealedDigest(version.iv, version.sealed), secret.keyId);
    return this.instance.audit.appendWith(async (tx) => {
      if (!(await this.repository.create(secret, version, tx)))
        throw new SecretError("invalid", `a secret named "${name}" exists`);
      return { result: version, events: [adminEvent(SECRET_OPERATIONS.create, name, detail)] };
    });
  }

  /**
   * Adds a value that becomes ACSCurrent (the former one becomes ACSPrevious), audited as
   * PutSecretValue.
   */
  async putValue(name: string, next: NewSecretValue): Promise<SecretVersionRecord> {
    const secret = await this.require(name);
    const version = await this.seal(secret, next);
    const detail = secretDetail(version.versionId, sealedDigest(version.iv, version.sealed));
    return this.instance.audit.appendWith(async (tx) => {
      // ACSPrevious from the log (under the audit lock), not from stage rows a writer may have moved.
      const previous = (await this.log.currentIn(tx, name)) ?? null;
      if (!(await this.repository.putVersion(version, tx, previous)))
        throw new SecretError("invalid", `secret "${name}" already has a version "${version.versionId}"`);
      return { result: version, events: [adminEvent(SECRET_OPERATIONS.put, name, detail)] };
    });
  }

  /**
   * Reads a value by version id, else by stage (default ACSCurrent). The stages it reports
   * are the audit log's.
   */
  async read(name: string, by: { versionId?: string; stage?: string } = {}): Promise<SecretValue> {
    const secret = await this.require(name);
    const stage = by.versionId ? undefined : by.stage || CURRENT_STAGE;
    // The stage row and the log are read apart: a put committed by another node between the two
    // reads looks like a mismatch, and with nodes putting continuously a second look can straddle
    // the next put. Tampering is a disagreement that stays the same over a fresh look at the
    // change counter; one that keeps moving is puts in flight: retried, then refused unreported.
    let version: SecretVersionRecord | undefined;
    let previous: string | undefined;
    for (let look = 0; !version; look++) {
      const found = await this.lookup(name, by.versionId, stage);
      if (typeof found !== "string") version = found;
      else if (found === previous) {
        this.reports.one(name, `${found.split("\n")[0]}: refused (rows edited or put back in the database)`);
        throw new SecretError("corrupt", `secret "${name}" failed its integrity check`);
      } else if (look >= LOOKUP_RETRIES) {
        throw new SecretError("corrupt", `secret "${name}" kept changing while it was read`);
      } else {
        previous = found;
        await this.instance.store.checkForChanges();
      }
    }
    if (by.versionId && by.stage && !version.stages.includes(by.stage))
      throw new SecretError("not-found", `secret "${name}" has no such version`);
    const key = await this.openingKey(secret, version);
    const value = aesGcmOpen(key, version.iv, sealAad(secret, version), version.sealed);
    if (!value) throw new SecretError("corrupt", `the stored value of "${name}" does not open`);
    return { secret, version, value };
  }

  /** A secret by name, or a not-found {@link SecretError}. */
  async require(name: string): Promise<SecretRecord> {
    const secret = SECRET_NAME.test(name) ? await this.repository.find(name) : undefined;
    if (!secret) throw new SecretError("not-found", `no secret "${name}"`);
    return secret;
  }

  /** Deletes a secret and all its values, audited as DeleteSecret. */
  async delete(name: string): Promise<void> {
    await this.instance.audit.appendWith(async (tx) => {
      if (!(await this.repository.delete(name, tx)))
        throw new SecretError("not-found", `no secret "${name}"`);
      return { result: undefined, events: [adminEvent(SECRET_OPERATIONS.delete, name, "")] };
    });
  }

  /**
   * The stored version with the stages the verified log gives it, when the log created that
   * version of that secret with these sealed bytes and, read by `stage`, gave it that stage;
   * otherwise why not (the row edited or put back: an older ACSCurrent, a version moved or
   * renamed), which the caller refuses and reports, never serves.
   */
  private async lookup(
    name: string,
    versionId: string | undefined,
    stage: string | undefined,
  ): Promise<SecretVersionRecord | string> {
    const stored = await this.repository.version(
      name,
      stage === undefined ? { versionId: versionId ?? "" } : { stage },
    );
    if (!stored) throw new SecretError("not-found", `secret "${name}" has no such version`);
    const history = await this.log.history(name);
    const why = whyUnbacked(history, stored, stage);
    // The log's view goes with the reason (second line): a look that straddled a put differs in it.
    if (why !== undefined) return `${why}\nlog: ${history?.current ?? "-"} ${history?.previous ?? "-"}`;
    return { ...stored, stages: history ? loggedStages(history, stored.versionId) : [] };
  }

  /**
   * For `audit verify`: the first secret whose ACSCurrent row the verified log does not back
   * (an older or foreign version staged, sealed bytes changed, no entry creating it), with why.
   * Requests already refuse such reads; this shows the rows were edited.
   */
  async firstUnbacked(): Promise<{ name: string; why: string } | undefined> {
    for (const secret of await this.repository.list()) {
      const stored = await this.repository.version(secret.name, { stage: CURRENT_STAGE });
      const history = await this.log.history(secret.name);
      const why = stored
        ? whyUnbacked(history, stored, CURRENT_STAGE)
        : history?.current !== undefined
          ? `has no ACSCurrent row, where the audit log says ${history.current}`
          : undefined;
      if (why !== undefined) return { name: secret.name, why };
    }
    // A secret the log created and never deleted must still have its row: one removed in the
    // database is gone for clients (not found), and only this shows it was not an admin's delete.
    const listed = new Set((await this.repository.list()).map((s) => s.name));
    for (const name of await this.log.names()) {
      if (!listed.has(name))
        return { name, why: "is gone from the database, but the audit log never deleted it" };
    }
    return undefined;
  }

  /** A key that may seal secrets: an Enabled AES key. */
  private async sealingKey(idOrAlias: string): Promise<KeyRecord> {
    const key = await this.instance.keys.resolve(idOrAlias);
    if (!key) throw new SecretError("invalid", `no key "${idOrAlias}"`);
    if (KEY_SPECS[key.spec].kind !== "aes")
      throw new SecretError("invalid", `key ${key.id} is ${key.spec}: secrets need an AES key`);
    if (key.state !== "Enabled") throw new SecretError("key-state", `key ${key.id} is ${key.state}`);
    return key;
  }

  private async seal(secret: SecretRecord, next: NewSecretValue): Promise<SecretVersionRecord> {
    const versionId = next.versionId ?? randomUUID();
    if (!SECRET_VERSION.test(versionId))
      throw new SecretError("invalid", "a version id is 1-64 letters, digits or _ . -");
    if (next.value.length === 0 || next.value.length > MAX_SECRET_BYTES)
      throw new SecretError("invalid", `a secret value is 1 to ${MAX_SECRET_BYTES} bytes`);
    if (secret.dataType === "text" && !isUtf8(next.value))
      throw new SecretError("invalid", "the value is not UTF-8 text (store it as binary)");
    let keyVersionId: string | null = null;
    let key: KeyObject;
    if (secret.keyId === null) key = await this.secretsKey();
    else {
      const record = await this.sealingKey(secret.keyId);
      const version = await this.instance.keys.primaryVersion(record.id);
      const loaded = await this.instance.keys.load(record, version);
      if (loaded.kind !== "aes") throw new SecretError("invalid", "secrets need an AES key");
      key = loaded.secretKey;
      keyVersionId = version.id;
    }
    const draft = { secretName: secret.name, versionId, createdAt: new Date().toISOString(), keyVersionId };
    const iv = randomBytes(12);
    const sealed = aesGcmSeal(key, iv, sealAad(secret, draft), next.value);
    return { ...draft, iv, sealed, stages: [CURRENT_STAGE] };
  }

  private async openingKey(secret: SecretRecord, version: SecretVersionRecord): Promise<KeyObject> {
    if (secret.keyId === null) return this.secretsKey();
    const key = await this.instance.keys.resolve(secret.keyId);
    if (!key) throw new SecretError("corrupt", `the key of secret "${secret.name}" is gone`);
    if (key.state !== "Enabled") {
      this.instance.keys.forget(key.id);
      throw new SecretError("key-state", `the key that seals secret "${secret.name}" is ${key.state}`);
    }
    const keyVersion = version.keyVersionId
      ? await this.instance.store.version(version.keyVersionId)
      : undefined;
    if (!keyVersion || keyVersion.keyId !== key.id)
      throw new SecretError("corrupt", `the key version of secret "${secret.name}" is gone`);
    const loaded = await this.instance.keys.load(key, keyVersion);
    if (loaded.kind !== "aes") throw new SecretError("corrupt", "secrets need an AES key");
    return loaded.secretKey;
  }

  /** The instance secrets key, made and wrapped on first use, unwrapped once per process. */
  private async secretsKey(): Promise<KeyObject> {
    if (this.instanceKey) return this.instanceKey;
    let wrapped = await this.instance.store.getMeta(SECRETS_KEY_META);
    if (!wrapped) {
      const fresh = randomBytes(32);
      // INSERT OR IGNORE: when two processes race, both use whichever was stored first.
      wrapped = await this.instance.store.initMeta(
        SECRETS_KEY_META,
        await this.instance.master.wrap(fresh, SECRETS_KEY_AAD),
      );
      fresh.fill(0);
    }
    const raw = await this.instance.master.unwrap(wrapped, SECRETS_KEY_AAD);
    this.instanceKey = createSecretKey(raw);
    raw.fill(0);
    return this.instanceKey;
  }
}

/** An administrator's secret entry (only such entries move stages: secret_log.ts). */
function adminEvent(operation: string, name: string, detail: string): AuditEvent {
  return {
    actor: "admin",
    source: "local",
    operation,
    keyId: secretKeyId(name),
    outcome: "ok",
    requestId: "",
    detail,
  };
}

function sealAad(
  secret: SecretRecord,
  v: Pick<SecretVersionRecord, "secretName" | "versionId" | "keyVersionId">,
): Buffer {
  return Buffer.from(
    `kms-secret:${v.secretName}:${v.versionId}:${secret.dataType}:${secret.keyId ?? ""}:${v.keyVersionId ?? ""}`,
  );
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
