/**
 * `hsmkit cert verify`: the TLS stack's path validation as a command. It accepts the
 * chains hsmkit's CA issues and refuses, each with its reason and exit status 1, the bad
 * ones the issue lists. The bad certificates are made with the openssl CLI where hsmkit's
 * CA itself refuses to make them, and OpenSSL's own verdict is checked alongside.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { RunResult } from "../helpers/process.ts";
import {
  assertOneLineError,
  cli,
  cliOk,
  intermediateArgs,
  issueServerArgs,
  openssl,
  refusedUnchanged,
  snapshot,
  tempDir,
} from "./helpers.ts";

/** Asserts `cert verify` refused with exit 1 and a reason line carrying `code`. */
function assertRefused(result: RunResult, code: string, reason: RegExp): void {
  assert.equal(result.exitCode, 1, result.output);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 1, result.stdout);
  assert.match(lines[0] ?? "", new RegExp(`\\(${code}\\)$`));
  assert.match(lines[0] ?? "", reason);
  assert.equal(result.stderr, "");
}

/** A key and certificate made by openssl x509 -req, signed by caCrt/caKey. */
async function opensslCert(
  dir: string,
  name: string,
  options: { subj: string; caCrt: string; caKey: string; digest?: string; ext?: string; days?: number },
): Promise<string> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const crt = join(dir, `${name}.crt`);
  const req = await openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    key,
    "-subj",
    options.subj,
    "-out",
    csr,
  ]);
  assert.equal(req.exitCode, 0, req.output);
  const args = [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    options.caCrt,
    "-CAkey",
    options.caKey,
    "-set_serial",
    `0x${randomBytes(12).toString("hex")}`,
    "-days",
    String(options.days ?? 30),
    `-${options.digest ?? "sha256"}`,
    "-out",
    crt,
  ];
  if (options.ext) {
    const extFile = join(dir, `${name}.ext`);
    await writeFile(extFile, `[v3]\n${options.ext}\n`);
    args.push("-extfile", extFile, "-extensions", "v3");
  }
  const signed = await openssl(args);
  assert.equal(signed.exitCode, 0, signed.output);
  return crt;
}

const LEAF_EXT = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "extendedKeyUsage=serverAuth",
  "subjectAltName=DNS:localhost",
  "subjectKeyIdentifier=hash",
  "authorityKeyIdentifier=keyid",
].join("\n");

const CA_EXT = [
  "basicConstraints=critical,CA:TRUE",
  "keyUsage=critical,keyCertSign,cRLSign",
  "subjectKeyIdentifier=hash",
  "authorityKeyIdentifier=keyid",
].join("\n");

