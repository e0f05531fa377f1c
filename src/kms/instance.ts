/**
 * A KMS instance opened for use: the store, the master key, the audit log, the key registry
 * and the instance's TLS material. `kms serve` and every admin command open the instance
 * through here, so they agree on layout and on how the master key is found.
 *
 * The store is DIR/kms.db (SQLite, + WAL) by default, or a PostgreSQL database shared by
 * several nodes. A data directory also holds DIR/ca.pem (the instance CA, public) and
 * DIR/master.pass (only when no passphrase source was given at creation); with PostgreSQL it
 * is optional. Everything secret lives in the store, wrapped under the master key.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { warnIfSecretFileExposed } from "../keys/secret_file.ts";
import { ACCESS_POINT_MAC_INFO, AccessPointSeal } from "./access_point_mac.ts";
import { AccessPointStore } from "./access_point_store.ts";
import { sealLegacyRows } from "./access_point_upgrade.ts";
import { AuditLog } from "./audit.ts";
import { certificateNames, createInstanceCa, issueServerCert } from "./instance_certs.ts";
import { auditingSink, IntegrityReports, SECRET_SUBJECT, warnOrStderr } from "./integrity_reports.ts";
import { KeyRegistry } from "./key_registry.ts";
import {
  DEFAULT_SCRYPT,
  derivePassphraseKey,
  type MasterKey,
  MasterKeyError,
  PassphraseMasterKey,
  type ScryptParams,
} from "./master_key.ts";
import { openPkcs11MasterKey } from "./master_pkcs11.ts";
import { SecretVault } from "./secrets.ts";
import { Store, type StoreLocation } from "./store.ts";

/** Where the master key comes from (at most one of passphrase / passphraseFile / pkcs11). */
export interface MasterKeySource {
  /** The passphrase itself (API use). */
  readonly passphrase?: string;
  /** A file holding the passphrase (first line). */
  readonly passphraseFile?: string;
  /** A `pkcs11:token=...;object=...?pin-value=...` URI of an AES key in a token. */
  readonly pkcs11?: string;
}

/** Options for {@link KmsInstance.open}. */
export interface OpenOptions extends MasterKeySource {
  /** The data directory: the SQLite store unless `store` is given; ca.pem; master.pass. */
  readonly dataDir?: string;
  /** A `postgres://USER@HOST:PORT/DATABASE` URL: the store lives there, shared by every node. */
  readonly store?: string;
  /** Create the instance if the directory holds none (serve, init). */
  readonly create?: boolean;
  /** Environment to read HSMKIT_KMS_PASSPHRASE from; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * A file that keeps the audit log's newest head (count and MAC) after every append and is
   * checked by verify, so a rollback of the database to an older copy is caught. Keep it off
   * the data directory's disk (another volume, a write-once store).
   */
  readonly auditAnchor?: string;
  /** Where notices go (the generated-passphrase warning); default stderr. */
  readonly warn?: (line: string) => void;
}

/** The environment variable that may hold the passphrase. */
export const PASSPHRASE_ENV = "HSMKIT_KMS_PASSPHRASE";

interface MasterMeta {
  readonly kind: "passphrase" | "pkcs11";
  readonly salt?: string;
  readonly scrypt?: ScryptParams;
  readonly token?: string;
}

const CHECK_AAD = "master-key-check";
const CHECK_VALUE = Buffer.from("hsmkit kms master key check v1");

/** Why the data directory could not be opened. */
export class InstanceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InstanceError";
  }
}

/** An open KMS data directory. */
export class KmsInstance {
  private vault: SecretVault | undefined;

  private constructor(
    /** The data directory, if one was given. */
    readonly dataDir: string | undefined,
    readonly id: string,
    readonly store: Store,
    readonly master: MasterKey,
    readonly audit: AuditLog,
    readonly keys: KeyRegistry,
    /** Access points, their rows checked against their MACs. */
    readonly accessPoints: AccessPointStore,
    /** Where secret reads the audit log does not back are reported (stderr and audit). */
    private readonly secretReports: IntegrityReports,
  ) {}

  /** The instance's secrets. */
  get secrets(): SecretVault {
    this.vault ??= new SecretVault(this, this.secretReports);
    return this.vault;
  }

  /** Path of the instance CA certificate in the data directory (an error without one). */
  get caPath(): string {
    if (this.dataDir === undefined)
      throw new InstanceError("this instance has no data directory: write its CA with caCertPem()");
    return join(this.dataDir, "ca.pem");
  }

