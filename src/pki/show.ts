/**
 * `cert show`: a short human-readable summary of the certificates (and CRLs) in a PEM or
 * DER file: who, by whom, when, which key, and the extensions that decide what it is for.
 */
import { createHash, createPublicKey } from "node:crypto";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import { spkiProblem } from "../tls/x509/spki.ts";
import { PkiError } from "./errors.ts";

/** Largest file `cert show` reads. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

const EKU_NAMES: Record<string, string> = {
  "1.3.6.1.5.5.7.3.1": "serverAuth",
  "1.3.6.1.5.5.7.3.2": "clientAuth",
  "1.3.6.1.5.5.7.3.3": "codeSigning",
  "1.3.6.1.5.5.7.3.4": "emailProtection",
  "1.3.6.1.5.5.7.3.8": "timeStamping",
  "1.3.6.1.5.5.7.3.9": "OCSPSigning",
  "2.5.29.37.0": "anyExtendedKeyUsage",
};

const KEY_USAGE_NAMES: [number, string][] = [
  [x509.KeyUsageFlags.digitalSignature, "digitalSignature"],
  [x509.KeyUsageFlags.nonRepudiation, "nonRepudiation"],
  [x509.KeyUsageFlags.keyEncipherment, "keyEncipherment"],
  [x509.KeyUsageFlags.dataEncipherment, "dataEncipherment"],
  [x509.KeyUsageFlags.keyAgreement, "keyAgreement"],
  [x509.KeyUsageFlags.keyCertSign, "keyCertSign"],
  [x509.KeyUsageFlags.cRLSign, "cRLSign"],
  [x509.KeyUsageFlags.encipherOnly, "encipherOnly"],
  [x509.KeyUsageFlags.decipherOnly, "decipherOnly"],
];

function iso(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function describeSignature(alg: x509.HashedAlgorithm): string {
  const family = alg.name === "RSASSA-PKCS1-v1_5" ? "RSA PKCS#1 v1.5" : alg.name;
  return alg.hash ? `${family} with ${alg.hash.name}` : family;
}

/** "RSA 2048", "EC P-256"... from an SPKI. */
function describePublicKey(spki: ArrayBuffer): string {
  const problem = spkiProblem(Buffer.from(spki));
  if (problem) return `unusable public key (${problem})`;
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
    const d = key.asymmetricKeyDetails ?? {};
    if (key.asymmetricKeyType === "rsa") return `RSA ${d.modulusLength ?? "?"}`;
    if (key.asymmetricKeyType === "ec") {
      const names: Record<string, string> = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" };
      return `EC ${names[d.namedCurve ?? ""] ?? d.namedCurve ?? "?"}`;
    }
    return key.asymmetricKeyType ?? "unknown";
  } catch {
    return "unreadable public key";
  }
}

function describeNames(names: x509.GeneralNames): string {
  return names.items.map((n) => `${n.type.toUpperCase()}:${n.value}`).join(", ");
}

/** The summary lines of one certificate. */
function describeCertificate(cert: x509.X509Certificate, now = new Date()): string[] {
  const state = now < cert.notBefore ? " (not yet valid)" : now > cert.notAfter ? " (EXPIRED)" : "";
  const lines = [
    `Subject:     ${cert.subject}`,
    `Issuer:      ${cert.issuer}${cert.subject === cert.issuer ? " (self-issued)" : ""}`,
    `Serial:      ${cert.serialNumber.toLowerCase()}`,
    `Valid:       ${iso(cert.notBefore)} to ${iso(cert.notAfter)}${state}`,
    `Key:         ${describePublicKey(cert.publicKey.rawData)}`,
    `Signature:   ${describeSignature(cert.signatureAlgorithm)}`,
  ];
  const version = asn1Version(cert.rawData);
  if (version !== 3) lines.push(`Version:     v${version}`);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (bc) {
    const len = bc.pathLength !== undefined ? `, path length ${bc.pathLength}` : "";
    lines.push(`CA:          ${bc.ca ? `yes${len}` : "no"}`);
  }
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku)
    lines.push(
      `Key usage:   ${KEY_USAGE_NAMES.filter(([f]) => ku.usages & f)
        .map(([, n]) => n)
        .join(", ")}`,
    );
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku) lines.push(`Ext. usage:  ${eku.usages.map((u) => EKU_NAMES[String(u)] ?? String(u)).join(", ")}`);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (san) lines.push(`Alt. names:  ${describeNames(san.names)}`);
  if (cert.getExtension("2.5.29.30")) lines.push("Name constr.: present (critical)");
  const crl = cert.getExtension(x509.CRLDistributionPointsExtension);
  if (crl) {
    const urls = crl.distributionPoints.flatMap((dp) =>
      (dp.distributionPoint?.fullName ?? []).map((n) => n.uniformResourceIdentifier ?? ""),
    );
    lines.push(`CRL:         ${urls.filter(Boolean).join(", ")}`);
  }
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) lines.push(`Key id:      ${ski.keyId}`);
  lines.push(`SHA-256:     ${createHash("sha256").update(new Uint8Array(cert.rawData)).digest("hex")}`);
  return lines;
}

