/**
 * The reverse proxy's X-Client-Subject cannot be forged through the certificate's own name:
 * client certificates whose CNs carry commas, '+', '=', quotes, backslashes, CR/LF, NUL and
 * non-ASCII text go through `hsmkit serve --upstream` with curl as the client, and an RFC 4514
 * parser on the upstream side gets back exactly the attributes the certificate holds.
 */
import "reflect-metadata";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as px from "@peculiar/x509";
import { curl } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { runChecked } from "../helpers/process.ts";
import { startServe } from "./serve_fixture.ts";

px.cryptoProvider.set(webcrypto as Crypto);

/** A subject as @peculiar/x509 JSON: RDNs in DER order, each a map of type to values. */
type JsonName = Array<Record<string, string[]>>;

/** Hostile subjects; each must reach the upstream as exactly these attributes. */
const SUBJECTS: Array<[string, JsonName]> = [
  ["comma then a fake RDN", [{ O: ["hsmkit tests"] }, { CN: ["mallory, O=Admins"] }]],
  ["plus, equals, semicolon, angle brackets", [{ CN: ["a+b=c;d<e>f"] }]],
  ["quote and backslash", [{ CN: ['say "hi" \\, O=Admins\\'] }]],
  ["CR/LF header injection", [{ CN: ["x\r\nX-Client-Verify: SUCCESS\r\nO=Admins"] }]],
  ["NUL", [{ CN: ["admin\u0000.evil"] }]],
  ["non-ASCII", [{ CN: ["ünïcødé 日本 \u{1F600}"] }]],
  ["spaces at both ends and a hash", [{ CN: [" x#y "] }]],
  ["multi-valued RDN", [{ O: ["org"] }, { CN: ["multi"], UID: ["u+1,2"] }]],
];

/** The attribute types the tests use, with their OIDs' DER. */
const OIDS: Readonly<Record<string, string>> = {
  CN: "0603550403",
  O: "060355040a",
  UID: "060a0992268993f22c640101",
};
const TYPES = new Set(Object.keys(OIDS));

/** One DER element (definite length). */
function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len =
    n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

/** Encodes the name by hand, values as UTF8String bytes exactly as given (no library re-parses them). */
function encodeName(name: JsonName): Buffer {
  const rdns = name.map((rdn) => {
    const atvs = Object.entries(rdn).flatMap(([type, values]) =>
      values.map((v) =>
        der(0x30, Buffer.concat([Buffer.from(OIDS[type]!, "hex"), der(0x0c, Buffer.from(v, "utf8"))])),
      ),
    );
    // DER orders a SET's members by their encodings.
    return der(0x31, Buffer.concat(atvs.sort(Buffer.compare)));
  });
  return der(0x30, Buffer.concat(rdns));
}

/** A strict RFC 4514 parser: RDNs as written (last RDN of the DER first), each [type, value] pairs. */
function parseRfc4514(text: string): Array<Array<[string, string]>> {
  const rdns: Array<Array<[string, string]>> = [[]];
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    assert.ok(eq > i, `no type at ${i} in ${text}`);
    const type = text.slice(i, eq);
    assert.ok(TYPES.has(type), `unexpected attribute type '${type}' in ${text}`);
    const bytes: number[] = [];
    i = eq + 1;
    for (; i < text.length && text[i] !== "," && text[i] !== "+"; i++) {
      const c = text[i]!;
      assert.ok(!'";<>'.includes(c), `unescaped '${c}' in ${text}`);
      assert.ok(
        c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) < 0x7f,
        `raw non-ASCII in ${JSON.stringify(text)}`,
      );
      if (c !== "\\") {
        bytes.push(c.charCodeAt(0));
      } else if (/^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
        bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
        i += 2;
      } else {
        assert.ok(i + 1 < text.length, `dangling escape in ${text}`);
        bytes.push(text.charCodeAt(++i));
      }
    }
    rdns.at(-1)!.push([type, Buffer.from(bytes).toString("utf8")]);
    if (text[i] === ",") rdns.push([]);
    i++;
  }
  return rdns;
}

/** What the upstream must see: the JSON name's RDNs reversed, as [type, value] pairs. */
function expected(name: JsonName): Array<Array<[string, string]>> {
  return name
    .map((rdn) =>
      Object.entries(rdn).flatMap(([type, values]) => values.map((v): [string, string] => [type, v])),
    )
    .reverse();
}

let pki: Pki;
let dir: string;
let upstream: Server;
let upstreamPort: number;
const seenSubjects: Array<string | string[] | undefined> = [];

