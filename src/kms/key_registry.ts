/**
 * KMS keys: creation, rotation, lookup by id or alias, and unwrapping of versions for use.
 * Material is wrapped under the master key with AAD naming the key and version, so a blob
 * copied onto another row does not open. Unwrapped versions are cached as KeyObjects
 * (a version's material never changes, and the material stays in OpenSSL's memory, never in
 * a JavaScript string or a log); state and policy are checked on every request before a
 * cached version is used, and a key found unusable has its cached versions dropped.
 */
import { createPublicKey, randomBytes } from "node:crypto";
import { KmsServiceError } from "./errors.ts";
import { generateMaterial, type LoadedKey, loadMaterial } from "./key_ops.ts";
import type { MasterKey } from "./master_key.ts";
import { isKeySpec, isKeyUsage, type KeySpec, type KeyUsage, usagesFor } from "./specs.ts";
import type { SqlExecutor } from "./store/driver.ts";
import type { KeyRecord, KeyVersionRecord, Store } from "./store.ts";

/** Why an admin key operation was refused. */
export class KeyAdminError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyAdminError";
  }
}

/** The additional data a version's material is wrapped with. */
export function materialAad(keyId: string, versionId: string): string {
  return `kms-key:${keyId}:${versionId}`;
}

/** New key ids: `key-` and 24 hex digits. */
function newKeyId(): string {
  return `key-${randomBytes(12).toString("hex")}`;
}

const ALIAS = /^alias\/[A-Za-z0-9_/.-]{1,200}$/;

/** Key lifecycle and use. */
export class KeyRegistry {
  /** Unwrapped versions: key id -> version id -> key objects. */
  private readonly cache = new Map<string, Map<string, LoadedKey>>();

  constructor(
    private readonly store: Store,
    private readonly master: MasterKey,
  ) {}

  /** Creates a key of `spec` for `usage`; its first version is generated and wrapped. */
  async create(spec: string, usage: string, description = ""): Promise<KeyRecord> {
    const { key, version } = await this.draft(spec, usage, description);
    await this.store.createKey(key, version);
    return key;
  }

  /**
   * A new key and its first version, generated and wrapped but not stored: the caller stores
   * them (Store.createKey) in the transaction of its audit entry, outside which the slow
   * generation runs.
   */
  async draft(
    spec: string,
    usage: string,
    description = "",
  ): Promise<{ key: KeyRecord; version: KeyVersionRecord }> {
    if (!isKeySpec(spec)) throw new KeyAdminError(`unknown key spec "${spec}"`);
    if (!isKeyUsage(usage))
      throw new KeyAdminError(`unknown key usage "${usage}" (SIGN/VERIFY or ENCRYPT/DECRYPT)`);
    if (!usagesFor(spec).includes(usage))
      throw new KeyAdminError(`a ${spec} key cannot be used for ${usage}`);
    const id = newKeyId();
    const now = new Date().toISOString();
    const version = await this.newVersion(id, spec, 1, now);
    const key: KeyRecord = {
      id,
      spec,
      usage: usage as KeyUsage,
      state: "Enabled",
      description,
      createdAt: now,
      deletionDate: null,
    };
    return { key, version };
  }

  private async newVersion(
    keyId: string,
    spec: KeySpec,
    seq: number,
    now: string,
  ): Promise<KeyVersionRecord> {
    const material = await generateMaterial(spec);
    const versionId = randomBytes(16).toString("hex");
    try {
      const wrapped = await this.master.wrap(material.secret, materialAad(keyId, versionId));
      return { id: versionId, keyId, seq, createdAt: now, publicDer: material.publicDer ?? null, wrapped };
    } finally {
      material.secret.fill(0);
    }
  }

  /** Adds a new version; new operations use it, old ones stay for verify and decrypt. */
  async rotate(idOrAlias: string): Promise<KeyVersionRecord> {
    const { key, draft } = await this.draftVersion(idOrAlias);
    return this.store.addVersion(key.id, (seq) => ({ ...draft, seq }));
  }

  /**
   * A key's next version, generated outside any transaction (it is slow); the caller numbers
   * and stores it inside one (Store.addVersion, serialised), seq 0 until then.
   */
  async draftVersion(idOrAlias: string): Promise<{ key: KeyRecord; draft: KeyVersionRecord }> {
    const key = await this.require(idOrAlias);
    return { key, draft: await this.newVersion(key.id, key.spec, 0, new Date().toISOString()) };
  }

  /** A key by id or alias. */
  resolve(idOrAlias: string): Promise<KeyRecord | undefined> {
    return this.store.findKey(idOrAlias);
  }

  /** A key by id or alias, or a {@link KeyAdminError}. */
  async require(idOrAlias: string): Promise<KeyRecord> {
    const key = await this.resolve(idOrAlias);
    if (!key) throw new KeyAdminError(`no key "${idOrAlias}"`);
    return key;
  }

  /** Points `alias/NAME` at a key. */
  async setAlias(alias: string, idOrAlias: string, tx?: SqlExecutor): Promise<void> {
    checkAlias(alias);
    await this.store.setAlias(alias, (await this.require(idOrAlias)).id, tx);
  }

  /** A key's versions, newest first. */
  versions(keyId: string): Promise<KeyVersionRecord[]> {
    return this.store.versions(keyId);
  }

  /** The newest version (the one Sign, Encrypt and GenerateDataKey use). */
  async primaryVersion(keyId: string): Promise<KeyVersionRecord> {
    const v = await this.store.newestVersion(keyId);
    if (!v) throw new KmsServiceError("InternalFailure", "the key has no versions");
    return v;
  }

  /** Unwraps a version (once; cached afterwards). */
  async load(key: KeyRecord, version: KeyVersionRecord): Promise<LoadedKey> {
    const cached = this.cache.get(key.id)?.get(version.id);
    if (cached) return cached;
    const secret = await this.master.unwrap(version.wrapped, materialAad(key.id, version.id));
    try {
      const loaded = loadMaterial(key.spec, secret);
      const versions = this.cache.get(key.id) ?? new Map<string, LoadedKey>();
      versions.set(version.id, loaded);
      this.cache.set(key.id, versions);
      return loaded;
    } finally {
      secret.fill(0);
    }
  }

  /**
   * Drops a key's unwrapped versions (it was found disabled or pending deletion): material
   * that no operation may use should not linger in memory; re-enabling unwraps it again.
   */
  forget(keyId: string): void {
    this.cache.delete(keyId);
  }

  /** The PEM public key of a version (asymmetric keys only). */
  publicKeyPem(version: KeyVersionRecord): string {
    if (!version.publicDer)
      throw new KmsServiceError("UnsupportedOperation", "a symmetric key has no public key");
    return createPublicKey({ key: version.publicDer, format: "der", type: "spki" }).export({
      type: "spki",
      format: "pem",
    }) as string;
  }
}

/** Refuses a malformed alias (before anything is generated or written). */
export function checkAlias(alias: string): void {
  if (!ALIAS.test(alias))
    throw new KeyAdminError(`an alias looks like alias/NAME (letters, digits, _ - . /)`);
}