test("cert verify accepts good chains and refuses each bad one with its reason", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  const inter = join(dir, "inter");
  const rootCrt = join(root, "ca.crt");
  await cliOk(["ca", "init", "--dir", root, "--cn", "Verify Root", "--type", "ec-p256", "--path-len", "1"]);
  await cliOk(intermediateArgs(inter, root, "Verify Inter", [], "rsa2048"));
  const issue = (profile: string, cn: string, out: string, extra: string[] = []) =>
    cliOk([
      "cert",
      "issue",
      "--ca",
      inter,
      "--profile",
      profile,
      "--cn",
      cn,
      "--type",
      "ec-p256",
      "--out",
      join(dir, out),
      ...extra,
    ]);
  await issue("server", "localhost", "server", ["--san", "IP:127.0.0.1", "--days", "2"]);
  await issue("client", "alice", "client");
  const verify = (leaf: string, ...args: string[]) =>
    cli(["cert", "verify", leaf, "--cacert", rootCrt, ...args]);
  const server = join(dir, "server.pem");

  // Good chains: the intermediate comes from the leaf file itself, or from --untrusted.
  for (const args of [["--host", "localhost"], ["--ip", "127.0.0.1"], []]) {
    const ok = await verify(server, ...args);
    assert.equal(ok.exitCode, 0, ok.output);
    assert.equal(ok.stdout, "OK\n");
  }
  const leafOnly = join(dir, "server-leaf.pem");
  await writeFile(leafOnly, (await openssl(["x509", "-in", server])).stdout);
  assert.equal(
    (await verify(leafOnly, "--untrusted", join(inter, "ca.crt"), "--host", "localhost")).stdout,
    "OK\n",
  );
  assertRefused(await verify(leafOnly), "untrusted-root", /CN=localhost/);
  assert.equal((await verify(join(dir, "client.pem"), "--purpose", "client")).stdout, "OK\n");

  // Expired: the leaf lives two days; check it four days from now.
  const later = new Date(Date.now() + 4 * 86_400_000).toISOString();
  assertRefused(await verify(server, "--at", later), "expired", /CN=localhost.*expired/);
  // Wrong host.
  assertRefused(
    await verify(server, "--host", "www.example.org"),
    "hostname",
    /not valid for host "www\.example\.org"/,
  );
  // A client certificate used for a server.
  assertRefused(
    await verify(join(dir, "client.pem"), "--purpose", "server"),
    "bad-purpose",
    /CN=alice.*serverAuth/,
  );

  // Path length: under a root with pathlen 0, hsmkit refuses to make a second-level CA...
  const tight = join(dir, "tight");
  await cliOk(["ca", "init", "--dir", tight, "--cn", "Tight Root", "--type", "ec-p256", "--path-len", "0"]);
  const before = await snapshot(tight);
  assertOneLineError(
    await cli([
      "ca",
      "intermediate",
      "--dir",
      join(dir, "never"),
      "--parent",
      tight,
      "--cn",
      "Sub",
      "--type",
      "ec-p256",
    ]),
    /path length 0/,
  );
  assert.deepEqual(await snapshot(tight), before);
  // ...so openssl makes one, and a leaf under it; both verifiers refuse the chain.
  const sub = await opensslCert(dir, "sub", {
    subj: "/CN=Sub CA",
    caCrt: join(tight, "ca.crt"),
    caKey: join(tight, "ca.key"),
    ext: CA_EXT,
  });
  const deep = await opensslCert(dir, "deep", {
    subj: "/CN=localhost",
    caCrt: sub,
    caKey: join(dir, "sub.key"),
    ext: LEAF_EXT,
  });
  assertRefused(
    await cli(["cert", "verify", deep, "--cacert", join(tight, "ca.crt"), "--untrusted", sub]),
    "path-length",
    /CN=Tight Root.*pathLenConstraint/,
  );
  const osslDeep = await openssl(["verify", "-CAfile", join(tight, "ca.crt"), "-untrusted", sub, deep]);
  assert.notEqual(osslDeep.exitCode, 0);
  assert.match(osslDeep.output, /path length constraint exceeded/);

  // Name constraints: an intermediate limited to example.com; a leaf for other.org is refused.
  const limited = join(dir, "limited");
  await cliOk(
    intermediateArgs(limited, root, "Limited Inter", ["--permit", "DNS:example.com,IP:10.0.0.0/8"]),
  );
  await cliOk(issueServerArgs(limited, "www.example.com", join(dir, "inside")));
  // hsmkit will not issue outside the constraints, and leaves the CA directory as it was...
  await refusedUnchanged(
    limited,
    issueServerArgs(limited, "www.other.org", join(dir, "never-outside")),
    /not issued: DNS:www\.other\.org is outside the permitted subtrees.*Limited Inter/,
    join(dir, "never-outside"),
  );
  // ...so openssl makes one; both verifiers refuse it.
  const outside = await opensslCert(dir, "outside", {
    subj: "/CN=www.other.org",
    caCrt: join(limited, "ca.crt"),
    caKey: join(limited, "ca.key"),
    ext: LEAF_EXT.replace("DNS:localhost", "DNS:www.other.org"),
  });
  assert.equal((await verify(join(dir, "inside.pem"), "--host", "www.example.com")).stdout, "OK\n");
  assertRefused(
    await verify(outside, "--untrusted", join(limited, "ca.crt")),
    "name-constraints",
    /www\.other\.org/,
  );
  const osslOutside = await openssl([
    "verify",
    "-CAfile",
    rootCrt,
    "-untrusted",
    join(limited, "ca.crt"),
    outside,
  ]);
  assert.match(osslOutside.output, /permitted subtree violation/);

  // A v1 intermediate (openssl x509 -req without extensions makes one).
  const v1 = await opensslCert(dir, "v1", { subj: "/CN=V1 CA", caCrt: rootCrt, caKey: join(root, "ca.key") });
  assert.match((await openssl(["x509", "-in", v1, "-noout", "-text"])).stdout, /Version: 1 \(0x0\)/);
  // The v1 CA has no key identifier to point at, so this leaf goes without one.
  const underV1 = await opensslCert(dir, "under-v1", {
    subj: "/CN=localhost",
    caCrt: v1,
    caKey: join(dir, "v1.key"),
    ext: LEAF_EXT.replace("authorityKeyIdentifier=keyid", ""),
  });
  assertRefused(await verify(underV1, "--untrusted", v1), "v1-ca", /CN=V1 CA/);

  // A SHA-1-signed leaf under hsmkit's intermediate.
  const sha1 = await opensslCert(dir, "sha1", {
    subj: "/CN=localhost",
    caCrt: join(inter, "ca.crt"),
    caKey: join(inter, "ca.key"),
    digest: "sha1",
    ext: LEAF_EXT,
  });
  assert.match((await openssl(["x509", "-in", sha1, "-noout", "-text"])).stdout, /sha1WithRSAEncryption/);
  assertRefused(
    await verify(sha1, "--untrusted", join(inter, "ca.crt")),
    "weak-signature",
    /sha1WithRSAEncryption/,
  );
  // The same leaf re-signed with SHA-256 passes: the refusal is about the hash alone.
  const sha256 = await opensslCert(dir, "sha256", {
    subj: "/CN=localhost",
    caCrt: join(inter, "ca.crt"),
    caKey: join(inter, "ca.key"),
    ext: LEAF_EXT,
  });
  assert.equal((await verify(sha256, "--untrusted", join(inter, "ca.crt"))).stdout, "OK\n");
});