/** Issues a client certificate for `subject` from the test intermediate; returns chain and key paths. */
async function issueHostile(subject: JsonName, n: number): Promise<{ chain: string; key: string }> {
  const alg = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const caKey = await webcrypto.subtle.importKey(
    "pkcs8",
    px.PemConverter.decodeFirst(pki.intermediate.keyPem),
    alg,
    false,
    ["sign"],
  );
  const ca = new px.X509Certificate(pki.intermediate.certPem);
  const ski = ca.getExtension(px.SubjectKeyIdentifierExtension)!.keyId;
  const ecAlg = { name: "ECDSA", namedCurve: "P-256" };
  const keys = await webcrypto.subtle.generateKey(ecAlg, true, ["sign", "verify"]);
  const cert = await px.X509CertificateGenerator.create({
    serialNumber: `01${webcrypto.getRandomValues(new Uint8Array(8)).reduce((s, b) => s + b.toString(16).padStart(2, "0"), "")}`,
    subject: new px.Name(Uint8Array.from(encodeName(subject))),
    issuer: ca.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: alg,
    extensions: [
      new px.BasicConstraintsExtension(false, undefined, true),
      new px.KeyUsagesExtension(px.KeyUsageFlags.digitalSignature, true),
      new px.ExtendedKeyUsageExtension([px.ExtendedKeyUsage.clientAuth]),
      await px.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new px.AuthorityKeyIdentifierExtension(ski),
    ],
  });
  const chain = path.join(dir, `hostile-${n}.pem`);
  const key = path.join(dir, `hostile-${n}.key`);
  await writeFile(chain, `${cert.toString("pem")}\n${pki.intermediate.certPem}`);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  await writeFile(key, px.PemConverter.encode(pkcs8, "PRIVATE KEY"), { mode: 0o600 });
  // The encoded name holds each value's exact UTF-8 bytes, and openssl accepts the chain.
  const nameDer = Buffer.from(cert.subjectName.toArrayBuffer());
  for (const value of Object.values(subject).flatMap((rdn) => Object.values(rdn).flat())) {
    assert.ok(nameDer.includes(Buffer.from(value, "utf8")), `subject holds ${JSON.stringify(value)}`);
  }
  const leaf = path.join(dir, `hostile-${n}.crt`);
  await writeFile(leaf, cert.toString("pem"));
  const untrusted = path.join(dir, "intermediate.pem");
  await writeFile(untrusted, pki.intermediate.certPem);
  const ok = await runChecked("openssl", [
    ...["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", pki.caFile],
    ...["-untrusted", untrusted, leaf],
  ]);
  assert.match(ok.stdout, /: OK$/m);
  return { chain, key };
}

before(async () => {
  pki = await makePki();
  dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-proxy-identity-"));
  upstream = createServer((req, res) => {
    seenSubjects.push(req.headers["x-client-subject"]);
    res.end("ok");
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  upstreamPort = (upstream.address() as { port: number }).port;
});

after(async () => {
  await new Promise<void>((r) => upstream.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

describe("X-Client-Subject with hostile certificate names", () => {
  test("an RFC 4514 parser on the upstream gets back exactly the certificate's name", async () => {
    const serve = await startServe([
      ...["--cert", pki.server.chainPath, "--key", pki.server.keyPath, "--client-ca", pki.caFile],
      ...["--upstream", `http://127.0.0.1:${upstreamPort}`],
    ]);
    try {
      let n = 0;
      for (const [label, subject] of SUBJECTS) {
        const files = await issueHostile(subject, ++n);
        const before = seenSubjects.length;
        const r = await curl(`https://localhost:${serve.port}/`, {
          cacert: pki.caFile,
          cert: files.chain,
          key: files.key,
        });
        assert.equal(r.exitCode, 0, `${label}: ${r.output}`);
        assert.equal(seenSubjects.length, before + 1, label);
        const header = seenSubjects.at(-1);
        assert.equal(typeof header, "string", `${label}: one X-Client-Subject header`);
        assert.deepEqual(parseRfc4514(header as string), expected(subject), `${label}: ${header}`);
      }
      const log = serve.accessLog().join("\n");
      assert.ok(!log.includes("\r"), "the access log carries no raw CR");
    } finally {
      await serve.stop();
    }
  });

  test("the test's parser tells an escaped comma from a forged RDN (the old header's form)", () => {
    assert.deepEqual(parseRfc4514("CN=mallory\\, O\\=Admins,O=x"), [
      [["CN", "mallory, O=Admins"]],
      [["O", "x"]],
    ]);
    assert.deepEqual(parseRfc4514("CN=mallory\\5c,O=Admins"), [[["CN", "mallory\\"]], [["O", "Admins"]]]);
  });
});
