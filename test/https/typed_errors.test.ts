/**
 * Library errors name API options and carry their type; the CLI tells the same errors with its
 * flags and picks exit codes by type, never by message text.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { curlFailure } from "../../src/cli/curl.ts";
import { describeError, flagName, messageWithFlags } from "../../src/cli/errors.ts";
import { ConfigError, HsmkitError, TimeoutError } from "../../src/errors.ts";
import { curl } from "../../src/https/curl.ts";
import { parseUpstream } from "../../src/https/proxy.ts";
import { startServe } from "../../src/https/serve.ts";
import { openRoot } from "../../src/https/static.ts";
import { openKey } from "../../src/keys/index.ts";
import { initCa } from "../../src/pki/ca_init.ts";
import { PkiError } from "../../src/pki/errors.ts";
import { TlsError } from "../../src/tls/alert.ts";
import { type ConnectOptions, connect } from "../../src/tls/client.ts";
import type { ProtocolVersion } from "../../src/tls/constants.ts";
import { createServer, type TlsServerOptions } from "../../src/tls/server.ts";
import { opensslServer, type Peer } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { tempDir } from "../pki/helpers.ts";

let pki: Pki;
let silent: Peer | undefined;
let demanding: Peer | undefined;

before(async () => {
  pki = await makePki();
});
after(async () => {
  await silent?.stop();
  await demanding?.stop();
});

/** What `fn` throws (undefined when it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** A ConfigError naming `option`, whose library message names no flag. */
function configError(option: string, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.option, option);
    assert.match(err.message, message);
    assert.doesNotMatch(err.message, /--/);
    return true;
  };
}

test("https options: ConfigErrors name the API option; the CLI tells the flag", async () => {
  const both = await startServe({
    tls: { cert: "", key: undefined as never },
    host: "127.0.0.1",
    port: 0,
    root: "/",
    upstream: "http://127.0.0.1:1",
    log: () => {},
    warn: () => {},
  }).catch((err: unknown) => err);
  configError("root", /^give exactly one of 'root' or 'upstream'$/)(both);
  assert.deepEqual((both as ConfigError).options, ["root", "upstream"]);
  assert.equal(describeError(both), "give exactly one of --root DIR or --upstream http://HOST:PORT");

  assert.throws(
    () => parseUpstream("ftp://x/"),
    configError("upstream", /'upstream' must be an http:\/\/ URL/),
  );
  assert.throws(
    () => parseUpstream("not a url"),
    configError("upstream", /'upstream' 'not a url' is not a URL/),
  );
  await assert.rejects(openRoot("/nonexistent/hsmkit"), configError("root", /cannot open 'root'.*ENOENT/));
});

