/**
 * A throw-away PKI for the x509 tests, driven by the real `openssl` CLI (genpkey, req,
 * ca with -extfile, ca -revoke / -gencrl) in a temporary directory, plus an
 * `openssl verify` wrapper for cross-checking our verdicts against OpenSSL's.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Certificate } from "../../../src/tls/x509/certificate.ts";
import { Crl } from "../../../src/tls/x509/crl.ts";

const execFileAsync = promisify(execFile);

/** Key kinds the tests generate. */
export type KeySpec = "rsa2048" | "rsa1024" | "ec-p256" | "ec-p384" | "ec-p192" | "ed25519" | "dsa";

/** What to issue. */
export interface IssueSpec {
  /** Subject in `openssl -subj` form, e.g. "/O=Test/CN=leaf". */
  subject: string;
  /** A new key of this kind (default rsa2048), unless `keyOf` is given. */
  key?: KeySpec;
  /** Reuse the key of an earlier certificate. */
  keyOf?: Issued;
  /** The issuing CA; omitted for a self-signed certificate. */
  issuer?: Issued;
  /** Lines for `-extfile`; omitted or empty gives a version 1 certificate. */
  ext?: string[];
  /** Digest for the signature (default sha256). */
  md?: "md5" | "sha1" | "sha256" | "sha384";
  /** Extra `-sigopt` values, e.g. RSA-PSS padding. */
  sigopt?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

/** An issued certificate with its files and its own CA database (so it can issue in turn). */
export interface Issued {
  readonly name: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly pem: string;
  readonly cert: Certificate;
  readonly caDir: string;
}

/** Extension lines of a typical CA certificate. */
export const CA_EXT = [
  "basicConstraints=critical,CA:TRUE",
  "keyUsage=critical,keyCertSign,cRLSign",
  "subjectKeyIdentifier=hash",
  "authorityKeyIdentifier=keyid:always",
];

/** Extension lines of a typical TLS server certificate for `sans` (e.g. "DNS:a.example.com,IP:10.0.0.1"). */
export function serverExt(sans: string, eku = "serverAuth"): string[] {
  return [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${eku}`,
    `subjectAltName=${sans}`,
    "subjectKeyIdentifier=hash",
    "authorityKeyIdentifier=keyid:always",
  ];
}

const DAY = 24 * 3600 * 1000;

/** openssl's time format. */
function opensslTime(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

/** Runs a command; rejects with its stderr on a non-zero exit. */
export async function run(
  file: string,
  args: string[],
  cwd?: string,
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(file, args, { cwd, maxBuffer: 16 * 1024 * 1024, timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(" ")} failed: ${e.stderr || e.message}`);
  }
}

/** The temporary PKI. Call {@link TestPki.cleanup} when done. */
export class TestPki {
  private dsaParams: string | undefined;

  private constructor(readonly dir: string) {}

  /** Creates the temporary directory. */
  static async create(): Promise<TestPki> {
    return new TestPki(await mkdtemp(join(tmpdir(), "hsmkit-x509-")));
  }

  /** Removes every file. */
  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /** A path inside the directory. */
  path(name: string): string {
    return join(this.dir, name);
  }

  /** Issues a certificate with `openssl ca` (self-signed with -selfsign when no issuer). */
  async issue(name: string, spec: IssueSpec): Promise<Issued> {
    const caDir = await this.newCaDir(name);
    const keyPath = spec.keyOf?.keyPath ?? (await this.generateKey(name, spec.key ?? "rsa2048"));
    const csr = this.path(`${name}.csr`);
    await run("openssl", ["req", "-new", "-key", keyPath, "-subj", spec.subject, "-out", csr]);
    const certPath = this.path(`${name}.pem`);
    const signer = spec.issuer;
    const notBefore = spec.notBefore ?? new Date(Date.now() - DAY);
    const notAfter = spec.notAfter ?? new Date(Date.now() + 365 * DAY);
    const args = [
      "ca",
      "-batch",
      "-notext",
      "-preserveDN",
      "-in",
      csr,
      "-out",
      certPath,
      "-md",
      spec.md ?? "sha256",
    ];
    args.push("-startdate", opensslTime(notBefore), "-enddate", opensslTime(notAfter));
    if (signer)
      args.push(
        "-config",
        join(signer.caDir, "ca.cnf"),
        "-cert",
        signer.certPath,
        "-keyfile",
        signer.keyPath,
      );
    else args.push("-config", join(caDir, "ca.cnf"), "-selfsign", "-keyfile", keyPath);
    if (spec.ext && spec.ext.length > 0) {
      const extPath = this.path(`${name}.ext`);
      await writeFile(extPath, `${spec.ext.join("\n")}\n`);
      args.push("-extfile", extPath);
    }
    for (const opt of spec.sigopt ?? []) args.push("-sigopt", opt);
    await run("openssl", args);
    const pem = await readFile(certPath, "utf8");
    return { name, certPath, keyPath, pem, cert: Certificate.fromPem(pem), caDir };
  }

