/**
 * Certificate profiles: the extensions a root, an intermediate, a server and a client
 * certificate carry, chosen the way the web PKI (RFC 5280, CA/Browser Forum) expects.
 */
import { createHash } from "node:crypto";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import type { KeyType } from "../keys/types.ts";
import { PkiError } from "./errors.ts";
import type { NameConstraint, SanEntry } from "./names.ts";
import { nameConstraintsExtension, subjectAltNameExtension } from "./names.ts";

/** The kinds of certificate the CA issues. */
export type Profile = "root" | "intermediate" | "server" | "client";

/** What a profile needs to know about the certificate being made. */
export interface ProfileInput {
  readonly profile: Profile;
  /** SubjectPublicKeyInfo DER of the certified key. */
  readonly spki: Uint8Array;
  /** Algorithm of the certified key: RSA server keys also get keyEncipherment. */
  readonly keyType: KeyType;
  /** The issuer's key identifier; omitted for a root, which names its own. */
  readonly issuerKeyId?: Uint8Array;
  /** Path length constraint for CA profiles; undefined means none. */
  readonly pathLen?: number;
  /** subjectAltName entries (server: at least one; client: optional). */
  readonly san?: readonly SanEntry[];
  /** CRL distribution point URL, when the issuing CA publishes one. */
  readonly crlUrl?: string;
  /** Name constraints for an intermediate. */
  readonly permitted?: readonly NameConstraint[];
  readonly excluded?: readonly NameConstraint[];
}

/** EKU object identifiers. */
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

/**
 * The key identifier of an SPKI: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2
 * method 1), what OpenSSL and most CAs use. SHA-1 here is a name, not a signature.
 */
export function keyIdentifier(spki: Uint8Array): Uint8Array {
  const parsed = asn1js.fromBER(spki);
  const seq = parsed.result;
  const bits = seq instanceof asn1js.Sequence ? seq.valueBlock.value[1] : undefined;
  if (parsed.offset !== spki.length || !(bits instanceof asn1js.BitString)) {
    throw new PkiError("bad-input", "the public key is not a valid SubjectPublicKeyInfo");
  }
  return new Uint8Array(createHash("sha1").update(bits.valueBlock.valueHexView).digest());
}

/** The extensions for one certificate under its profile. */
export function profileExtensions(input: ProfileInput): x509.Extension[] {
  const ownId = keyIdentifier(input.spki);
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
  const isCa = input.profile === "root" || input.profile === "intermediate";
  const exts: x509.Extension[] = [
    new x509.BasicConstraintsExtension(isCa, isCa ? input.pathLen : undefined, true),
  ];

  if (isCa) {
    exts.push(new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true));
  } else {
    let usage = x509.KeyUsageFlags.digitalSignature;
    // TLS RSA key exchange encrypts the premaster secret to a server's RSA key.
    if (input.profile === "server" && input.keyType === "rsa") usage |= x509.KeyUsageFlags.keyEncipherment;
    exts.push(new x509.KeyUsagesExtension(usage, true));
    exts.push(
      new x509.ExtendedKeyUsageExtension([input.profile === "server" ? SERVER_AUTH : CLIENT_AUTH], false),
    );
  }

  exts.push(new x509.SubjectKeyIdentifierExtension(hex(ownId), false));
  exts.push(new x509.AuthorityKeyIdentifierExtension(hex(input.issuerKeyId ?? ownId), false));

  const san = input.san ?? [];
  if (input.profile === "server" && san.length === 0) {
    throw new PkiError(
      "bad-input",
      (name) =>
        `a server certificate needs a host name: give ${name("san", "DNS:...")} or a host name as ${name("cn")}`,
    );
  }
  if (san.length > 0) exts.push(subjectAltNameExtension(san));

  if (
    input.profile === "intermediate" &&
    ((input.permitted?.length ?? 0) > 0 || (input.excluded?.length ?? 0) > 0)
  ) {
    exts.push(nameConstraintsExtension(input.permitted ?? [], input.excluded ?? []));
  }
  if (input.crlUrl && input.profile !== "root") {
    exts.push(new x509.CRLDistributionPointsExtension([input.crlUrl], false));
  }
  return exts;
}

/** The subjectKeyIdentifier of a certificate, or its computed key identifier when it has none. */
export function certificateKeyId(cert: x509.X509Certificate): Uint8Array {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new Uint8Array(Buffer.from(ski.keyId, "hex"));
  return keyIdentifier(new Uint8Array(cert.publicKey.rawData));
}
