/**
 * A real test PKI made with the `openssl` CLI, fresh for each test process and cached in it:
 *
 *   root CA (RSA-2048) -> intermediate CA (RSA-2048, pathlen 0) -> server / client leaves
 *   other CA (RSA-2048, unrelated root) -> other client / other server
 *
 * Laid out as the seed walkthrough does: `ca.crt` is the root, `server.pem` / `client.pem` are
 * leaf + intermediate, `server.key` / `client.key` the keys (PKCS#8 PEM, mode 0600). The good
 * certificates pass `openssl verify -x509_strict`. The directory is removed when the process exits.
 *
 * Usage:
 *   const pki = await makePki();
 *   curl --cacert pki.caFile --cert pki.client.chainPath --key pki.client.keyPath https://localhost:PORT/
 */

import { rmSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  type CaFiles,
  type CertFiles,
  generateCrl,
  generateKey,
  issueCertificate,
  type KeyType,
  revoke,
  setUpCa,
} from "./pki-openssl.ts";

export type { CaFiles, CertFiles, KeyType } from "./pki-openssl.ts";

/** A certificate with the chain file a peer sends: leaf + intermediates (not the root). */
export interface ChainFiles extends CertFiles {
  /** Leaf followed by the issuing CAs up to, not including, the root, PEM (like the seed's server.pem). */
  chainPath: string;
  chainPem: string;
}

/** A leaf certificate with its private key. */
export interface LeafFiles extends ChainFiles {
  /** Private key, PKCS#8 PEM (unencrypted), mode 0600. */
  keyPath: string;
  keyPem: string;
  keyType: KeyType;
}

/** The fixtures. Every path is absolute and inside `dir`. */
export interface Pki {
  /** The temp directory holding everything (removed at process exit). */
  dir: string;
  /** `ca.crt`: the root certificate, the trust anchor to give peers (`--cacert`, `ssl_client_certificate`). */
  caFile: string;
  root: CaFiles;
  intermediate: CaFiles;
  /** An unrelated root; nothing issued by it chains to `root`. */
  otherCa: CaFiles;
  /** RSA-2048, CN=localhost, SAN DNS:localhost + IP:127.0.0.1, serverAuth, issued by `intermediate`. */
  server: LeafFiles;
  /** Like `server` with an EC P-256 key (digitalSignature only). */
  serverEc: LeafFiles;
  /** RSA-2048, CN=hsmkit-test-client-rsa, clientAuth, issued by `intermediate`. */
  client: LeafFiles;
  /** EC P-256, CN=hsmkit-test-client-ec, clientAuth, issued by `intermediate`. */
  clientEc: LeafFiles;
  /** `server`'s key and names, valid from 30 days ago until yesterday. */
  expiredServer: LeafFiles;
  /** `server`'s key, but for CN/SAN wrong.example and IP 192.0.2.1 only. */
  wrongHostServer: LeafFiles;
  /** A client certificate of `intermediate` that is revoked in `crlPath`. */
  revokedClient: LeafFiles;
  /** Client certificate issued directly by `otherCa` (chain = leaf only). */
  otherClient: LeafFiles;
  /** Server certificate for localhost/127.0.0.1 issued directly by `otherCa`. */
  otherServer: LeafFiles;
  /**
   * CRLs of both `root` (empty) and `intermediate` (revokes `revokedClient`) in one PEM file,
   * as OpenSSL's full-chain CRL check (nginx `ssl_crl`) needs one per CA.
   */
  crlPath: string;
  crlPem: string;
  /** Present when `makePki` was given `clientPublicKeyPem`: a client certificate for that key. */
  externalClient?: ChainFiles;
}

/** Options for `makePki`. */
export interface PkiOptions {
  /**
   * A public key (SPKI PEM) whose private key lives elsewhere (e.g. a SoftHSM token): `makePki`
   * then also issues `externalClient`, a clientAuth certificate for it from `intermediate`.
   */
  clientPublicKeyPem?: string;
  /** Common name for `externalClient`. Default "hsmkit-test-client-external". */
  clientCommonName?: string;
}

/** What `issueCert` should put in a certificate for a key you hold elsewhere. */
export interface ExternalCertRequest {
  /** File name stem: writes NAME.crt (leaf) and NAME.pem (chain) in a fresh directory under `pki.dir`. */
  name: string;
  profile: "server" | "client";
  commonName: string;
  /** Subject public key, SPKI PEM (RSA or EC). */
  publicKeyPem: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** Default 365. */
  days?: number;
  /** Default `pki.intermediate`. */
  issuer?: CaFiles;
}

