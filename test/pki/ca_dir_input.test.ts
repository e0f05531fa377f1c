/**
 * The CA directory under bad input: every refusal is one clear line and leaves the
 * directory byte-for-byte unchanged, and writes no output files.
 */
import assert from "node:assert/strict";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { createToken, softHsm, tokenKey } from "../helpers/softhsm.ts";
import {
  cli,
  cliOk,
  exists,
  intermediateArgs,
  issueServerArgs,
  openssl,
  refusedUnchanged,
  serialOf,
  snapshot,
  tempDir,
} from "./helpers.ts";

softHsm();

test("bad input to cert issue is refused in one line and leaves the CA directory unchanged", async (t) => {
  const dir = await tempDir(t);
  const ca = join(dir, "ca");
  const out = join(dir, "leaf");
  await cliOk(["ca", "init", "--dir", ca, "--cn", "Strict CA", "--type", "ec-p256", "--days", "30"]);
  const issue = (...extra: string[]) => ["cert", "issue", "--ca", ca, "--out", out, ...extra];
  const client = (...extra: string[]) =>
    issue("--profile", "client", "--cn", "c", "--type", "ec-p256", ...extra);

  // SANs that are not DNS or IP, or not valid ones.
  for (const [san, why] of [
    ["URI:https://example.com/", /'URI:https:\/\/example\.com\/' is not DNS:name or IP:address/],
    ["email:a@example.com", /is not DNS:name or IP:address/],
    ["DNS:bad_name!", /'DNS:bad_name!' is not a valid DNS name/],
    ["IP:999.1.1.1", /'IP:999\.1\.1\.1' is not a valid IP address/],
  ] as const) {
    await refusedUnchanged(
      ca,
      issue("--profile", "server", "--cn", "s", "--san", san, "--type", "ec-p256"),
      why,
      out,
    );
  }
  // A server certificate with no host name at all.
  await refusedUnchanged(
    ca,
    issue("--profile", "server", "--cn", "Not A Host", "--type", "ec-p256"),
    /needs a host name/,
    out,
  );
  // Validity beyond the CA's (30 days), or nonsense.
  await refusedUnchanged(ca, client("--days", "60"), /--days 60 would end after the CA certificate/, out);
  await refusedUnchanged(ca, client("--days", "0"), /--days must be a whole number from 1/, out);
  await refusedUnchanged(ca, client("--days", "ten"), /--days must be a whole number, not 'ten'/, out);
  // Key sources: none, or two.
  await refusedUnchanged(ca, issue("--profile", "client", "--cn", "c"), /exactly one of --key/, out);
  await refusedUnchanged(
    ca,
    issue("--profile", "client", "--cn", "c", "--key", join(dir, "nope.key")),
    /the certificate's key.*nope\.key/,
    out,
  );
  // The CA key file is gone.
  await rename(join(ca, "ca.key"), join(dir, "ca.key.moved"));
  await refusedUnchanged(ca, client(), /cannot open the CA key of .*ca\.key/, out);
  await rename(join(dir, "ca.key.moved"), join(ca, "ca.key"));
  // A key that is not the CA's.
  await refusedUnchanged(ca, client("--ca-key", join(dir, "other.key")), /cannot open the CA key/, out);
  await cliOk(["key", "generate", "--key", join(dir, "other.key"), "--type", "ec-p256"]);
  await refusedUnchanged(ca, client("--ca-key", join(dir, "other.key")), /does not match .*ca\.crt/, out);

  // Control: the same command with good input works, and changes only index.json.
  const before = await snapshot(ca);
  await cliOk(client());
  const after = await snapshot(ca);
  assert.deepEqual(Object.keys(after), Object.keys(before));
  assert.notEqual(after["index.json"], before["index.json"]);
  assert.equal(after["ca.crt"], before["ca.crt"]);
  // An existing key file is never overwritten.
  await refusedUnchanged(ca, client(), /leaf\.key already exists/);
});

