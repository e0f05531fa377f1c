/**
 * Certificates from hsmkit's own CA (CA keys, server key and client key all in SoftHSM2)
 * are accepted by hsmkit's own TLS server and client, on TLS 1.3 and TLS 1.2, through the
 * same path validation `hsmkit cert verify` uses.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openKey } from "../../src/keys/index.ts";
import type { PrivateKeyHandle } from "../../src/keys/types.ts";
import { connect } from "../../src/tls/client.ts";
import type { TlsSocket } from "../../src/tls/conn.ts";
import { createServer, type TlsServer } from "../../src/tls/server.ts";
import { hsmkit } from "../helpers/hsmkit.ts";
import { createToken, softHsm } from "../helpers/softhsm.ts";

softHsm();

const dir = mkdtempSync(join(tmpdir(), "hsmkit-ca-tls-"));
let server: TlsServer;
let port: number;
let serverKey: PrivateKeyHandle;
let clientKey: PrivateKeyHandle;
const seen: Array<{ authorized: boolean; cn: string | undefined }> = [];

async function ok(args: string[]): Promise<void> {
  const r = await hsmkit(args);
  assert.equal(r.exitCode, 0, r.output);
}

before(async () => {
  const token = await createToken();
  // What a CA directory keeps names the PIN file, never the PIN.
  const ref = (object: string) => token.uriWithPinSource(object);
  await ok([
    "ca",
    "init",
    "--dir",
    join(dir, "root"),
    "--cn",
    "tls root",
    "--key",
    ref("root"),
    "--type",
    "ec-p384",
  ]);
  await ok([
    "ca",
    "intermediate",
    "--dir",
    join(dir, "inter"),
    "--parent",
    join(dir, "root"),
    "--cn",
    "tls issuing",
    "--key",
    ref("inter"),
    "--type",
    "rsa2048",
  ]);
  await ok([
    "cert",
    "issue",
    "--ca",
    join(dir, "inter"),
    "--profile",
    "server",
    "--cn",
    "localhost",
    "--san",
    "DNS:localhost,IP:127.0.0.1",
    "--key",
    ref("web"),
    "--type",
    "ec-p256",
    "--out",
    join(dir, "web"),
  ]);
  await ok([
    "cert",
    "issue",
    "--ca",
    join(dir, "inter"),
    "--profile",
    "client",
    "--cn",
    "ca-tls-client",
    "--key",
    ref("client"),
    "--type",
    "rsa2048",
    "--out",
    join(dir, "client"),
  ]);
  serverKey = await openKey(ref("web"));
  clientKey = await openKey(ref("client"));
  server = createServer(
    {
      cert: readFileSync(join(dir, "web.pem")),
      key: serverKey,
      clientCa: readFileSync(join(dir, "root", "ca.crt")),
    },
    (sock: TlsSocket) => {
      const cert = sock.getPeerCertificate();
      seen.push({ authorized: sock.authorized, cn: "subject" in cert ? cert.subject.CN : undefined });
      sock.end("welcome");
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  server?.close();
  await serverKey?.close();
  await clientKey?.close();
});

for (const maxVersion of ["1.3", "1.2"] as const) {
  test(`TLS ${maxVersion}: both sides accept the CA's certificates`, async () => {
    const sock = connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: readFileSync(join(dir, "root", "ca.crt"), "utf8"),
      cert: readFileSync(join(dir, "client.pem"), "utf8"),
      key: clientKey,
      maxVersion,
    });
    const reply = await new Promise<string>((resolve, reject) => {
      let text = "";
      sock.on("data", (d: Buffer) => {
        text += d.toString();
      });
      sock.on("end", () => resolve(text));
      sock.on("error", reject);
    });
    assert.equal(reply, "welcome");
    assert.equal(sock.authorized, true);
    assert.equal(sock.getProtocol(), `TLSv${maxVersion}`);
    assert.deepEqual(seen.at(-1), { authorized: true, cn: "ca-tls-client" });
  });
}

test("a client certificate used as a server's is refused by hsmkit's client (bad purpose)", async () => {
  const misuse = createServer(
    { cert: readFileSync(join(dir, "client.pem")), key: clientKey },
    (s: TlsSocket) => s.end(),
  );
  await new Promise<void>((r) => misuse.listen(0, "127.0.0.1", r));
  try {
    const sock = connect({
      host: "127.0.0.1",
      port: (misuse.address() as AddressInfo).port,
      servername: "ca-tls-client",
      ca: readFileSync(join(dir, "root", "ca.crt"), "utf8"),
    });
    const err = await new Promise<Error>((resolve) => {
      sock.on("error", resolve);
      sock.on("secureConnect", () => resolve(new Error("accepted")));
    });
    assert.match(err.message, /serverAuth|purpose|extended key usage/i);
  } finally {
    misuse.close();
  }
});