let basePki: Promise<Pki> | undefined;
const externalClients = new Map<string, Promise<ChainFiles>>();

/**
 * The process's test PKI (made on the first call, the same object afterwards). With
 * `clientPublicKeyPem`, the result also carries `externalClient` for that key (issued once per
 * distinct key and name).
 */
export async function makePki(options: PkiOptions = {}): Promise<Pki> {
  basePki ??= buildPki();
  const pki = await basePki;
  if (!options.clientPublicKeyPem) return pki;
  const commonName = options.clientCommonName ?? "hsmkit-test-client-external";
  const cacheKey = `${commonName}\n${options.clientPublicKeyPem}`;
  let external = externalClients.get(cacheKey);
  if (!external) {
    external = issueCert(pki, {
      name: "external-client",
      profile: "client",
      commonName,
      publicKeyPem: options.clientPublicKeyPem,
    });
    externalClients.set(cacheKey, external);
  }
  return { ...pki, externalClient: await external };
}

let extraCount = 0;

/**
 * Issues a certificate for a public key whose private key you hold elsewhere (a token, a KMS),
 * from `pki.intermediate` unless told otherwise, with the same extensions as the fixtures.
 */
export async function issueCert(pki: Pki, req: ExternalCertRequest): Promise<ChainFiles> {
  const dir = path.join(pki.dir, `extra-${++extraCount}`);
  const issuer = req.issuer ?? pki.intermediate;
  const cert = await issueCertificate({
    profile: req.profile,
    commonName: req.commonName,
    publicKeyPem: req.publicKeyPem,
    issuer,
    dnsNames: req.dnsNames,
    ipAddresses: req.ipAddresses,
    days: req.days,
    outPath: path.join(dir, `${req.name}.crt`),
  });
  return writeChain(cert, issuer, path.join(dir, `${req.name}.pem`));
}

async function buildPki(): Promise<Pki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-pki-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  try {
    return await buildPkiIn(dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    basePki = undefined;
    throw err;
  }
}