  /**
   * Makes a certificate with `openssl x509 -new`, which (unlike `openssl ca`) writes any
   * subject (also an empty one, "/") and any serial (zero, negative, over 20 octets), for
   * the profile tests. Self-signed without `issuer`. With `publicKeyPath` it certifies that
   * public key (PEM; one with no private key, such as a crafted RSA key) and `keyPath` is "".
   */
  async make(
    name: string,
    spec: Pick<IssueSpec, "subject" | "key" | "keyOf" | "issuer"> & {
      ext: string[];
      serial?: string;
      publicKeyPath?: string;
    },
  ): Promise<Issued> {
    const caDir = await this.newCaDir(name);
    const keyPath = spec.publicKeyPath
      ? ""
      : (spec.keyOf?.keyPath ?? (await this.generateKey(name, spec.key ?? "ec-p256")));
    const extPath = this.path(`${name}.ext`);
    await writeFile(extPath, `${spec.ext.join("\n")}\n`);
    const certPath = this.path(`${name}.pem`);
    const serial = spec.serial ?? `0x${randomBytes(8).toString("hex")}`;
    const args = ["x509", "-new", "-subj", spec.subject, "-set_serial", serial, "-days", "30"];
    args.push("-extfile", extPath, "-out", certPath);
    if (spec.issuer) {
      const pubPath = spec.publicKeyPath ?? this.path(`${name}.pub`);
      if (!spec.publicKeyPath) await run("openssl", ["pkey", "-in", keyPath, "-pubout", "-out", pubPath]);
      args.push("-force_pubkey", pubPath, "-CA", spec.issuer.certPath, "-CAkey", spec.issuer.keyPath);
    } else args.push("-key", keyPath);
    await run("openssl", args);
    const pem = await readFile(certPath, "utf8");
    return { name, certPath, keyPath, pem, cert: Certificate.fromPem(pem), caDir };
  }

  /** Marks `issued` revoked in its issuer's database. */
  async revoke(issued: Issued, issuer: Issued, reason = "keyCompromise"): Promise<void> {
    await run("openssl", [
      "ca",
      "-config",
      join(issuer.caDir, "ca.cnf"),
      "-cert",
      issuer.certPath,
      "-keyfile",
      issuer.keyPath,
      "-revoke",
      issued.certPath,
      "-crl_reason",
      reason,
    ]);
  }

  /**
   * Writes the CRL of `issuer` (PEM) valid for `hours`; with `signer`, the CRL is produced
   * from `signer`'s database and key instead (to forge one under the issuer's name).
   */
  async crl(
    name: string,
    issuer: Issued,
    options: { hours?: number; signer?: Issued } = {},
  ): Promise<{ path: string; crl: Crl }> {
    const signer = options.signer ?? issuer;
    const path = this.path(`${name}.crl.pem`);
    await run("openssl", [
      "ca",
      "-config",
      join(signer.caDir, "ca.cnf"),
      "-cert",
      signer.certPath,
      "-keyfile",
      signer.keyPath,
      "-gencrl",
      "-crlhours",
      String(options.hours ?? 24),
      "-out",
      path,
    ]);
    return { path, crl: Crl.parse(await readFile(path)) };
  }

  /**
   * `openssl verify -x509_strict` of `leaf` against `roots` with `untrusted`
   * intermediates; returns OpenSSL's verdict and output.
   */
  async opensslVerify(
    leaf: Issued,
    options: { roots: Issued[]; untrusted?: Issued[]; extra?: string[] },
  ): Promise<{ ok: boolean; output: string }> {
    const tag = randomBytes(4).toString("hex");
    const rootsPath = this.path(`roots-${tag}.pem`);
    await writeFile(rootsPath, options.roots.map((r) => r.pem).join(""));
    const args = ["verify", "-x509_strict", "-CAfile", rootsPath, ...(options.extra ?? [])];
    if (options.untrusted && options.untrusted.length > 0) {
      const untrustedPath = this.path(`untrusted-${tag}.pem`);
      await writeFile(untrustedPath, options.untrusted.map((c) => c.pem).join(""));
      args.push("-untrusted", untrustedPath);
    }
    args.push(leaf.certPath);
    try {
      const { stdout, stderr } = await execFileAsync("openssl", args, { timeout: 60_000 });
      return { ok: /: OK\s*$/.test(stdout), output: stdout + stderr };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
    }
  }

  private async newCaDir(name: string): Promise<string> {
    const caDir = this.path(`ca-${name}`);
    await mkdir(caDir);
    await writeFile(join(caDir, "index.txt"), "");
    // Random starting serials keep serials distinct across the test CAs.
    await writeFile(
      join(caDir, "serial"),
      `${((randomBytes(1)[0]! & 0x6f) | 0x10).toString(16)}${randomBytes(7).toString("hex")}\n`,
    );
    const config = [
      "[ca]",
      "default_ca = testca",
      "[testca]",
      `dir = ${caDir}`,
      "database = $dir/index.txt",
      "new_certs_dir = $dir",
      "serial = $dir/serial",
      "default_md = sha256",
      "policy = anything",
      "unique_subject = no",
      "copy_extensions = none",
      "[anything]",
      "countryName = optional",
      "organizationName = optional",
      "organizationalUnitName = optional",
      "commonName = optional",
    ];
    await writeFile(join(caDir, "ca.cnf"), `${config.join("\n")}\n`);
    return caDir;
  }

  private async generateKey(name: string, spec: KeySpec): Promise<string> {
    const keyPath = this.path(`${name}.key`);
    const args: Record<Exclude<KeySpec, "dsa">, string[]> = {
      rsa2048: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
      rsa1024: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
      "ec-p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
      "ec-p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
      "ec-p192": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-192"],
      ed25519: ["-algorithm", "ED25519"],
    };
    if (spec === "dsa") {
      if (!this.dsaParams) {
        this.dsaParams = this.path("dsa-params.pem");
        await run("openssl", [
          "genpkey",
          "-genparam",
          "-algorithm",
          "DSA",
          "-pkeyopt",
          "dsa_paramgen_bits:2048",
          "-out",
          this.dsaParams,
        ]);
      }
      await run("openssl", ["genpkey", "-paramfile", this.dsaParams, "-out", keyPath]);
    } else {
      await run("openssl", ["genpkey", ...args[spec], "-out", keyPath]);
    }
    return keyPath;
  }
}
