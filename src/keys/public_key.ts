/**
 * Public-key plumbing shared by the backends: curve facts, building a Node public KeyObject
 * from the raw numbers a token hands out (RSA modulus/exponent, EC parameters/point), and
 * converting a raw ECDSA r||s signature to the DER form TLS and X.509 use.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import type { NamedCurve } from "./types.ts";
import { KeyError } from "./types.ts";

/** What hsmkit needs to know about a curve. */
export interface CurveInfo {
  /** The hsmkit / JWK name. */
  readonly name: NamedCurve;
  /** OpenSSL's name, as node:crypto reports it in asymmetricKeyDetails.namedCurve. */
  readonly opensslName: string;
  /** DER of the curve OID (the ECParameters namedCurve form, as in CKA_EC_PARAMS). */
  readonly oidDer: Buffer;
  /** Field element (and order) size in bytes. */
  readonly bytes: number;
  /** Field size in bits. */
  readonly bits: number;
}

/** The curves hsmkit handles. */
export const CURVES: readonly CurveInfo[] = [
  {
    name: "P-256",
    opensslName: "prime256v1",
    oidDer: Buffer.from("06082a8648ce3d030107", "hex"),
    bytes: 32,
    bits: 256,
  },
  {
    name: "P-384",
    opensslName: "secp384r1",
    oidDer: Buffer.from("06052b81040022", "hex"),
    bytes: 48,
    bits: 384,
  },
  {
    name: "P-521",
    opensslName: "secp521r1",
    oidDer: Buffer.from("06052b81040023", "hex"),
    bytes: 66,
    bits: 521,
  },
];

/** Looks a curve up by hsmkit name, OpenSSL name or OID DER; undefined when unknown. */
export function findCurve(key: string | Uint8Array): CurveInfo | undefined {
  if (typeof key === "string") return CURVES.find((c) => c.name === key || c.opensslName === key);
  return CURVES.find((c) => c.oidDer.equals(key));
}

/** The facts about a KeyObject that every handle exposes. */
export interface KeyShape {
  readonly type: "rsa" | "ec";
  readonly bits: number;
  readonly curve: NamedCurve | undefined;
}

/**
 * Throws unless the key's public half exports as SubjectPublicKeyInfo. OpenSSL imports some
 * malformed EC keys (the point at infinity) as keys that end the process with a native
 * assertion when Node reads their details or exports them as JWK; the SPKI export of such a
 * key throws instead, so it is the check made before anything else reads the key.
 */
export function assertExportablePublicKey(key: KeyObject, what: string): void {
  try {
    const publicKey = key.type === "private" ? createPublicKey(key) : key;
    publicKey.export({ type: "spki", format: "der" });
  } catch {
    throw new KeyError("unsupported", `${what}: the public key is malformed (it cannot be encoded)`);
  }
}

/** Reads type, size and curve from a Node key; rejects key types hsmkit cannot use. */
export function keyShape(key: KeyObject, what: string): KeyShape {
  assertExportablePublicKey(key, what);
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "rsa") {
    return { type: "rsa", bits: details.modulusLength ?? 0, curve: undefined };
  }
  if (key.asymmetricKeyType === "ec") {
    const curve = findCurve(details.namedCurve ?? "");
    if (!curve) throw new KeyError("unsupported", `${what}: curve ${details.namedCurve} is not supported`);
    return { type: "ec", bits: curve.bits, curve: curve.name };
  }
  throw new KeyError(
    "unsupported",
    `${what}: ${key.asymmetricKeyType} keys are not supported (RSA and EC only)`,
  );
}

/** SubjectPublicKeyInfo DER of a public key. */
export function spkiDer(key: KeyObject): Buffer {
  return key.export({ type: "spki", format: "der" });
}

/** A public key from an RSA modulus and public exponent (big-endian unsigned bytes). */
export function rsaPublicKey(modulus: Uint8Array, exponent: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: "RSA", n: b64url(stripZeros(modulus)), e: b64url(stripZeros(exponent)) },
    format: "jwk",
  });
}

/**
 * A public key from CKA_EC_PARAMS and CKA_EC_POINT. The point is normally a DER OCTET
 * STRING around the uncompressed point; some tokens return the bare point, so both are read.
 */
export function ecPublicKey(params: Uint8Array, point: Uint8Array): KeyObject {
  const curve = findCurve(params);
  if (!curve) throw new KeyError("unsupported", "the token key uses an unsupported curve");
  const raw = unwrapEcPoint(point, curve.bytes);
  return createPublicKey({
    key: {
      kty: "EC",
      crv: curve.name,
      x: b64url(raw.subarray(1, 1 + curve.bytes)),
      y: b64url(raw.subarray(1 + curve.bytes)),
    },
    format: "jwk",
  });
}

function unwrapEcPoint(point: Uint8Array, size: number): Buffer {
  const bare = 1 + 2 * size;
  const buf = Buffer.from(point);
  if (buf.length === bare && buf[0] === 0x04) return buf;
  // DER OCTET STRING: 04 len [81 len] point
  if (buf[0] === 0x04) {
    let offset = 2;
    let len = buf[1] ?? 0;
    if (len === 0x81) {
      len = buf[2] ?? 0;
      offset = 3;
    }
    const inner = buf.subarray(offset);
    if (len === bare && inner.length === bare && inner[0] === 0x04) return inner;
  }
  throw new KeyError("unsupported", "the token's EC point is not an uncompressed point");
}

function stripZeros(bytes: Uint8Array): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return Buffer.from(bytes.subarray(i));
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

/** DER length octets for a content length. */
function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length < 0x100) return Buffer.from([0x81, length]);
  return Buffer.from([0x82, length >> 8, length & 0xff]);
}

/** A DER INTEGER holding an unsigned big-endian value. */
function derUnsignedInteger(value: Uint8Array): Buffer {
  let body = stripZeros(value);
  if (((body[0] ?? 0) & 0x80) !== 0) body = Buffer.concat([Buffer.from([0]), body]);
  return Buffer.concat([Buffer.from([0x02]), derLength(body.length), body]);
}

/** Converts a raw ECDSA signature r||s (as CKM_ECDSA returns) to a DER Ecdsa-Sig-Value. */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) {
    throw new KeyError("backend", `ECDSA signature of odd length ${raw.length} from the token`);
  }
  const half = raw.length / 2;
  const body = Buffer.concat([
    derUnsignedInteger(raw.subarray(0, half)),
    derUnsignedInteger(raw.subarray(half)),
  ]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}