/** The certificate's version number (1 or 3) read from its DER. */
function asn1Version(der: ArrayBuffer): number {
  const parsed = asn1js.fromBER(der);
  const tbs = parsed.result instanceof asn1js.Sequence ? parsed.result.valueBlock.value[0] : undefined;
  const first = tbs instanceof asn1js.Sequence ? tbs.valueBlock.value[0] : undefined;
  if (first && first.idBlock.tagClass === 3 && first.idBlock.tagNumber === 0) {
    const inner = (first as asn1js.Constructed).valueBlock.value[0];
    if (inner instanceof asn1js.Integer) return inner.valueBlock.valueDec + 1;
  }
  return 1;
}

/** The summary lines of one CRL. */
function describeCrl(crl: x509.X509Crl): string[] {
  const lines = [
    `CRL issuer:  ${crl.issuer}`,
    `This update: ${iso(crl.thisUpdate)}`,
    `Next update: ${crl.nextUpdate ? iso(crl.nextUpdate) : "none"}`,
    `Signature:   ${describeSignature(crl.signatureAlgorithm)}`,
    `Revoked:     ${crl.entries.length}`,
  ];
  for (const entry of crl.entries) {
    const reason = entry.reason !== undefined ? ` (${x509.X509CrlReason[entry.reason]})` : "";
    lines.push(`  ${entry.serialNumber.toLowerCase()} at ${iso(entry.revocationDate)}${reason}`);
  }
  return lines;
}

/** Summaries of every certificate and CRL in a PEM (or single DER) file. */
export function describeFile(data: Buffer, name: string): string {
  if (data.length > MAX_FILE_BYTES) throw new PkiError("bad-input", `${name} is too large`);
  const text = data.toString("latin1");
  const sections: string[][] = [];
  try {
    if (text.includes("-----BEGIN")) {
      for (const block of x509.PemConverter.decodeWithHeaders(text)) {
        if (block.type === "CERTIFICATE")
          sections.push(describeCertificate(new x509.X509Certificate(block.rawData)));
        else if (block.type === "X509 CRL") sections.push(describeCrl(new x509.X509Crl(block.rawData)));
      }
    } else {
      sections.push(describeDer(Uint8Array.from(data)));
    }
  } catch (err) {
    if (err instanceof PkiError) throw err;
    const what = text.includes("-----BEGIN")
      ? "holds a certificate or CRL that cannot be parsed"
      : "is not a certificate or CRL (PEM or DER)";
    throw new PkiError("bad-input", `${name} ${what}`);
  }
  if (sections.length === 0) throw new PkiError("bad-input", `${name} holds no certificate or CRL`);
  return sections
    .map((lines, i) => (sections.length > 1 ? [`[${i}]`, ...lines] : lines).join("\n"))
    .join("\n\n");
}

function describeDer(der: Uint8Array<ArrayBuffer>): string[] {
  try {
    return describeCertificate(new x509.X509Certificate(der));
  } catch {
    return describeCrl(new x509.X509Crl(der));
  }
}
