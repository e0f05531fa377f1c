/**
 * RFC 7512 URI parsing: what good URIs decode to, and that malformed, truncated and
 * oversized ones are refused with KeyError("bad-reference").
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import {
  MAX_PKCS11_URI_LENGTH,
  parsePkcs11Uri,
  resolveModulePath,
  withoutPinValue,
} from "../../src/keys/pkcs11_uri.ts";
import { KeyError } from "../../src/keys/types.ts";

function rejects(uri: string, pattern: RegExp): void {
  assert.throws(
    () => parsePkcs11Uri(uri),
    (err: unknown) => err instanceof KeyError && err.kind === "bad-reference" && pattern.test(err.message),
    `expected ${JSON.stringify(uri.slice(0, 80))} to be refused with ${pattern}`,
  );
}

describe("parsePkcs11Uri: well-formed URIs", () => {
  test("the architecture's example decodes to its parts", () => {
    const uri = parsePkcs11Uri(
      "pkcs11:token=T;object=O;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
    );
    assert.deepEqual(uri, {
      token: "T",
      object: "O",
      type: "private",
      modulePath: "/usr/lib/softhsm/libsofthsm2.so",
      pinValue: "1234",
    });
  });

  test("percent-encoded text and id bytes are decoded", () => {
    const uri = parsePkcs11Uri("pkcs11:token=My%20Token%3B1;object=caf%C3%A9;id=%01%02%ff%00");
    assert.equal(uri.token, "My Token;1");
    assert.equal(uri.object, "café");
    assert.deepEqual(uri.id, Buffer.from([1, 2, 0xff, 0]));
  });

  test("every RFC 7512 path attribute is read", () => {
    const uri = parsePkcs11Uri(
      "pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=0123456789abcdef;token=t;" +
        "library-manufacturer=SoftHSM;library-description=Implementation;library-version=2.6;" +
        "slot-description=s;slot-manufacturer=m;slot-id=42;object=o;type=cert",
    );
    assert.equal(uri.manufacturer, "SoftHSM project");
    assert.equal(uri.model, "SoftHSM v2");
    assert.equal(uri.serial, "0123456789abcdef");
    assert.deepEqual(uri.libraryVersion, { major: 2, minor: 6 });
    assert.equal(uri.libraryManufacturer, "SoftHSM");
    assert.equal(uri.libraryDescription, "Implementation");
    assert.equal(uri.slotDescription, "s");
    assert.equal(uri.slotManufacturer, "m");
    assert.equal(uri.slotId, 42);
    assert.equal(uri.type, "cert");
  });

  test("scheme is case-insensitive; empty path and vendor x- attributes are accepted", () => {
    assert.deepEqual(parsePkcs11Uri("PKCS11:"), {});
    assert.deepEqual(parsePkcs11Uri("pkcs11:x-vendor=1;token=a?x-other=2"), { token: "a" });
    assert.deepEqual(parsePkcs11Uri("pkcs11:library-version=3").libraryVersion, { major: 3, minor: 0 });
  });

  test("pin-source takes a path or a file: URI", () => {
    assert.equal(parsePkcs11Uri("pkcs11:token=a?pin-source=/run/pin.txt").pinSource, "/run/pin.txt");
    const url = pathToFileURL("/tmp/a pin.txt").href;
    assert.equal(parsePkcs11Uri(`pkcs11:token=a?pin-source=${url}`).pinSource, "/tmp/a pin.txt");
  });

  test("an attribute value may contain '='", () => {
    assert.equal(parsePkcs11Uri("pkcs11:object=a=b").object, "a=b");
  });
});

describe("parsePkcs11Uri: malformed input", () => {
  test("not a pkcs11 URI", () => {
    rejects("pkcs12:token=a", /does not start with 'pkcs11:'/);
    rejects("token=a", /does not start/);
    rejects("", /does not start/);
  });

  test("truncated percent-escapes", () => {
    rejects("pkcs11:token=a%", /bad percent-escape in token/);
    rejects("pkcs11:token=a%4", /bad percent-escape/);
    rejects("pkcs11:id=%0g", /bad percent-escape in id/);
    rejects("pkcs11:token=a?pin-value=%", /bad percent-escape in pin-value/);
  });

  test("truncated attributes", () => {
    rejects("pkcs11:token", /no name=value form/);
    rejects("pkcs11:=a", /no name=value form/);
    rejects("pkcs11:token=a;", /empty attribute/);
    rejects("pkcs11:token=a;;object=b", /empty attribute/);
    rejects("pkcs11:token=a?", /empty query/);
    rejects("pkcs11:token=a?pin-value=1&", /empty attribute/);
    rejects("pkcs11:id=", /id is empty/);
  });

  test("repeated, unknown and ill-typed attributes", () => {
    rejects("pkcs11:token=a;token=b", /'token' repeated/);
    rejects("pkcs11:token=a;TOKEN=b", /'token' repeated/);
    rejects("pkcs11:tokne=a", /unknown path attribute 'tokne'/);
    rejects("pkcs11:token=a?pin=1", /unknown query attribute 'pin'/);
    rejects("pkcs11:pin-value=1", /unknown path attribute 'pin-value'/);
    rejects("pkcs11:type=secret", /type 'secret' is not one of/);
    rejects("pkcs11:slot-id=abc", /slot-id must be a decimal number/);
    rejects("pkcs11:slot-id=99999999999999999999", /slot-id/);
    rejects("pkcs11:library-version=two", /library-version/);
    rejects("pkcs11:token=a?pin-value=1&pin-source=/p", /either pin-value or pin-source/);
    rejects("pkcs11:token=a?pin-source=https://example/pin", /pin-source must be a file path/);
    rejects("pkcs11:token=a?module-name=../evil", /module-name must be a plain library name/);
  });

  test("characters that must be percent-encoded", () => {
    rejects("pkcs11:token=My Token", /U\+0020 in the path must be percent-encoded/);
    rejects("pkcs11:object=a/b", /'\/' in the path/);
    rejects("pkcs11:object=a\nb", /U\+000a/);
    rejects("pkcs11:object=é", /U\+00e9/);
    rejects("pkcs11:object=a#frag", /fragments/);
    rejects('pkcs11:token=a?module-path=/x"y', /'"' in the query/);
  });

  test("invalid UTF-8 in a text attribute", () => {
    rejects("pkcs11:token=%ff%fe", /token is not valid UTF-8/);
    rejects("pkcs11:object=%c3", /object is not valid UTF-8/);
  });

  test("oversized URIs and fields", () => {
    rejects(`pkcs11:token=${"a".repeat(MAX_PKCS11_URI_LENGTH)}`, /longer than 8192 characters/);
    rejects(`pkcs11:token=${"a".repeat(33)}`, /token is longer than the 32 bytes/);
    rejects(`pkcs11:serial=${"1".repeat(17)}`, /serial is longer than the 16 bytes/);
    rejects(`pkcs11:id=${"%00".repeat(257)}`, /id is longer than 256 bytes/);
    // 32 bytes exactly is fine, even when it is 16 two-byte characters.
    assert.equal(parsePkcs11Uri(`pkcs11:token=${"%C3%A9".repeat(16)}`).token, "é".repeat(16));
    rejects(`pkcs11:token=${"%C3%A9".repeat(17)}`, /longer than the 32 bytes/);
  });

  test("random corruption never escapes as anything but bad-reference", () => {
    const good = "pkcs11:token=T;object=O;id=%01;type=private?module-path=/m.so&pin-value=1";
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const chars = [...good];
      const at = 7 + (next() % (chars.length - 7));
      const mutation = next() % 3;
      if (mutation === 0) chars.splice(at, 1);
      else if (mutation === 1) chars[at] = String.fromCharCode(next() % 256);
      else chars.splice(at, 0, String.fromCharCode(next() % 128));
      const uri = chars.join("").slice(0, 7 + (next() % (chars.length - 6)));
      try {
        parsePkcs11Uri(uri);
      } catch (err) {
        assert.ok(err instanceof KeyError && err.kind === "bad-reference", `${uri}: ${String(err)}`);
      }
    }
  });
});

describe("resolveModulePath", () => {
  test("module-path wins, then HSMKIT_PKCS11_MODULE, then SoftHSM2's library", () => {
    assert.equal(resolveModulePath({ modulePath: "/a.so" }, { HSMKIT_PKCS11_MODULE: "/b.so" }), "/a.so");
    assert.equal(resolveModulePath({}, { HSMKIT_PKCS11_MODULE: "/b.so" }), "/b.so");
    assert.match(resolveModulePath({}, {}), /softhsm.*libsofthsm2\.so$/);
  });

  test("module-name is looked up in the system module directories", () => {
    assert.match(resolveModulePath({ moduleName: "softhsm2" }, {}), /libsofthsm2\.so$/);
    assert.throws(
      () => resolveModulePath({ moduleName: "no-such-module" }, {}),
      (err: unknown) =>
        err instanceof KeyError && err.kind === "not-found" && /no-such-module/.test(err.message),
    );
  });

  test("a file: pin-source with a percent-encoded name reads that file's path", () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmkit-uri-"));
    try {
      const file = join(dir, "my pin");
      writeFileSync(file, "1234\n");
      assert.equal(parsePkcs11Uri(`pkcs11:token=a?pin-source=${pathToFileURL(file).href}`).pinSource, file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("withoutPinValue: what a file may keep", () => {
  test("drops pin-value wherever it stands, keeps everything else", () => {
    const cases: Array<[string, string]> = [
      ["pkcs11:token=t;object=o?pin-value=1234", "pkcs11:token=t;object=o"],
      ["pkcs11:token=t?module-path=/m.so&pin-value=1234", "pkcs11:token=t?module-path=/m.so"],
      ["pkcs11:token=t?pin-value=12%3434&module-path=/m.so", "pkcs11:token=t?module-path=/m.so"],
      ["pkcs11:token=t?PIN-VALUE=1&pin-source=/p", "pkcs11:token=t?pin-source=/p"],
      ["pkcs11:token=t?pin-source=/p", "pkcs11:token=t?pin-source=/p"],
      ["file:./k.pem?passphrase-file=/p", "file:./k.pem?passphrase-file=/p"],
      ["kms://h:1/key-1?client-key=/c&password-file=/p", "kms://h:1/key-1?client-key=/c&password-file=/p"],
    ];
    for (const [input, kept] of cases) {
      assert.equal(withoutPinValue(input), kept, input);
      assert.equal(parsePkcs11Uri(kept.startsWith("pkcs11:") ? kept : "pkcs11:").pinValue, undefined);
    }
  });
});
