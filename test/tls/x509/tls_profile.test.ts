/**
 * The TLS stack validates peers under the strict profile by default, and under RFC 5280
 * alone with `profile: "rfc5280"`: a private PKI's leaves without extendedKeyUsage are
 * refused (with the alert the peer sees) by the client facing `openssl s_server` and by the
 * server facing `openssl s_client`, and accepted once the profile is relaxed.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openKey } from "../../../src/keys/index.ts";
import { connect } from "../../../src/tls/client.ts";
import type { ValidationProfile } from "../../../src/tls/x509/verify.ts";
import { hsmkit } from "../../helpers/hsmkit.ts";
import { curl, opensslClient, opensslServer } from "../../helpers/peers.ts";
import { waitUntil } from "../../helpers/process.ts";
import { startServe } from "../../https/serve_fixture.ts";
import { startEchoServer } from "../../interop/server_fixture.ts";
import { CA_EXT, type Issued, TestPki } from "./pki.ts";

/** Leaf extensions of a private PKI that issues no extendedKeyUsage. */
const NO_EKU_LEAF = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "subjectAltName=DNS:localhost,IP:127.0.0.1",
  "subjectKeyIdentifier=hash",
  "authorityKeyIdentifier=keyid:always",
];

/** Where the test peers listen, and the name their certificates carry. */
const LOCALHOST = { host: "127.0.0.1", servername: "localhost" };

/** Connects to 127.0.0.1:port as hsmkit's client; resolves "connected" or the error message. */
function handshake(port: number, ca: string, profile?: ValidationProfile): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ ...LOCALHOST, port, ca, ...(profile ? { profile } : {}) });
    sock.on("secureConnect", () => {
      sock.destroy();
      resolve("connected");
    });
    sock.on("error", (err: Error) => resolve(err.message));
  });
}

describe("TLS peers are validated under the strict profile unless profile rfc5280 is chosen", () => {
  let pki: TestPki;
  let root: Issued;
  let leaf: Issued;

  before(async () => {
    pki = await TestPki.create();
    root = await pki.make("root", { subject: "/CN=TLS Profile Root", ext: CA_EXT });
    leaf = await pki.make("leaf", { subject: "/CN=localhost", issuer: root, ext: NO_EKU_LEAF });
  });

  after(async () => {
    await pki.cleanup();
  });

  it("client: a server certificate without EKU is refused by default (s_server gets unsupported_certificate), accepted under rfc5280", async () => {
    const peer = await opensslServer({ cert: leaf.certPath, key: leaf.keyPath, tls: "1.2" });
    try {
      assert.match(
        await handshake(peer.port, root.pem),
        /certificate 'CN=localhost' has no extendedKeyUsage; the strict profile needs serverAuth or clientAuth/,
      );
      // s_server's log reaches us through a pipe, a moment after the client gave up.
      const alerted = await waitUntil(() => /alert unsupported certificate/.test(peer.output()), 10_000);
      assert.ok(alerted, peer.output());
      assert.equal(await handshake(peer.port, root.pem, "rfc5280"), "connected");
    } finally {
      await peer.stop();
    }
  });

  it("server: a client certificate without EKU is refused by default (s_client gets unsupported_certificate), accepted under rfc5280", async () => {
    const key = await openKey(leaf.keyPath);
    const common = {
      cert: leaf.pem,
      key,
      clientCa: root.pem,
      maxVersion: "1.2" as const,
      profile: undefined,
    };
    const strict = await startEchoServer(common);
    const relaxed = await startEchoServer({ ...common, profile: "rfc5280" });
    try {
      const clientArgs = ["-cert", leaf.certPath, "-key", leaf.keyPath, "-CAfile", root.certPath];
      const refused = await opensslClient({ port: strict.port, args: clientArgs, input: "" });
      assert.match(refused.output, /alert unsupported certificate/);
      assert.equal(strict.accepted.length, 0);
      assert.match(strict.failures.join("\n"), /certificate 'CN=localhost' has no extendedKeyUsage/);
      const accepted = await opensslClient({ port: relaxed.port, args: clientArgs, input: "" });
      assert.equal(accepted.exitCode, 0, accepted.output);
      assert.equal(relaxed.accepted.length, 1);
    } finally {
      await strict.close();
      await relaxed.close();
      await key.close();
    }
  });

  it("CLI: hsmkit curl and hsmkit serve refuse such leaves by default and take --profile rfc5280", async () => {
    const peer = await opensslServer({ cert: leaf.certPath, key: leaf.keyPath, tls: "1.2", www: true });
    try {
      const url = `https://localhost:${peer.port}/`;
      const refused = await hsmkit(["curl", url, "--cacert", root.certPath]);
      assert.equal(refused.exitCode, 60, refused.output);
      assert.match(refused.stderr, /no extendedKeyUsage/);
      const relaxed = await hsmkit(["curl", url, "--cacert", root.certPath, "--profile", "rfc5280"]);
      assert.equal(relaxed.exitCode, 0, relaxed.output);
      const bad = await hsmkit(["curl", url, "--profile", "lenient"]);
      assert.notEqual(bad.exitCode, 0);
      assert.match(bad.stderr, /lenient/);
    } finally {
      await peer.stop();
    }
    const site = await mkdtemp(join(tmpdir(), "hsmkit-profile-site-"));
    await writeFile(join(site, "index.html"), "ok\n");
    const serve = (profile: string[]) =>
      startServe([
        ...["--cert", leaf.certPath, "--key", leaf.keyPath, "--client-ca", root.certPath],
        ...["--root", site, ...profile],
      ]);
    for (const [profile, ok] of [
      [[], false],
      [["--profile", "rfc5280"], true],
    ] as const) {
      const server = await serve([...profile]);
      try {
        const r = await curl(`https://localhost:${server.port}/`, {
          cacert: root.certPath,
          cert: leaf.certPath,
          key: leaf.keyPath,
          args: ["-o", "/dev/null", "-w", "%{http_code}"],
        });
        if (ok) assert.equal(`${r.exitCode} ${r.stdout}`, "0 200", r.output);
        else assert.notEqual(r.exitCode, 0, `strict serve accepted a client leaf without EKU: ${r.output}`);
      } finally {
        await server.stop();
      }
    }
    await rm(site, { recursive: true, force: true });
  });
});