  /** Opens (or with `create`, initialises) an instance in a data directory or a PostgreSQL store. */
  static async open(options: OpenOptions): Promise<KmsInstance> {
    const { store, fresh } = await openStore(options);
    let master: MasterKey | undefined;
    try {
      const id = (
        await store.initMeta("instance.id", Buffer.from(`kst-${randomBytes(10).toString("hex")}`))
      ).toString();
      // A missing master record means creation, never for a database that already holds
      // state: deleting it with the log must not let the same token key start a new chain.
      const masterMissing = (await store.getMeta("master")) === undefined;
      if (masterMissing && !fresh && !(await store.holdsNothing())) {
        throw new InstanceError(
          `${store.driver.description} holds keys or audit entries but no master key record: the database was tampered with`,
        );
      }
      const creating = fresh || masterMissing;
      master = await openMasterKey(store, options, creating);
      const audit = await AuditLog.open(store, master, {
        creating,
        ...(options.auditAnchor !== undefined ? { anchorPath: options.auditAnchor } : {}),
      });
      const seal = new AccessPointSeal(audit.deriveKey(ACCESS_POINT_MAC_INFO));
      // Rows from versions before access point MACs: those the verified log backs are sealed
      // once, audited (access_point_upgrade.ts).
      const notice = await audit.finishUpgrade((tx, verdict) => sealLegacyRows(tx, seal, verdict));
      if (notice !== undefined) warnOrStderr(options.warn)(notice);
      const accessPoints = new AccessPointStore(
        store,
        seal,
        new IntegrityReports(auditingSink(audit, options.warn)),
        audit,
      );
      const instance = new KmsInstance(
        options.dataDir,
        id,
        store,
        master,
        audit,
        new KeyRegistry(store, master),
        accessPoints,
        new IntegrityReports(auditingSink(audit, options.warn, SECRET_SUBJECT)),
      );
      await instance.ensureCa();
      return instance;
    } catch (err) {
      await master?.close();
      await store.close();
      throw err;
    }
  }

  private async ensureCa(): Promise<void> {
    if (!(await this.store.getMeta("tls.ca"))) {
      const ca = await createInstanceCa(this.id);
      await this.storeCert("tls.ca", ca.certPem, ca.keyDer, "instance-ca-key");
    }
    if (this.dataDir === undefined) return;
    const path = this.caPath;
    const pem = pemChain(await this.caCertPem());
    if (!existsSync(path) || readFileSync(path, "utf8") !== pem) writeFileSync(path, pem);
  }

  private async storeCert(name: string, certPem: string, keyDer: Buffer, aad: string): Promise<void> {
    const wrapped = await this.master.wrap(keyDer, aad);
    keyDer.fill(0);
    await this.store.initMeta(
      name,
      Buffer.from(JSON.stringify({ cert: certPem, key: wrapped.toString("base64") })),
    );
  }

  private async readCert(
    name: string,
    aad: string,
  ): Promise<{ certPem: string; keyDer: Buffer } | undefined> {
    const raw = await this.store.getMeta(name);
    if (!raw) return undefined;
    const { cert, key } = JSON.parse(raw.toString()) as { cert: string; key: string };
    return { certPem: cert, keyDer: await this.master.unwrap(Buffer.from(key, "base64"), aad) };
  }

  /** The instance CA certificate (PEM), what clients pass as `ca`. */
  async caCertPem(): Promise<string> {
    const raw = await this.store.getMeta("tls.ca");
    if (!raw) throw new InstanceError("the instance CA is missing");
    return (JSON.parse(raw.toString()) as { cert: string }).cert;
  }

  /** Runs `use` with the instance CA's certificate and private key (zeroed afterwards). */
  async withCa<T>(use: (certPem: string, keyDer: Buffer) => Promise<T>): Promise<T> {
    const ca = await this.readCert("tls.ca", "instance-ca-key");
    if (!ca) throw new InstanceError("the instance CA is missing");
    try {
      return await use(ca.certPem, ca.keyDer);
    } finally {
      ca.keyDer.fill(0);
    }
  }

  /**
   * The HTTPS server certificate chain and key, covering localhost, 127.0.0.1 and `hostnames`;
   * reissued by the instance CA when a name is missing.
   */
  async serverCredentials(hostnames: readonly string[]): Promise<{ certChainPem: string; keyDer: Buffer }> {
    const names = [...new Set(["localhost", "127.0.0.1", ...hostnames])];
    const current = await this.readCert("tls.server", "instance-server-key");
    if (current && names.every((n) => certificateNames(current.certPem).includes(n))) {
      return { certChainPem: pemChain(current.certPem, await this.caCertPem()), keyDer: current.keyDer };
    }
    current?.keyDer.fill(0);
    const issued = await this.withCa((caPem, caKey) => issueServerCert(caPem, caKey, names));
    const wrapped = await this.master.wrap(issued.keyDer, "instance-server-key");
    await this.store.setMeta(
      "tls.server",
      Buffer.from(JSON.stringify({ cert: issued.certPem, key: wrapped.toString("base64") })),
    );
    return { certChainPem: pemChain(issued.certPem, await this.caCertPem()), keyDer: issued.keyDer };
  }

  /** Closes the store and releases the master key (after pending integrity reports). */
  async close(): Promise<void> {
    try {
      await this.accessPoints.finish();
      await this.secretReports.finish();
      await this.master.close();
    } finally {
      await this.store.close();
    }
  }
}

