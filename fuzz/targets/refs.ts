/**
 * Key references, which reach the parsers from command lines, configuration and key files:
 * RFC 7512 PKCS#11 URIs and `kms://` references. Refusals are KeyError.
 */
import fc from "fast-check";
import { parsePkcs11Uri, redactPkcs11Uri } from "../../src/keys/pkcs11_uri.ts";
import { KeyError } from "../../src/keys/types.ts";
import { parseKmsRef } from "../../src/kms/kms_ref.ts";
import { asText, type FuzzTarget, simpleTarget, textSeeds, typedErrors } from "../target.ts";

/** Pieces references are built from, so generated ones get past the first checks. */
function pieces(words: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(...words),
    fc.string({ maxLength: 12 }),
    fc.constantFrom("%", "%2", "%zz", "%00", "%3b", ";", "?", "&", "="),
  );
}

function joined(words: readonly string[]): fc.Arbitrary<Buffer> {
  return fc.array(pieces(words), { maxLength: 24 }).map((p) => Buffer.from(p.join(""), "utf8"));
}

const PKCS11_SEEDS = [
  "pkcs11:token=hsmkit;object=server;type=private?pin-value=1234",
  "pkcs11:token=My%20Token;id=%01%02%03;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/pin",
  "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=1234;token=t;object=o;type=cert",
  "pkcs11:slot-id=0;object=k?pin-value=%31%32",
];

const PKCS11_WORDS = [
  "pkcs11:",
  "token=",
  "object=",
  "type=private",
  "id=",
  "slot-id=",
  "?",
  "pin-value=",
  "pin-source=",
  "module-path=",
  "module-name=",
];

const KMS_SEEDS = [
  "kms://127.0.0.1:8443/key-0123abcd?client-key=/etc/kms/clientKey.json&password-file=/etc/kms/pw.txt&ca=/etc/kms/ca.pem",
  "kms://[::1]:443/alias/prod/signing?client-key=ck.json&password-file=pw",
  "kms://kms.example:9443/key-1?password-file=p%20w&client-key=c%2Fk",
];

const KMS_WORDS = [
  "kms://",
  "127.0.0.1",
  "[::1]",
  ":443",
  ":0",
  ":99999",
  "/key-",
  "/alias/",
  "?",
  "&",
  "client-key=",
  "password-file=",
  "ca=",
  "#",
];

/** Reference targets. */
export const REF_TARGETS: readonly FuzzTarget[] = [
  simpleTarget({
    name: "pkcs11-uri",
    about: "RFC 7512 PKCS#11 URIs (parse and redact)",
    seeds: () => textSeeds(PKCS11_SEEDS),
    generate: () => joined(PKCS11_WORDS),
    expected: typedErrors(KeyError),
    run(input) {
      const text = asText(input);
      redactPkcs11Uri(text);
      parsePkcs11Uri(text);
    },
  }),
  simpleTarget({
    name: "kms-ref",
    about: "kms://HOST:PORT/KEY_ID?client-key=..&password-file=..&ca=.. references",
    seeds: () => textSeeds(KMS_SEEDS),
    generate: () => joined(KMS_WORDS),
    expected: typedErrors(KeyError),
    run: (input) => parseKmsRef(asText(input)),
  }),
];
