/**
 * The `openssl` CLI steps behind the test PKI (`pki.ts`): key generation, certificate issuance
 * with exact extensions, and CRLs. Every certificate is made by `openssl x509 -new`, with the
 * subject key given as a public key (`-force_pubkey`), so a key we never see (a SoftHSM token's)
 * is certified the same way as one we generate. Only certificates with chosen dates (expired
 * ones) go through `openssl ca`, because `x509` in OpenSSL 3.0 cannot set notBefore/notAfter.
 */
import { createPublicKey, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { runChecked } from "./process.ts";

/** Key types the fixtures generate. */
export type KeyType = "rsa2048" | "ec-p256";

/** What a certificate is for; decides basicConstraints, keyUsage and extendedKeyUsage. */
export type Profile = "root" | "intermediate" | "server" | "client";

/** A certificate on disk, in the forms tests need. */
export interface CertFiles {
  /** Subject common name. */
  commonName: string;
  /** Serial number, upper-case hex without leading zeros (as `openssl x509 -serial` prints it). */
  serial: string;
  /** This certificate alone, PEM. */
  certPath: string;
  certPem: string;
  certDer: Buffer;
}

/** A CA: its certificate, its key, and the config `openssl ca` uses for dated certs and CRLs. */
export interface CaFiles extends CertFiles {
  /** Private key, PKCS#8 PEM, mode 0600. */
  keyPath: string;
  keyPem: string;
  /** Directory with the CA's `openssl ca` database and config (`ca.cnf`). */
  dir: string;
  /**
   * What a leaf issued by this CA is sent with: this CA and the CAs above it up to, not including,
   * the root, nearest first, PEM (empty for a root).
   */
  chainPem: string;
}

/** What to put in a new certificate. */
export interface IssueRequest {
  profile: Profile;
  commonName: string;
  /** Subject public key, PEM (SPKI). */
  publicKeyPem: string;
  /** The issuing CA; omitted for a self-signed root (then `selfKeyPath` signs). */
  issuer?: CaFiles;
  /** The root's own private key, when `issuer` is omitted. */
  selfKeyPath?: string;
  /** subjectAltName DNS names and IP addresses. */
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  /** Validity from now, in days. Default 365 (3650 for CAs). */
  days?: number;
  /** Explicit validity instead of `days` (goes through `openssl ca`; needs the private key at `csrKeyPath`). */
  validity?: { notBefore: Date; notAfter: Date; csrKeyPath: string };
  /** Where to write the certificate (PEM). */
  outPath: string;
}

const ORGANIZATION = "hsmkit tests";

/** Generates a private key (PKCS#8 PEM, file mode 0600) and returns its public key PEM. */
export async function generateKey(type: KeyType, keyPath: string): Promise<string> {
  const algorithm =
    type === "rsa2048"
      ? ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
      : ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-pkeyopt", "ec_param_enc:named_curve"];
  await runChecked("openssl", ["genpkey", ...algorithm, "-out", keyPath]);
  await chmod(keyPath, 0o600);
  return (await runChecked("openssl", ["pkey", "-in", keyPath, "-pubout"])).stdout;
}

/** Issues a certificate as described and returns it; throws with openssl's output on failure. */
export async function issueCertificate(req: IssueRequest): Promise<CertFiles> {
  const work = `${req.outPath}.work`;
  await mkdir(work, { recursive: true });
  try {
    await runIssue(req, work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return readCert(req.outPath, req.commonName);
}

/** The openssl commands behind `issueCertificate`, with scratch files in `work`. */
async function runIssue(req: IssueRequest, work: string): Promise<void> {
  const extPath = path.join(work, "ext.cnf");
  await writeFile(extPath, extensionSection(req));
  const subject = `/O=${ORGANIZATION}/CN=${req.commonName}`;
  if (req.validity) {
    if (!req.issuer) throw new Error("dated certificates need an issuing CA");
    const csrPath = path.join(work, "req.csr");
    await runChecked("openssl", [
      "req",
      "-new",
      "-key",
      req.validity.csrKeyPath,
      "-subj",
      subject,
      "-out",
      csrPath,
    ]);
    await runChecked("openssl", [
      "ca",
      ...["-batch", "-notext", "-preserveDN", "-config", path.join(req.issuer.dir, "ca.cnf")],
      ...["-in", csrPath, "-out", req.outPath, "-extfile", extPath, "-extensions", "ext"],
      ...["-startdate", caTime(req.validity.notBefore), "-enddate", caTime(req.validity.notAfter)],
    ]);
  } else {
    const pubPath = path.join(work, "subject.pub.pem");
    await writeFile(pubPath, req.publicKeyPem);
    const signer = req.issuer
      ? ["-CA", req.issuer.certPath, "-CAkey", req.issuer.keyPath]
      : ["-key", req.selfKeyPath ?? fail("a root needs selfKeyPath")];
    const isCa = req.profile === "root" || req.profile === "intermediate";
    await runChecked("openssl", [
      ...["x509", "-new", "-subj", subject, "-force_pubkey", pubPath, ...signer],
      ...["-set_serial", randomSerial(), "-days", String(req.days ?? (isCa ? 3650 : 365)), "-sha256"],
      ...["-extfile", extPath, "-extensions", "ext", "-out", req.outPath],
    ]);
  }
}

/** Reads a PEM certificate file into `CertFiles`. */
export async function readCert(certPath: string, commonName: string): Promise<CertFiles> {
  const certPem = await readFile(certPath, "utf8");
  const x509 = new X509Certificate(certPem);
  return {
    commonName,
    serial: x509.serialNumber.replace(/^0+(?=.)/, ""),
    certPath,
    certPem,
    certDer: x509.raw,
  };
}

/**
 * Turns a CA certificate and key into `CaFiles`, writing the `openssl ca` database and config
 * into `dir` (used for dated certificates, revocation and CRLs).
 */
export async function setUpCa(
  dir: string,
  cert: CertFiles,
  keyPath: string,
  chainPem: string,
): Promise<CaFiles> {
  await mkdir(path.join(dir, "newcerts"), { recursive: true });
  await writeFile(path.join(dir, "index.txt"), "");
  await writeFile(path.join(dir, "serial"), `${randomSerial().slice(2)}\n`);
  await writeFile(path.join(dir, "crlnumber"), "1000\n");
  await writeFile(
    path.join(dir, "ca.cnf"),
    [
      "[ca]",
      "default_ca = hsmkit_ca",
      "[hsmkit_ca]",
      `database = ${path.join(dir, "index.txt")}`,
      `new_certs_dir = ${path.join(dir, "newcerts")}`,
      `serial = ${path.join(dir, "serial")}`,
      `crlnumber = ${path.join(dir, "crlnumber")}`,
      `certificate = ${cert.certPath}`,
      `private_key = ${keyPath}`,
      "default_md = sha256",
      "default_days = 365",
      "default_crl_days = 3650",
      "policy = hsmkit_policy",
      "unique_subject = no",
      "copy_extensions = none",
      "crl_extensions = crl_ext",
      "[hsmkit_policy]",
      "organizationName = optional",
      "commonName = supplied",
      "[crl_ext]",
      "authorityKeyIdentifier = keyid:always",
      "",
    ].join("\n"),
  );
  return { ...cert, keyPath, keyPem: await readFile(keyPath, "utf8"), dir, chainPem };
}

/** Marks a certificate of `ca` revoked (reason keyCompromise) in the CA's database. */
export async function revoke(ca: CaFiles, certPath: string): Promise<void> {
  await runChecked("openssl", [
    ...["ca", "-batch", "-config", path.join(ca.dir, "ca.cnf")],
    ...["-revoke", certPath, "-crl_reason", "keyCompromise"],
  ]);
}

/** Writes the CA's current CRL (PEM) to `outPath` and returns it. */
export async function generateCrl(ca: CaFiles, outPath: string): Promise<string> {
  await runChecked("openssl", [
    "ca",
    "-batch",
    "-config",
    path.join(ca.dir, "ca.cnf"),
    "-gencrl",
    "-out",
    outPath,
  ]);
  return readFile(outPath, "utf8");
}

/** The extension section for a profile; keyUsage follows the key type (no keyEncipherment for EC). */
function extensionSection(req: IssueRequest): string {
  const rsa = createPublicKey(req.publicKeyPem).asymmetricKeyType === "rsa";
  const lines = ["[ext]"];
  switch (req.profile) {
    case "root":
      lines.push("basicConstraints = critical,CA:TRUE", "keyUsage = critical,keyCertSign,cRLSign");
      break;
    case "intermediate":
      lines.push("basicConstraints = critical,CA:TRUE,pathlen:0", "keyUsage = critical,keyCertSign,cRLSign");
      break;
    case "server":
      lines.push(
        "basicConstraints = critical,CA:FALSE",
        `keyUsage = critical,digitalSignature${rsa ? ",keyEncipherment" : ""}`,
        "extendedKeyUsage = serverAuth",
      );
      break;
    case "client":
      lines.push(
        "basicConstraints = critical,CA:FALSE",
        "keyUsage = critical,digitalSignature",
        "extendedKeyUsage = clientAuth",
      );
      break;
  }
  const san = [
    ...(req.dnsNames ?? []).map((d) => `DNS:${d}`),
    ...(req.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  if (san.length > 0) lines.push(`subjectAltName = ${san.join(",")}`);
  lines.push("subjectKeyIdentifier = hash");
  // A self-signed root has no authority to name; OpenSSL omits it there anyway.
  if (req.profile !== "root") lines.push("authorityKeyIdentifier = keyid:always");
  return `${lines.join("\n")}\n`;
}

/** A random positive 127-bit serial as `0x...` (RFC 5280: positive, at most 20 octets). */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x10; // positive, and no leading zero octet
  return `0x${bytes.toString("hex")}`;
}

/** `openssl ca` date format: YYYYMMDDHHMMSSZ (UTC). */
function caTime(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

function fail(message: string): never {
  throw new Error(message);
}

/**
 * An RSA-2048 key and a self-signed certificate for it, exported by `openssl pkcs12 -export`
 * with `password` and `args` (PBE, MAC and iteration options) to `dir/name.pfx`: the file's bytes.
 */
export async function opensslSelfSignedPfx(
  dir: string,
  name: string,
  password: string,
  args: readonly string[],
): Promise<Buffer> {
  const key = path.join(dir, `${name}.key`);
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  await writeFile(key, pair.privateKey.export({ type: "pkcs8", format: "pem" }));
  const cert = path.join(dir, `${name}.pem`);
  await runChecked("openssl", [
    "req",
    "-x509",
    "-key",
    key,
    "-subj",
    `/CN=${name}`,
    "-days",
    "1",
    "-out",
    cert,
  ]);
  const out = path.join(dir, `${name}.pfx`);
  await runChecked("openssl", [
    ...["pkcs12", "-export", "-in", cert, "-inkey", key, "-passout", `pass:${password}`, "-out", out],
    ...args,
  ]);
  return readFile(out);
}
