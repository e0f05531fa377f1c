/**
 * The instance's own PKI: a CA (what clients trust, `PrivateKmsCA.pem`), the HTTPS server
 * certificate it issues (SANs localhost, 127.0.0.1 and any --hostname) and the certificates
 * inside access point client keys. Built with @peculiar/x509 over node:crypto's WebCrypto.
 * These keys are the instance's transport keys, not the keys the KMS protects; they are
 * still kept wrapped under the master key.
 */
import { randomBytes, webcrypto } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";

const subtle = webcrypto.subtle;
const crypto = webcrypto as unknown as Crypto;
const EC_ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING_ALG = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY = 24 * 3600 * 1000;

/** A certificate and the PKCS#8 DER of its private key. */
export interface IssuedCert {
  readonly certPem: string;
  /** PKCS#8 DER; the caller wraps it and zeroes it. */
  readonly keyDer: Buffer;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  return bytes.toString("hex");
}

async function newEcPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_ALG, true, ["sign", "verify"])) as unknown as CryptoKeyPair;
}

async function exportPkcs8(key: CryptoKey): Promise<Buffer> {
  return Buffer.from(await subtle.exportKey("pkcs8", key as webcrypto.CryptoKey));
}

async function importSigningKey(keyDer: Buffer): Promise<CryptoKey> {
  return (await subtle.importKey("pkcs8", keyDer, EC_ALG, false, ["sign"])) as unknown as CryptoKey;
}

/** Creates the instance CA: EC P-256, 20 years, pathLen 0. */
export async function createInstanceCa(instanceId: string): Promise<IssuedCert> {
  const keys = await newEcPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: `CN=hsmkit KMS instance CA ${instanceId}, O=hsmkit`,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 20 * 365 * DAY),
      keys,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString("pem"), keyDer: await exportPkcs8(keys.privateKey) };
}

interface LeafRequest {
  readonly subject: string;
  readonly publicKey: CryptoKey;
  readonly days: number;
  readonly extensions: x509.Extension[];
}

async function issueLeaf(caCertPem: string, caKeyDer: Buffer, req: LeafRequest): Promise<string> {
  const ca = new x509.X509Certificate(caCertPem);
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: req.subject,
      issuer: ca.subject,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + req.days * DAY),
      publicKey: req.publicKey,
      signingKey: await importSigningKey(caKeyDer),
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        await x509.AuthorityKeyIdentifierExtension.create(ca, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(req.publicKey, false, crypto),
        ...req.extensions,
      ],
    },
    crypto,
  );
  return cert.toString("pem");
}

/** Issues the HTTPS server certificate (EC P-256, 2 years) for these host names and addresses. */
export async function issueServerCert(
  caCertPem: string,
  caKeyDer: Buffer,
  names: readonly string[],
): Promise<IssuedCert> {
  const keys = await newEcPair();
  const san = names.map((n) => ({ type: isIP(n) ? ("ip" as const) : ("dns" as const), value: n }));
  const certPem = await issueLeaf(caCertPem, caKeyDer, {
    subject: `CN=${names[0] ?? "localhost"}`,
    publicKey: keys.publicKey,
    days: 2 * 365,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(san),
    ],
  });
  return { certPem, keyDer: await exportPkcs8(keys.privateKey) };
}

/** Issues the certificate that goes into an access point's PKCS#12 (RSA key, client auth). */
export async function issueAccessPointCert(
  caCertPem: string,
  caKeyDer: Buffer,
  accessPointId: string,
  rsaSpkiDer: Buffer,
): Promise<string> {
  const publicKey = (await subtle.importKey(
    "spki",
    rsaSpkiDer,
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    true,
    ["verify"],
  )) as unknown as CryptoKey;
  return issueLeaf(caCertPem, caKeyDer, {
    subject: `CN=${accessPointId}, O=hsmkit KMS access point`,
    publicKey,
    days: 10 * 365,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
}

/** The DNS names and IP addresses a certificate's SAN lists. */
export function certificateNames(certPem: string): string[] {
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return san ? san.names.items.map((n) => n.value) : [];
}