test("a token CA with a missing key or a wrong PIN refuses to issue and changes nothing", async (t) => {
  const dir = await tempDir(t);
  const token = await createToken();
  const ca = join(dir, "ca");
  const ref = await tokenKey(token, "ca-key", "ec-p256");
  const init = await cliOk(["ca", "init", "--dir", ca, "--cn", "Token CA", "--key", ref]);
  assert.match(init.stderr, /note: ca\.json keeps the key reference without its pin-value/);
  const out = join(dir, "leaf");
  const issue = (...extra: string[]) => [
    "cert",
    "issue",
    "--ca",
    ca,
    "--out",
    out,
    "--profile",
    "client",
    "--cn",
    "c",
    "--type",
    "ec-p256",
    ...extra,
  ];
  await refusedUnchanged(
    ca,
    issue("--ca-key", token.uri("no-such-key")),
    /cannot open the CA key.*no-such-key|not found/i,
    out,
  );

  // ca.json keeps the reference without its pin-value: no file of the CA directory holds the PIN.
  for (const [name, digest] of Object.entries(await snapshot(ca))) {
    const content = await readFile(join(ca, name), "latin1");
    assert.ok(!content.includes(token.pin), `${name} holds the PIN (${digest})`);
  }
  assert.match(
    await readFile(join(ca, "ca.json"), "utf8"),
    /object=ca-key;type=private\?module-path=[^"&]+"/,
  );
  // With no PIN from anywhere the CA refuses, saying how to give one.
  const noPin = { ...process.env, HSMKIT_PIN: "" };
  await refusedUnchanged(ca, issue(), /needs a PIN.*pin-source=FILE.*HSMKIT_PIN/, out, noPin);
  await refusedUnchanged(ca, issue(), /PIN/i, out, { ...process.env, HSMKIT_PIN: "000000" });
  // The PIN from the environment, or a reference given on the command line, works.
  assert.equal((await cli(issue(), undefined, { ...process.env, HSMKIT_PIN: token.pin })).exitCode, 0);
  await rm(`${out}.pem`);
  await rm(`${out}.key`);
  await cliOk(issue("--ca-key", ref));
  // A ca.json an older hsmkit wrote with the PIN in it still works, with a warning to move it.
  const configPath = join(ca, "ca.json");
  const config = JSON.parse(await readFile(configPath, "utf8")) as { key: string };
  await writeFile(configPath, JSON.stringify({ ...config, key: ref }), { mode: 0o600 });
  await rm(`${out}.pem`);
  await rm(`${out}.key`);
  const old = await cliOk(issue());
  assert.match(old.stderr, /warning: .*ca\.json holds a PIN \(pin-value\); replace it with pin-source=FILE/);
  assert.ok(!old.stderr.includes(token.pin), "the warning never shows the PIN");
  const verified = await openssl([
    "verify",
    "-x509_strict",
    "-purpose",
    "sslclient",
    "-CAfile",
    join(ca, "ca.crt"),
    `${out}.pem`,
  ]);
  assert.equal(verified.exitCode, 0, verified.output);
});

test("a corrupted CA directory is refused before any key is used, and left as it is", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  const inter = join(dir, "inter");
  await cliOk(["ca", "init", "--dir", root, "--cn", "Corrupt Root", "--type", "ec-p256"]);
  await cliOk(intermediateArgs(inter, root, "Corrupt Inter"));
  await cliOk([
    "cert",
    "issue",
    "--ca",
    inter,
    "--profile",
    "client",
    "--cn",
    "x",
    "--type",
    "ec-p256",
    "--out",
    join(dir, "x"),
  ]);
  const out = join(dir, "leaf");
  const issue = [
    "cert",
    "issue",
    "--ca",
    inter,
    "--out",
    out,
    "--profile",
    "client",
    "--cn",
    "c",
    "--type",
    "ec-p256",
  ];
  const leafPem = await readFile(join(dir, "x.pem"), "utf8");
  const index = await readFile(join(inter, "index.json"), "utf8");
  const entry = /\{"serial"[^\n]+\}/.exec(index)?.[0] ?? "";
  const cases: [string, string, RegExp][] = [
    ["ca.json", "{ not json", /ca\.json is not valid JSON/],
    [
      "ca.json",
      '{"version":1,"kind":"intermediate","signature":"ecdsa_secp256r1_sha256"}',
      /ca\.json has no key reference/,
    ],
    [
      "ca.json",
      '{"version":1,"kind":"root","key":"ca.key","signature":"rsa_pkcs1_md5"}',
      /ca\.json has no valid 'signature'/,
    ],
    ["index.json", "", /index\.json is not valid JSON/],
    ["index.json", '{"version":1,"crlNumber":-1,"certificates":[]}', /invalid 'crlNumber'/],
    ["index.json", index.replace(entry, `${entry},\n    ${entry}`), /lists serial [0-9a-f]+ twice/],
    [
      "ca.crt",
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
      /ca\.crt holds a certificate that cannot be parsed/,
    ],
    [
      "ca.crt",
      leafPem.slice(0, leafPem.indexOf("-----END CERTIFICATE-----") + 26),
      /ca\.crt is not a CA certificate/,
    ],
    ["chain.pem", "", /chain\.pem does not start with ca\.crt/],
  ];
  for (const [file, content, why] of cases) {
    const path = join(inter, file);
    const original = await readFile(path);
    await writeFile(path, content);
    await refusedUnchanged(inter, issue, why, out);
    await refusedUnchanged(inter, ["ca", "crl", "--dir", inter, "--out", join(dir, "x.crl")], why);
    assert.equal(await exists(join(dir, "x.crl")), false);
    await writeFile(path, original);
  }
  const notCa = [
    "cert",
    "issue",
    "--ca",
    dir,
    "--out",
    out,
    "--profile",
    "client",
    "--cn",
    "c",
    "--type",
    "ec-p256",
  ];
  await refusedUnchanged(dir, notCa, /is not a CA directory \(no ca\.crt\)/);
  // Revocation input errors.
  await refusedUnchanged(
    inter,
    ["cert", "revoke", "--ca", inter, "--serial", "abcdef"],
    /serial abcdef was not issued/,
  );
  await refusedUnchanged(
    inter,
    ["cert", "revoke", "--ca", inter, "--serial", "xyz"],
    /'xyz' is not a hex serial number/,
  );
  const serial = await serialOf(join(dir, "x.pem"));
  await cliOk(["cert", "revoke", "--ca", inter, "--serial", serial]);
  await refusedUnchanged(inter, ["cert", "revoke", "--ca", inter, "--serial", serial], /already revoked/);
});

