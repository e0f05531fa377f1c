/**
 * Application access points: an RSA key pair per application. The application gets the
 * private half as a client key file (`clientKey_KAAP.<uuid>.json` holding a legacy PKCS#12)
 * plus a password file; the KMS keeps only the public key and the policy.
 */
import { generateKeyPair, randomBytes, randomUUID } from "node:crypto";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { type CertBagCipher, writeLegacyPfx } from "../keys/pkcs12/write_legacy.ts";
import type { AuditEvent } from "./audit.ts";
import type { KmsInstance } from "./instance.ts";
import { issueAccessPointCert } from "./instance_certs.ts";
import type { AccessPointRecord, AccessPolicy } from "./store.ts";

const generateKeyPairAsync = promisify(generateKeyPair);

/** What `kms ap create` asks for. */
export interface AccessPointRequest {
  readonly name: string;
  readonly policy: AccessPolicy;
  /** Directory for the client key and password files. */
  readonly outDir: string;
  /** Cipher of the PKCS#12 certificate safe; default 3des. */
  readonly certBagCipher?: CertBagCipher;
}

/** The files written for a new access point. */
export interface CreatedAccessPoint {
  readonly record: AccessPointRecord;
  readonly clientKeyFile: string;
  readonly passwordFile: string;
}

/** The client key file's JSON shape (what the instance SDKs read). */
export interface ClientKeyJson {
  readonly KeyId: string;
  readonly PrivateKeyData: string;
}

/** Why an access point could not be created. */
export class AccessPointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AccessPointError";
  }
}

/**
 * Creates an access point: key pair, certificate from the instance CA, PKCS#12, files, record.
 * With `events`, the record is stored with the audit entries they return in one transaction.
 */
export async function createAccessPoint(
  instance: KmsInstance,
  req: AccessPointRequest,
  events?: (record: AccessPointRecord) => readonly AuditEvent[],
): Promise<CreatedAccessPoint> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(req.name)) {
    throw new AccessPointError("an access point name is 1-64 letters, digits, _ . or -");
  }
  if (await instance.accessPoints.findByIdOrName(req.name)) {
    throw new AccessPointError(`an access point named "${req.name}" exists already`);
  }
  const id = `KAAP.${randomUUID()}`;
  const pair = await generateKeyPairAsync("rsa", { modulusLength: 2048 });
  const spki = pair.publicKey.export({ type: "spki", format: "der" });
  const certPem = await instance.withCa((caPem, caKey) => issueAccessPointCert(caPem, caKey, id, spki));
  const password = randomBytes(16).toString("hex");
  const keyPem = pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const pfx = writeLegacyPfx(keyPem, certPem, password, {
    certBagCipher: req.certBagCipher ?? "3des",
    friendlyName: id,
  });
  const record: AccessPointRecord = {
    id,
    name: req.name,
    publicDer: spki,
    policy: req.policy,
    state: "Active",
    createdAt: new Date().toISOString(),
    revokedAt: null,
  };
  mkdirSync(req.outDir, { recursive: true, mode: 0o700 });
  const clientKeyFile = join(req.outDir, `clientKey_${id}.json`);
  const passwordFile = join(req.outDir, `clientKey_${id}_Password.txt`);
  const json: ClientKeyJson = { KeyId: id, PrivateKeyData: pfx.toString("base64") };
  writeSecret(clientKeyFile, JSON.stringify(json));
  writeSecret(passwordFile, password);
  if (!events) await instance.accessPoints.create(record);
  else
    await instance.audit.appendWith(async (tx) => {
      await instance.accessPoints.create(record, tx);
      return { result: undefined, events: events(record) };
    });
  return { record, clientKeyFile, passwordFile };
}

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}