test("TLS options: connect() and createServer() throw ConfigErrors naming the option; the CLI tells the flag", async () => {
  const key = await openKey(pki.server.keyPath);
  const cert = readFileSync(pki.server.chainPath, "utf8");
  const serverWith = (options: Partial<TlsServerOptions>) => () => createServer({ cert, key, ...options });
  const client = (options: Partial<ConnectOptions>) => () =>
    connect({ host: "127.0.0.1", port: 9, ...options });
  try {
    assert.throws(
      client({ minVersion: "1.3", maxVersion: "1.2" }),
      configError("minVersion", /^'minVersion' \(TLSv1.3\) is above 'maxVersion' \(TLSv1.2\)$/),
    );
    assert.throws(
      client({ maxVersion: "1.1" }),
      configError("minVersion", /^the default 'minVersion' \(TLSv1.2\) is above 'maxVersion' \(TLSv1.1\)$/),
    );
    for (const bad of ["toString", "__proto__"]) {
      assert.throws(
        client({ minVersion: bad as "1.2" }),
        configError("minVersion", new RegExp(`unknown TLS version '${bad}' in 'minVersion'`)),
      );
    }
    assert.throws(
      serverWith({ maxVersion: 0x0399 as ProtocolVersion }),
      configError("maxVersion", /unknown TLS version 0x0399 in 'maxVersion'/),
    );
    assert.throws(
      serverWith({ maxVersion: "1.4" as "1.3" }),
      configError("maxVersion", /unknown TLS version '1.4' in 'maxVersion'/),
    );
    assert.throws(
      serverWith({ minVersion: 0x0301 }),
      configError("minVersion", /'minVersion' below TLSv1.1 is not supported/),
    );
    assert.throws(
      client({ ciphers: "TLS_NOPE" }),
      configError("ciphers", /unknown cipher suite 'TLS_NOPE' in 'ciphers'/),
    );
    assert.throws(serverWith({ ciphers: "," }), configError("ciphers", /'ciphers' names no cipher suite/));
    assert.throws(
      serverWith({ ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256" }),
      configError("ciphers", /none of the suites in 'ciphers' can be served with an rsa key/),
    );
    assert.throws(serverWith({ requestCert: true }), configError("clientCa", /CAs to trust in 'clientCa'/));
    assert.throws(
      client({ key }),
      configError("key", /a client 'key' was given without its certificate \('cert'\)/),
    );
    assert.throws(
      client({ cert }),
      configError("cert", /a client certificate \('cert'\) was given without its 'key'/),
    );
    assert.throws(
      client({ cert: "no pem here", key }),
      configError("cert", /'cert' holds no CERTIFICATE block/),
    );
    // PEM with no certificate in it, for each option that takes certificates.
    assert.throws(client({ ca: "junk" }), configError("ca", /^'ca': no CERTIFICATE block in PEM input$/));
    assert.throws(
      serverWith({ clientCa: "junk" }),
      configError("clientCa", /^'clientCa': no CERTIFICATE block in PEM input$/),
    );
    assert.throws(serverWith({ cert: "junk" }), configError("cert", /^'cert': no CERTIFICATE block/));
    assert.equal(
      describeError(thrown(client({ ca: "junk" }))),
      "--cacert: no CERTIFICATE block in PEM input",
    );
    const other = await openKey(pki.client.keyPath);
    try {
      const mismatch = thrown(serverWith({ key: other }));
      configError("key", /the 'key' \(.*\) does not match the certificate .* in 'cert'/)(mismatch);
      assert.match(
        messageWithFlags(mismatch),
        /^the --key \(.*\) does not match the certificate .* in --cert$/,
      );
    } finally {
      await other.close();
    }
    const range = thrown(client({ minVersion: "1.3", maxVersion: "1.2" }));
    assert.equal(describeError(range), "--tls-min (TLSv1.3) is above --tls-max (TLSv1.2)");
  } finally {
    await key.close();
  }
});

test("CA options: a PkiError of kind bad-input naming pathLen; the CLI says --path-len", async (t) => {
  const dir = await tempDir(t);
  const err = await initCa({ dir: `${dir}/ca`, cn: "X", type: "ec-p256", pathLen: 17 }).catch(
    (e: unknown) => e,
  );
  assert.ok(err instanceof PkiError && err.kind === "bad-input", String(err));
  assert.deepEqual(err.options, ["pathLen"]);
  assert.equal(err.message, "'pathLen' must be a whole number from 0 to 16, not 17");
  assert.equal(err.describeWith(flagName), "--path-len must be a whole number from 0 to 16, not 17");
  const pss = await initCa({ dir: `${dir}/ca`, cn: "X", type: "ec-p256", pss: true }).catch(
    (e: unknown) => e,
  );
  assert.equal(describeError(pss), "--rsa-pss needs an RSA CA key");
});

// Bounded: before the fix the timeout was never armed and curl waited forever.
test("a silent server: curl rejects with a TimeoutError, which the CLI maps to exit 28 by type", {
  timeout: 30_000,
}, async () => {
  silent = await opensslServer({ cert: pki.server.certPath, key: pki.server.keyPath });
  const sink = new Writable({ write: (_chunk, _enc, done) => done() });
  const err = await curl({
    url: `https://127.0.0.1:${silent.port}/`,
    ca: undefined,
    insecure: true,
    output: sink,
    timeout: 300,
  }).catch((e: unknown) => e);
  assert.ok(err instanceof TimeoutError, String(err));
  assert.equal(err.timeoutMs, 300);
  assert.equal(curlFailure(err).exitCode, 28);
  // The words alone no longer decide the exit code.
  assert.equal(curlFailure(new Error("the upstream timed out")).exitCode, 1);
  assert.ok(err instanceof HsmkitError);
});

for (const version of ["1.2", "1.3"] as const) {
  test(`TLS ${version}: a server that wants a client certificate; the library names cert and key, the CLI --cert and --key`, async () => {
    demanding = await opensslServer({
      cert: pki.server.certPath,
      key: pki.server.keyPath,
      chain: pki.intermediate.certPath,
      caFile: pki.caFile,
      verifyClient: true,
      tls: version,
      www: true,
    });
    const sock = connect({
      host: "127.0.0.1",
      port: demanding.port,
      servername: "localhost",
      ca: readFileSync(pki.caFile),
    });
    const err = await new Promise<unknown>((resolve) => {
      sock.once("error", resolve);
      // TLS 1.3 reports the alert once the client reads after its Finished.
      sock.once("secureConnect", () => sock.write("GET / HTTP/1.0\r\n\r\n"));
      sock.resume();
    });
    sock.destroy();
    await demanding.stop();
    demanding = undefined;
    assert.ok(err instanceof TlsError && err.kind === "peer-alert", String(err));
    assert.deepEqual(err.options, ["cert", "key"]);
    assert.match(err.message, /none was given \(use 'cert' and 'key'\)$/);
    assert.match(messageWithFlags(err), /none was given \(use --cert and --key\)$/);
  });
}