test("bad input to ca init and ca intermediate creates nothing and changes nothing", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  await cliOk(["ca", "init", "--dir", root, "--cn", "Input Root", "--type", "ec-p256", "--days", "10"]);
  const fresh = join(dir, "fresh");
  const cases: [string[], RegExp][] = [
    [
      ["ca", "init", "--dir", root, "--cn", "Again", "--type", "ec-p256"],
      /root already exists and is not an empty directory/,
    ],
    [["ca", "init", "--dir", fresh, "--cn", "X"], /give --key KEYREF or --type TYPE/],
    [["ca", "init", "--dir", fresh, "--cn", "", "--type", "ec-p256"], /common name \(--cn\) is empty/],
    [
      ["ca", "init", "--dir", fresh, "--cn", "X", "--type", "ec-p256", "--rsa-pss"],
      /--rsa-pss needs an RSA CA key/,
    ],
    [
      ["ca", "init", "--dir", fresh, "--cn", "X", "--type", "ec-p256", "--path-len", "17"],
      /--path-len must be a whole number from 0 to 16/,
    ],
    [
      ["ca", "init", "--dir", fresh, "--cn", "X", "--type", "ec-p256", "--crl-url", "ftp://x/y"],
      /--crl-url 'ftp:\/\/x\/y' is not an http\(s\) URL/,
    ],
    [
      ["ca", "init", "--dir", fresh, "--cn", "X", "--type", "dsa1024"],
      /argument 'dsa1024' is invalid|dsa1024/,
    ],
    [
      ["ca", "intermediate", "--dir", root, "--parent", root, "--cn", "X", "--type", "ec-p256"],
      /--dir and --parent are the same directory/,
    ],
    [
      [
        "ca",
        "intermediate",
        "--dir",
        fresh,
        "--parent",
        root,
        "--cn",
        "X",
        "--type",
        "ec-p256",
        "--days",
        "30",
      ],
      /--days 30 would end after the CA certificate/,
    ],
    [
      [
        "ca",
        "intermediate",
        "--dir",
        fresh,
        "--parent",
        root,
        "--cn",
        "X",
        "--type",
        "ec-p256",
        "--permit",
        "URI:x",
      ],
      /name constraint 'URI:x' is not DNS:, IP: or DN:/,
    ],
    [
      ["ca", "intermediate", "--dir", fresh, "--parent", fresh, "--cn", "X", "--type", "ec-p256"],
      /fresh is not a CA directory/,
    ],
  ];
  const before = await snapshot(dir);
  for (const [args, why] of cases) {
    const result = await cli(args);
    assert.notEqual(result.exitCode, 0, result.output);
    assert.match(result.stderr, why, args.join(" "));
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.deepEqual(await snapshot(dir), before, args.join(" "));
  }
  assert.equal(await exists(fresh), false);
});

test("a CA refuses to issue below it what its own name constraints forbid, and changes nothing", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  const limited = join(dir, "limited");
  await cliOk(["ca", "init", "--dir", root, "--cn", "Constraint Root", "--type", "ec-p256"]);
  await cliOk(
    intermediateArgs(limited, root, "Example Issuing CA", [
      "--path-len",
      "1",
      "--permit",
      "DN:O=Example,DNS:example.com",
      "--exclude",
      "DNS:secret.example.com",
    ]),
  );
  // A sub-CA whose subject is not under O=Example: refused, and its directory never appears.
  const sub = join(dir, "sub");
  await refusedUnchanged(
    limited,
    intermediateArgs(sub, limited, "Sub"),
    /not issued: .*CN=Sub.* outside the permitted subtrees .*Example Issuing CA/,
  );
  assert.equal(await exists(sub), false);
  // A leaf in the excluded subtree: refused, nothing written.
  const out = join(dir, "leaf");
  await refusedUnchanged(
    limited,
    issueServerArgs(limited, "secret.example.com", out),
    /not issued: .*secret\.example\.com is in the excluded subtree/,
    out,
  );
});