/** Opens the store `options` name; `fresh` when it holds no instance yet. */
async function openStore(options: OpenOptions): Promise<{ store: Store; fresh: boolean }> {
  let location: StoreLocation;
  let fresh = false;
  if (options.store !== undefined) {
    location = { postgresUrl: options.store };
  } else {
    const dir = options.dataDir;
    if (dir === undefined) throw new InstanceError("give a data directory or a store URL");
    const dbPath = join(dir, "kms.db");
    fresh = !existsSync(dbPath);
    if (fresh && !options.create) {
      throw new InstanceError(
        `${dir} is not a KMS data directory (start 'hsmkit kms serve --data ${dir}' first)`,
      );
    }
    location = { sqlitePath: dbPath };
  }
  if (options.dataDir !== undefined) mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const store = await Store.open(location);
  if (options.store !== undefined) {
    try {
      fresh = (await store.getMeta("instance.id")) === undefined;
      if (fresh && !options.create) {
        throw new InstanceError(
          `${store.driver.description} holds no KMS instance (create it with 'hsmkit kms init --store URL')`,
        );
      }
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return { store, fresh };
}

async function openMasterKey(store: Store, options: OpenOptions, creating: boolean): Promise<MasterKey> {
  const given = [options.passphrase, options.passphraseFile, options.pkcs11].filter((x) => x !== undefined);
  if (given.length > 1)
    throw new MasterKeyError(
      (name) => `give one master key source: a passphrase or ${name("pkcs11", "pkcs11:...")}`,
    );
  const existing = await store.getMeta("master");
  let meta: MasterMeta;
  if (existing) {
    meta = JSON.parse(existing.toString()) as MasterMeta;
  } else {
    const fresh: MasterMeta = options.pkcs11
      ? { kind: "pkcs11", token: options.pkcs11.replace(/[?].*$/, "") }
      : { kind: "passphrase", salt: randomBytes(16).toString("base64"), scrypt: DEFAULT_SCRYPT };
    meta = JSON.parse(
      (await store.initMeta("master", Buffer.from(JSON.stringify(fresh)))).toString(),
    ) as MasterMeta;
  }
  let master: MasterKey;
  if (meta.kind === "pkcs11") {
    if (!options.pkcs11) {
      const token = meta.token;
      throw new MasterKeyError(
        (name) => `this KMS's master key is in a PKCS#11 token (${token}); pass ${name("pkcs11")}`,
      );
    }
    master = await openPkcs11MasterKey(options.pkcs11);
  } else {
    if (options.pkcs11)
      throw new MasterKeyError("this KMS's master key comes from a passphrase, not a token");
    const { passphrase, source } = resolvePassphrase(options, creating);
    const key = await derivePassphraseKey(
      passphrase,
      Buffer.from(meta.salt ?? "", "base64"),
      meta.scrypt ?? DEFAULT_SCRYPT,
    );
    master = new PassphraseMasterKey(key, `passphrase from ${source}`);
  }
  try {
    const check = await store.initMeta("master.check", await master.wrap(CHECK_VALUE, CHECK_AAD));
    await master.unwrap(check, CHECK_AAD);
  } catch (err) {
    await master.close();
    throw new MasterKeyError(`wrong master key for this KMS (${master.description})`, { cause: err });
  }
  return master;
}

function resolvePassphrase(options: OpenOptions, creating: boolean): { passphrase: string; source: string } {
  const env = options.env ?? process.env;
  const nonEmpty = (p: string, source: string) => {
    if (p === "") throw new MasterKeyError(`the passphrase from ${source} is empty`);
    return { passphrase: p, source };
  };
  if (options.passphrase !== undefined) return nonEmpty(options.passphrase, "the caller");
  if (options.passphraseFile !== undefined)
    return nonEmpty(readFirstLine(options.passphraseFile), options.passphraseFile);
  const fromEnv = env[PASSPHRASE_ENV];
  if (fromEnv !== undefined) return nonEmpty(fromEnv, PASSPHRASE_ENV);
  const defaultFile = options.dataDir === undefined ? undefined : join(options.dataDir, "master.pass");
  if (defaultFile !== undefined && existsSync(defaultFile))
    return nonEmpty(readFirstLine(defaultFile), defaultFile);
  // A cluster's nodes must share the passphrase: one generated on a node's own disk would not be.
  if (!creating || defaultFile === undefined || options.store !== undefined) {
    throw new MasterKeyError(
      (name) => `no passphrase: give ${name("passphraseFile", "FILE")} or set ${PASSPHRASE_ENV}`,
    );
  }
  const generated = randomBytes(24).toString("base64url");
  writeFileSync(defaultFile, `${generated}\n`, { mode: 0o600 });
  chmodSync(defaultFile, 0o600);
  warnOrStderr(options.warn)(
    `kms: no passphrase given; generated ${defaultFile} (0600). Move it off this disk and pass --passphrase-file for real protection.`,
  );
  return { passphrase: generated, source: defaultFile };
}

/** Concatenates PEM blocks, each ending in a newline (PEM parsers need the line break). */
function pemChain(...pems: string[]): string {
  return pems.map((p) => (p.endsWith("\n") ? p : `${p}\n`)).join("");
}

function readFirstLine(path: string): string {
  warnIfSecretFileExposed(path, "passphrase file");
  try {
    return (readFileSync(path, "utf8").split(/\r?\n/)[0] ?? "").trimEnd();
  } catch (err) {
    throw new MasterKeyError(
      `cannot read passphrase file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
}
