/**
 * The CA's small parts on their own: name parsing, serials, validity planning, the ECDSA
 * signature conversion, the subject-key checks, the lock and staged writes.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, sign, verify } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as x509 from "@peculiar/x509";
import { describeError } from "../../src/cli/errors.ts";
import { normalizeSerial, planValidity, randomSerial } from "../../src/pki/certificate.ts";
import { PkiError } from "../../src/pki/errors.ts";
import { withDirLock } from "../../src/pki/lock.ts";
import {
  ipToBytes,
  isDnsName,
  nameConstraintsExtension,
  parseNameConstraints,
  parseSanList,
  subjectAltNameExtension,
  subjectName,
} from "../../src/pki/names.ts";
import { publishCrl } from "../../src/pki/revoke.ts";
import { ecdsaDerToRaw } from "../../src/pki/signer.ts";
import { StagedWrites, withStagedWrites } from "../../src/pki/staged.ts";
import { subjectKeyFromSpki } from "../../src/pki/subject_key.ts";
import { tempDir } from "./helpers.ts";

const refused = (kind: string, message: RegExp) => (err: unknown) =>
  err instanceof PkiError && err.kind === kind && message.test(err.message);

test("SAN lists: DNS and IP only, normalised, strictly checked", () => {
  assert.deepEqual(
    parseSanList("DNS:WWW.Example.com, IP:10.0.0.1,dns:*.example.com,IP:::1,DNS:www.example.com"),
    [
      { type: "dns", value: "www.example.com" },
      { type: "ip", value: "10.0.0.1" },
      { type: "dns", value: "*.example.com" },
      { type: "ip", value: "::1" },
    ],
  );
  for (const bad of [
    "URI:http://x/",
    "email:a@b.c",
    "x",
    "DNS:",
    "DNS:a..b",
    "DNS:-a.com",
    "DNS:*.com",
    "DNS:a.*.com",
    "IP:1.2.3",
    "IP:1.2.3.4/8",
    `DNS:${"a".repeat(64)}.com`,
  ]) {
    assert.throws(() => parseSanList(bad), refused("bad-input", /SAN/), bad);
  }
  assert.equal(isDnsName(`${"a.".repeat(126)}a`, false), true);
  assert.equal(isDnsName(`${"a.".repeat(127)}a`, false), false);
});

test("IP addresses become their 4 or 16 bytes", () => {
  assert.deepEqual([...(ipToBytes("192.168.0.255") ?? [])], [192, 168, 0, 255]);
  assert.deepEqual([...(ipToBytes("::1") ?? [])], [...Array(15).fill(0), 1]);
  assert.deepEqual(
    [...(ipToBytes("2001:db8::8:800:200c:417a") ?? [])],
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 8, 8, 0, 0x20, 0x0c, 0x41, 0x7a],
  );
  assert.deepEqual([...(ipToBytes("::ffff:1.2.3.4") ?? [])], [...Array(10).fill(0), 0xff, 0xff, 1, 2, 3, 4]);
  assert.deepEqual([...(ipToBytes("fe80::") ?? [])], [0xfe, 0x80, ...Array(14).fill(0)]);
  for (const bad of ["", "1.2.3.256", "::1::", "localhost", "1.2.3.4.5", "12345::"])
    assert.equal(ipToBytes(bad), undefined, bad);
});

test("SAN and name-constraint extensions decode back to what was asked", () => {
  const san = subjectAltNameExtension(parseSanList("DNS:a.example,IP:10.1.2.3,IP:2001:db8::1"));
  const decoded = new x509.SubjectAlternativeNameExtension(san.rawData);
  assert.deepEqual(
    decoded.names.items.map((n) => [n.type, n.value]),
    [
      ["dns", "a.example"],
      ["ip", "10.1.2.3"],
      ["ip", "2001:db8::1"],
    ],
  );
  const constraints = parseNameConstraints("DNS:.example.com,IP:10.0.0.0/8,DN:O=Acme,CN=x,IP:fd00::/8");
  assert.deepEqual(
    constraints.map((c) => c.type),
    ["dns", "ip", "dn", "ip"],
  );
  const ext = nameConstraintsExtension(constraints, [{ type: "dns", value: "bad.example.com" }]);
  assert.equal(ext.critical, true);
  const der = Buffer.from(ext.value);
  // permitted [0] holds the /8 mask 0a000000 ff000000 and the IPv6 mask ff00...; excluded [1] follows.
  assert.ok(der.includes(Buffer.from("87080a000000ff000000", "hex")));
  assert.ok(der.includes(Buffer.from(`8720fd${"00".repeat(15)}ff${"00".repeat(15)}`, "hex")));
  assert.ok(der.includes(Buffer.from("bad.example.com")));
  for (const bad of ["IP:10.0.0.0", "IP:10.0.0.0/33", "DNS:a..b", "URI:x", "DN:===", "IP:x/8"]) {
    assert.throws(() => parseNameConstraints(bad), refused("bad-input", /name constraint/), bad);
  }
});

test("common names are checked: present, at most 64 characters, no control characters", () => {
  assert.equal(subjectName("Ünïcødé CA, Inc.").getField("CN")[0], "Ünïcødé CA, Inc.");
  for (const bad of ["", "   ", "a".repeat(65), "bad\nname", "nul\u0000"]) {
    assert.throws(() => subjectName(bad), refused("bad-input", /common name/), JSON.stringify(bad));
  }
});

test("serials: 128 random bits, positive, canonical hex; user input normalised", () => {
  const serials = new Set(Array.from({ length: 2000 }, randomSerial));
  assert.equal(serials.size, 2000);
  for (const s of serials) assert.match(s, /^(?!00)[0-9a-f]{32}$/);
  assert.equal(normalizeSerial("0x00A1:B2"), "a1b2");
  assert.equal(normalizeSerial("00ab"), "ab");
  assert.equal(normalizeSerial("abc"), "0abc");
  assert.equal(normalizeSerial("0"), "0");
  for (const bad of ["", "xyz", "12 34", "f".repeat(43)])
    assert.throws(() => normalizeSerial(bad), refused("bad-input", /hex serial/));
});

test("validity stays inside the issuer's: defaults shrink, explicit days beyond it are refused", () => {
  const now = new Date("2030-01-01T00:00:00Z");
  const issuer = { notBefore: new Date("2029-12-31T23:59:30Z"), notAfter: new Date("2030-03-01T00:00:00Z") };
  const shrunk = planValidity({ days: undefined, defaultDays: 365, issuer, now });
  assert.deepEqual(shrunk, { notBefore: issuer.notBefore, notAfter: issuer.notAfter });
  const plain = planValidity({ days: 10, defaultDays: 365, now });
  assert.equal(plain.notBefore.toISOString(), "2029-12-31T23:59:00.000Z");
  assert.equal(plain.notAfter.toISOString(), "2030-01-11T00:00:00.000Z");
  assert.throws(
    () => planValidity({ days: 90, defaultDays: 365, issuer, now }),
    refused("bad-input", /^'days' 90 would end after/),
  );
  assert.throws(
    () => planValidity({ days: 0, defaultDays: 1, now }),
    refused("bad-input", /^'days' must be/),
  );
  assert.throws(
    () => planValidity({ days: 1.5, defaultDays: 1, now }),
    refused("bad-input", /^'days' must be/),
  );
  const expired = { notBefore: new Date("2020-01-01Z"), notAfter: new Date("2021-01-01Z") };
  assert.throws(
    () => planValidity({ days: undefined, defaultDays: 1, issuer: expired, now }),
    refused("ca-dir", /expired/),
  );
});

test("ECDSA DER signatures convert to fixed-width r||s; malformed ones are refused", () => {
  for (const [curve, width] of [
    ["P-256", 32],
    ["P-384", 48],
    ["P-521", 66],
  ] as const) {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: curve });
    for (let i = 0; i < 20; i++) {
      const message = Buffer.from(`message ${i}`);
      const der = sign("sha256", message, privateKey);
      const raw = ecdsaDerToRaw(der, width);
      assert.equal(raw.length, width * 2);
      assert.ok(verify("sha256", message, { key: publicKey, dsaEncoding: "ieee-p1363" }, raw), curve);
    }
  }
  const der = sign("sha256", Buffer.from("x"), generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey);
  const bad = [
    der.subarray(0, der.length - 1), // truncated
    Buffer.concat([der, Buffer.from([0])]), // trailing byte
    Buffer.from("3000", "hex"), // no integers
    Buffer.from(`3046022100${"ff".repeat(33)}020101`, "hex"), // r wider than the field
    Buffer.alloc(0),
  ];
  for (const b of bad)
    assert.throws(() => ecdsaDerToRaw(b, 32), refused("key", /ECDSA signature/), b.toString("hex"));
});

test("subject keys: weak or unusual keys are refused", () => {
  const spki = (key: ReturnType<typeof generateKeyPairSync>["publicKey"]) =>
    key.export({ type: "spki", format: "der" });
  assert.equal(
    subjectKeyFromSpki(spki(generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey), "k").type,
    "ec",
  );
  const rsa1024 = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey;
  assert.throws(() => subjectKeyFromSpki(spki(rsa1024), "k"), refused("bad-input", /1024-bit RSA/));
  const p192 = generateKeyPairSync("ec", { namedCurve: "prime192v1" }).publicKey;
  assert.throws(() => subjectKeyFromSpki(spki(p192), "k"), refused("bad-input", /curve prime192v1/));
  const ed = generateKeyPairSync("ed25519").publicKey;
  assert.throws(() => subjectKeyFromSpki(spki(ed), "k"), refused("bad-input", /ed25519 key/));
  assert.throws(
    () => subjectKeyFromSpki(Buffer.from("3003020100", "hex"), "k"),
    refused("bad-input", /no usable public key/),
  );
});

test("the directory lock serialises holders, times out on a live holder and takes over a dead one", async (t) => {
  const dir = await tempDir(t);
  let inside = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: 8 }, () =>
      withDirLock(dir, async () => {
        inside++;
        most = Math.max(most, inside);
        await sleep(5);
        inside--;
      }),
    ),
  );
  assert.equal(most, 1);
  assert.deepEqual(await readdir(dir), []);
  // A live holder (this very process): wait, then give up with a clear error.
  await writeFile(join(dir, ".lock"), `${process.pid} ${hostname()}\n`);
  await assert.rejects(
    withDirLock(dir, async () => 1, 150),
    refused("locked", /is locked by another process/),
  );
  assert.match(await readFile(join(dir, ".lock"), "utf8"), new RegExp(`^${process.pid} `));
  // A dead holder: taken over.
  await writeFile(join(dir, ".lock"), `2147483646 ${hostname()}\n`);
  assert.equal(await withDirLock(dir, async () => 42, 1000), 42);
  assert.deepEqual(await readdir(dir), []);
  await assert.rejects(
    withDirLock(join(dir, "missing"), async () => 1),
    refused("ca-dir", /does not exist/),
  );
});

test("staged writes: all files appear together, or none and no temporaries", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "a"), "old a");
  await assert.rejects(
    withStagedWrites(async (batch) => {
      await batch.add(join(dir, "a"), "new a");
      await batch.add(join(dir, "b"), "new b", 0o600);
      throw new PkiError("bad-input", "changed my mind");
    }),
    refused("bad-input", /changed my mind/),
  );
  assert.deepEqual(await readdir(dir), ["a"]);
  assert.equal(await readFile(join(dir, "a"), "utf8"), "old a");
  await assert.rejects(
    withStagedWrites(async (batch) => {
      await batch.add(join(dir, "a"), "new a");
      await batch.add(join(dir, "no-such-dir", "b"), "x");
    }),
    refused("io", /cannot write/),
  );
  assert.deepEqual(await readdir(dir), ["a"]);
  await withStagedWrites(async (batch) => {
    await batch.add(join(dir, "a"), "new a");
    await batch.add(join(dir, "b"), "new b", 0o600);
  });
  assert.deepEqual((await readdir(dir)).sort(), ["a", "b"]);
  assert.equal(await readFile(join(dir, "b"), "utf8"), "new b");
  const batch = new StagedWrites();
  const reserved = batch.reserve(join(dir, "c"));
  await writeFile(reserved, "c");
  await batch.commit();
  assert.equal(await readFile(join(dir, "c"), "utf8"), "c");
});

test("validity messages name the API option in the library and the flag in the CLI", async () => {
  const tooLong = await publishCrl({ dir: "/nonexistent", out: "/nonexistent/crl.pem", days: 0 }).catch(
    (err: unknown) => err,
  );
  assert.ok(tooLong instanceof PkiError);
  assert.match(tooLong.message, /^'days' must be a whole number from 1 to 3650, not 0$/);
  assert.equal(describeError(tooLong), "--days must be a whole number from 1 to 3650, not 0");
  const planned = (() => {
    try {
      return planValidity({ days: 0, defaultDays: 1 });
    } catch (err) {
      return err;
    }
  })();
  assert.equal(describeError(planned), "--days must be a whole number from 1 to 36500, not 0");
});