test("cert verify: unreadable inputs are one-line errors with exit status 2", async (t) => {
  const dir = await tempDir(t);
  await cliOk(["ca", "init", "--dir", join(dir, "ca"), "--cn", "Input Root", "--type", "ec-p256"]);
  const rootCrt = join(dir, "ca", "ca.crt");
  const garbage = join(dir, "garbage.pem");
  await writeFile(garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  const truncated = join(dir, "truncated.pem");
  const pem = (await openssl(["x509", "-in", rootCrt])).stdout;
  await writeFile(truncated, pem.slice(0, pem.length - 200));
  const cases: [string[], RegExp][] = [
    [["cert", "verify", join(dir, "missing.pem"), "--cacert", rootCrt], /missing\.pem.*ENOENT/],
    [["cert", "verify", garbage, "--cacert", rootCrt], /garbage\.pem/],
    [["cert", "verify", truncated, "--cacert", rootCrt], /truncated\.pem/],
    [["cert", "verify", rootCrt, "--cacert", garbage], /garbage\.pem/],
    [
      ["cert", "verify", rootCrt, "--cacert", rootCrt, "--at", "yesterday"],
      /--at 'yesterday' is not an ISO-8601 time/,
    ],
    [["cert", "verify", rootCrt, "--cacert", rootCrt, "--crl", garbage], /cannot use CRL/],
    [["cert", "verify", rootCrt, "--cacert", rootCrt, "--host", "a", "--ip", "127.0.0.1"], /--host or --ip/],
  ];
  for (const [args, pattern] of cases) {
    const result = await cli(args);
    assertOneLineError(result, pattern);
    assert.equal(result.exitCode, 2, result.output);
  }
});