async function buildPkiIn(dir: string): Promise<Pki> {
  const file = (name: string): string => path.join(dir, name);
  const rsa = (name: string): Promise<string> => generateKey("rsa2048", file(name));
  const ec = (name: string): Promise<string> => generateKey("ec-p256", file(name));
  // Key generation dominates the cost; run it all at once.
  const [
    rootPub,
    intPub,
    otherPub,
    serverPub,
    serverEcPub,
    clientPub,
    clientEcPub,
    revokedPub,
    otherClientPub,
    otherServerPub,
  ] = await Promise.all([
    rsa("ca.key"),
    rsa("intermediate.key"),
    rsa("other-ca.key"),
    rsa("server.key"),
    ec("server-ec.key"),
    rsa("client.key"),
    ec("client-ec.key"),
    rsa("revoked-client.key"),
    rsa("other-client.key"),
    rsa("other-server.key"),
  ]);

  const selfSigned = async (name: string, commonName: string, publicKeyPem: string): Promise<CaFiles> => {
    const keyPath = file(`${name}.key`);
    const cert = await issueCertificate({
      profile: "root",
      commonName,
      publicKeyPem,
      selfKeyPath: keyPath,
      outPath: file(`${name}.crt`),
    });
    return setUpCa(file(`${name}-db`), cert, keyPath, "");
  };
  const [root, otherCa] = await Promise.all([
    selfSigned("ca", "hsmkit-test-root-ca", rootPub),
    selfSigned("other-ca", "hsmkit-test-other-ca", otherPub),
  ]);
  const intCert = await issueCertificate({
    profile: "intermediate",
    commonName: "hsmkit-test-intermediate-ca",
    publicKeyPem: intPub,
    issuer: root,
    outPath: file("intermediate.crt"),
  });
  const intermediate = await setUpCa(
    file("intermediate-db"),
    intCert,
    file("intermediate.key"),
    intCert.certPem,
  );

  interface LeafSpec {
    name: string;
    keyName: string;
    keyType: KeyType;
    publicKeyPem: string;
    profile: "server" | "client";
    commonName: string;
    issuer: CaFiles;
    hosts?: { dns: string[]; ips: string[] };
    expired?: boolean;
  }
  const localhost = { dns: ["localhost"], ips: ["127.0.0.1"] };
  const leaf = async (spec: LeafSpec): Promise<LeafFiles> => {
    const keyPath = file(spec.keyName);
    const day = 86_400_000;
    const cert = await issueCertificate({
      profile: spec.profile,
      commonName: spec.commonName,
      publicKeyPem: spec.publicKeyPem,
      issuer: spec.issuer,
      dnsNames: spec.hosts?.dns,
      ipAddresses: spec.hosts?.ips,
      validity: spec.expired
        ? {
            notBefore: new Date(Date.now() - 30 * day),
            notAfter: new Date(Date.now() - day),
            csrKeyPath: keyPath,
          }
        : undefined,
      outPath: file(`${spec.name}.crt`),
    });
    const chain = await writeChain(cert, spec.issuer, file(`${spec.name}.pem`));
    return { ...chain, keyPath, keyPem: await readFile(keyPath, "utf8"), keyType: spec.keyType };
  };
  const rsaLeaf = { keyType: "rsa2048" as const, issuer: intermediate };
  const [
    server,
    serverEc,
    client,
    clientEc,
    expiredServer,
    wrongHostServer,
    revokedClient,
    otherClient,
    otherServer,
  ] = await Promise.all([
    leaf({
      ...rsaLeaf,
      name: "server",
      keyName: "server.key",
      publicKeyPem: serverPub,
      profile: "server",
      commonName: "localhost",
      hosts: localhost,
    }),
    leaf({
      name: "server-ec",
      keyName: "server-ec.key",
      keyType: "ec-p256",
      issuer: intermediate,
      publicKeyPem: serverEcPub,
      profile: "server",
      commonName: "localhost",
      hosts: localhost,
    }),
    leaf({
      ...rsaLeaf,
      name: "client",
      keyName: "client.key",
      publicKeyPem: clientPub,
      profile: "client",
      commonName: "hsmkit-test-client-rsa",
    }),
    leaf({
      name: "client-ec",
      keyName: "client-ec.key",
      keyType: "ec-p256",
      issuer: intermediate,
      publicKeyPem: clientEcPub,
      profile: "client",
      commonName: "hsmkit-test-client-ec",
    }),
    leaf({
      ...rsaLeaf,
      name: "expired-server",
      keyName: "server.key",
      publicKeyPem: serverPub,
      profile: "server",
      commonName: "localhost",
      hosts: localhost,
      expired: true,
    }),
    leaf({
      ...rsaLeaf,
      name: "wrong-host-server",
      keyName: "server.key",
      publicKeyPem: serverPub,
      profile: "server",
      commonName: "wrong.example",
      hosts: { dns: ["wrong.example"], ips: ["192.0.2.1"] },
    }),
    leaf({
      ...rsaLeaf,
      name: "revoked-client",
      keyName: "revoked-client.key",
      publicKeyPem: revokedPub,
      profile: "client",
      commonName: "hsmkit-test-client-revoked",
    }),
    leaf({
      ...rsaLeaf,
      issuer: otherCa,
      name: "other-client",
      keyName: "other-client.key",
      publicKeyPem: otherClientPub,
      profile: "client",
      commonName: "hsmkit-test-client-of-other-ca",
    }),
    leaf({
      ...rsaLeaf,
      issuer: otherCa,
      name: "other-server",
      keyName: "other-server.key",
      publicKeyPem: otherServerPub,
      profile: "server",
      commonName: "localhost",
      hosts: localhost,
    }),
  ]);

  await revoke(intermediate, revokedClient.certPath);
  const crlPem =
    (await generateCrl(root, file("ca.crl"))) + (await generateCrl(intermediate, file("intermediate.crl")));
  const crlPath = file("crl.pem");
  await writeFile(crlPath, crlPem);

  return {
    dir,
    caFile: root.certPath,
    root,
    intermediate,
    otherCa,
    server,
    serverEc,
    client,
    clientEc,
    expiredServer,
    wrongHostServer,
    revokedClient,
    otherClient,
    otherServer,
    crlPath,
    crlPem,
  };
}

/** Writes leaf + issuer chain to `chainPath`. */
async function writeChain(cert: CertFiles, issuer: CaFiles, chainPath: string): Promise<ChainFiles> {
  const chainPem = cert.certPem + issuer.chainPem;
  await writeFile(chainPath, chainPem);
  return { ...cert, chainPath, chainPem };
}
