/**
 * `hsmkit serve` as users run it, with curl, openssl s_client and Node's https client on
 * 127.0.0.1: static files (and every way out of --root refused), the reverse proxy's
 * identity headers (incoming copies stripped), one access log line per request, refusal
 * of clients without a good certificate, a graceful SIGTERM, and one-line errors.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { hsmkit } from "../helpers/hsmkit.ts";
import { waitForOutput } from "../helpers/net.ts";
import { curl, opensslClient } from "../helpers/peers.ts";
import { makePki, type Pki } from "../helpers/pki.ts";
import { type ServeProcess, startServe } from "./serve_fixture.ts";

let pki: Pki;
let dir: string;
let root: string;

before(async () => {
  pki = await makePki();
  dir = await mkdtemp(path.join(os.tmpdir(), "hsmkit-serve-test-"));
  root = path.join(dir, "www");
  await mkdir(path.join(root, "sub"), { recursive: true });
  await writeFile(path.join(root, "index.html"), "<h1>hello from hsmkit</h1>\n");
  await writeFile(path.join(root, "sub", "data.json"), '{"ok":true}\n');
  await writeFile(path.join(root, ".secret"), "hidden\n");
  await writeFile(path.join(dir, "outside.txt"), "outside the root\n");
  await symlink(path.join(dir, "outside.txt"), path.join(root, "escape.txt"));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tlsFlags = () => ["--cert", pki.server.chainPath, "--key", pki.server.keyPath];
const mtls = () => ({ cacert: pki.caFile, cert: pki.client.chainPath, key: pki.client.keyPath });

describe("static files with mutual TLS", () => {
  let serve: ServeProcess;
  before(async () => {
    serve = await startServe([...tlsFlags(), "--client-ca", pki.caFile, "--root", root, "--tls-max", "1.2"]);
  });
  after(() => serve.stop());

  test("files are served; every path leading out of the root is refused", async () => {
    const url = (p: string) => `https://localhost:${serve.port}${p}`;
    const get = (p: string, args: string[] = []) =>
      curl(url(p), { ...mtls(), args: ["--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", ...args] });
    const cases: Array<[string, string]> = [
      ["/", "200"],
      ["/index.html", "200"],
      ["/sub/data.json", "200"],
      ["/sub/", "404"],
      ["/nope.txt", "404"],
      ["/../outside.txt", "400"],
      ["/sub/../../outside.txt", "400"],
      ["/%2e%2e/outside.txt", "400"],
      ["/..%2foutside.txt", "400"],
      ["/sub%5c..%5c..%5coutside.txt", "400"],
      ["/index.html%00.txt", "400"],
      ["/.secret", "404"],
      ["/escape.txt", "404"],
      ["/%zz", "400"],
    ];
    const logBefore = serve.accessLog().length;
    for (const [p, status] of cases) {
      const r = await get(p);
      assert.equal(r.stdout, status, `${p}: ${r.output}`);
    }
    const body = await curl(url("/"), mtls());
    assert.equal(body.stdout, "<h1>hello from hsmkit</h1>\n");
    const head = await curl(url("/sub/data.json"), { ...mtls(), args: ["-I"] });
    assert.match(head.stdout, /content-type: application\/json/i);
    assert.match(head.stdout, /content-length: 12/i);
    const post = await get("/", ["-X", "POST", "-d", "x"]);
    assert.equal(post.stdout, "405");

    // One access log line per request, with the status and the verified client.
    const expected = cases.length + 3;
    for (let i = 0; i < 100 && serve.accessLog().length - logBefore < expected; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const lines = serve.accessLog().slice(logBefore);
    assert.equal(lines.length, cases.length + 3, lines.join("\n"));
    assert.match(
      lines[0]!,
      /"GET \/ HTTP\/1\.1" 200 .* TLSv1\.2 ECDHE-RSA-AES128-GCM-SHA256 verify=SUCCESS subject="CN=hsmkit-test-client-rsa,O=hsmkit tests"/,
    );
    assert.match(lines.at(-1)!, /"POST \/ HTTP\/1\.1" 405/);
  });

  test("clients without a certificate, or with one from another CA, are refused; others still served", async () => {
    const none = await curl(`https://localhost:${serve.port}/`, { cacert: pki.caFile });
    assert.equal(none.exitCode, 35, none.output);
    const other = await curl(`https://localhost:${serve.port}/`, {
      cacert: pki.caFile,
      cert: pki.otherClient.chainPath,
      key: pki.otherClient.keyPath,
    });
    assert.notEqual(other.exitCode, 0, other.output);
    assert.match(other.stderr, /unknown ca/);
    // The server logs a moment after the client has seen the alert.
    await waitForOutput(serve.proc, /TLS handshake failed: client sent no certificate/, 5000);
    await waitForOutput(serve.proc, /TLS handshake failed: client certificate refused/, 5000);
    const ok = await curl(`https://localhost:${serve.port}/`, mtls());
    assert.equal(ok.exitCode, 0, ok.output);
  });

  test("Node's https client with a client certificate, several requests on one connection", async () => {
    const agent = new https.Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: pki.root.certPem,
      cert: pki.client.chainPem,
      key: pki.client.keyPem,
    });
    try {
      const sockets = new Set<unknown>();
      for (let i = 0; i < 3; i++) {
        const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = https.get(
            { host: "localhost", port: serve.port, path: "/sub/data.json", agent },
            (res) => {
              sockets.add(res.socket);
              let text = "";
              res.on("data", (d: Buffer) => {
                text += d;
              });
              res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
            },
          );
          req.on("error", reject);
        });
        assert.equal(status, 200);
        assert.equal(body, '{"ok":true}\n');
      }
      assert.equal(sockets.size, 1, "keep-alive reused the connection");
    } finally {
      agent.destroy();
    }
  });
});

describe("reverse proxy", () => {
  let upstream: Server;
  let upstreamPort: number;
  const seen: Array<{ headers: IncomingHttpHeaders; raw: string[]; body: string; url: string }> = [];
  before(async () => {
    upstream = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d;
      });
      req.on("end", () => {
        seen.push({ headers: req.headers, raw: req.rawHeaders, body, url: req.url ?? "" });
        const reply = () => {
          res.setHeader("X-Upstream", "yes");
          res.setHeader("Set-Cookie", ["a=1", "b=2"]);
          res.writeHead(req.url === "/missing" ? 404 : 200, { "Content-Type": "text/plain" });
          res.end(`upstream saw ${req.method} ${req.url}`);
        };
        if (req.url === "/slow") setTimeout(reply, 1500);
        else reply();
      });
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    upstreamPort = (upstream.address() as { port: number }).port;
  });
  after(() => new Promise<void>((r) => upstream.close(() => r())));

  test("X-Client-Subject and X-Client-Verify come from the TLS session; forged copies never reach the upstream", async () => {
    const serve = await startServe([
      ...tlsFlags(),
      "--client-ca",
      pki.caFile,
      "--upstream",
      `http://127.0.0.1:${upstreamPort}`,
    ]);
    try {
      const r = await curl(`https://localhost:${serve.port}/api/items?x=1`, {
        ...mtls(),
        args: [
          "-i",
          "-d",
          "payload",
          "-H",
          "X-Client-Subject: CN=admin",
          "-H",
          "x-client-verify: SUCCESS-forged",
          "-H",
          "X_Client_Subject: CN=admin-underscore",
          "-H",
          "Connection: keep-alive, X-Drop-Me",
          "-H",
          "X-Drop-Me: 1",
          "-H",
          "X-Keep-Me: 2",
        ],
      });
      assert.equal(r.exitCode, 0, r.output);
      assert.match(r.stdout, /^HTTP\/1\.1 200 OK/);
      assert.match(r.stdout, /x-upstream: yes/i);
      assert.equal(r.stdout.match(/set-cookie: [ab]=\d/gi)?.length, 2);
      assert.match(r.stdout, /upstream saw POST \/api\/items\?x=1$/);
      const got = seen.at(-1)!;
      assert.equal(got.body, "payload");
      assert.equal(got.headers["x-client-subject"], "CN=hsmkit-test-client-rsa,O=hsmkit tests");
      assert.equal(got.headers["x-client-verify"], "SUCCESS");
      assert.equal(got.headers["x-keep-me"], "2");
      assert.equal(got.headers["x-drop-me"], undefined);
      assert.equal(got.headers["x-forwarded-proto"], "https");
      assert.equal(got.headers["x-forwarded-for"], "127.0.0.1");
      const names = got.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.equal(names.filter((n) => n === "x-client-subject").length, 1);
      assert.equal(names.filter((n) => n === "x-client-verify").length, 1);
      assert.ok(!names.includes("x_client_subject"));
      assert.ok(!got.raw.some((v) => v.includes("admin")));

      const missing = await curl(`https://localhost:${serve.port}/missing`, {
        ...mtls(),
        args: ["-o", "/dev/null", "-w", "%{http_code}"],
      });
      assert.equal(missing.stdout, "404");
      await waitForOutput(serve.proc, /"POST \/api\/items\?x=1 HTTP\/1\.1" 200/, 5000);
    } finally {
      await serve.stop();
    }
  });

  test("without --client-ca: X-Client-Verify NONE and no subject; an unreachable upstream is 502", async () => {
    const serve = await startServe([...tlsFlags(), "--upstream", `http://127.0.0.1:${upstreamPort}`]);
    try {
      const r = await curl(`https://localhost:${serve.port}/plain`, {
        cacert: pki.caFile,
        args: ["-H", "X-Client-Subject: CN=forged"],
      });
      assert.equal(r.exitCode, 0, r.output);
      const got = seen.at(-1)!;
      assert.equal(got.headers["x-client-verify"], "NONE");
      assert.equal(got.headers["x-client-subject"], undefined);
    } finally {
      await serve.stop();
    }
    const dead = await startServe([...tlsFlags(), "--upstream", "http://127.0.0.1:1"]);
    try {
      const r = await curl(`https://localhost:${dead.port}/`, {
        cacert: pki.caFile,
        args: ["-o", "/dev/null", "-w", "%{http_code}"],
      });
      assert.equal(r.stdout, "502");
    } finally {
      await dead.stop();
    }
  });

  test("SIGTERM: the request in flight completes, then the server exits 0", async () => {
    const serve = await startServe([
      ...tlsFlags(),
      "--client-ca",
      pki.caFile,
      "--upstream",
      `http://127.0.0.1:${upstreamPort}`,
    ]);
    try {
      const count = seen.length;
      const slow = curl(`https://localhost:${serve.port}/slow`, mtls());
      const deadline = Date.now() + 10_000;
      while (seen.length === count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      serve.proc.child.kill("SIGTERM");
      const r = await slow;
      assert.equal(r.exitCode, 0, r.output);
      assert.equal(r.stdout, "upstream saw GET /slow");
      const status = await serve.proc.exited;
      assert.equal(status.exitCode, 0, serve.proc.output());
      assert.match(serve.proc.output(), /SIGTERM: finishing requests in flight/);
      assert.match(serve.proc.output(), /"GET \/slow HTTP\/1\.1" 200/);
    } finally {
      await serve.stop();
    }
  });
});

test("TLS 1.1 with RSA key exchange when asked for (openssl s_client)", async () => {
  const serve = await startServe([
    ...tlsFlags(),
    "--client-ca",
    pki.caFile,
    "--root",
    root,
    "--tls-min",
    "1.1",
    "--ciphers",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA",
  ]);
  try {
    const r = await opensslClient({
      port: serve.port,
      servername: "localhost",
      args: [
        "-CAfile",
        pki.caFile,
        "-cert",
        pki.client.chainPath,
        "-cert_chain",
        pki.client.chainPath,
        "-key",
        pki.client.keyPath,
        "-tls1_1",
        "-cipher",
        "AES128-SHA:@SECLEVEL=0",
        "-ign_eof",
      ],
      input: "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    });
    assert.match(r.output, /Protocol\s*: TLSv1\.1/);
    assert.match(r.output, /Cipher\s*: AES128-SHA$/m);
    assert.match(r.output, /HTTP\/1\.1 200 OK[\s\S]*hello from hsmkit/);
  } finally {
    await serve.stop();
  }
});

describe("one-line errors", () => {
  const cases: Array<[string, () => string[], number, RegExp]> = [
    ["neither --root nor --upstream", () => [...tlsFlags()], 2, /exactly one of --root/],
    [
      "both --root and --upstream",
      () => [...tlsFlags(), "--root", root, "--upstream", "http://127.0.0.1:9"],
      2,
      /exactly one of --root/,
    ],
    ["a bad --listen", () => [...tlsFlags(), "--root", root, "--listen", "localhost"], 2, /bad --listen/],
    [
      "a missing certificate file",
      () => ["--cert", path.join(dir, "none.pem"), "--key", pki.server.keyPath, "--root", root],
      2,
      /cannot read certificate file .*ENOENT/,
    ],
    [
      "a key that does not match the certificate",
      () => ["--cert", pki.server.chainPath, "--key", pki.client.keyPath, "--root", root],
      1,
      /does not match the certificate/,
    ],
    [
      "an unknown cipher suite",
      () => [...tlsFlags(), "--root", root, "--ciphers", "TLS_NOPE"],
      1,
      /unknown cipher suite 'TLS_NOPE'/,
    ],
    [
      "an unknown TLS version",
      () => [...tlsFlags(), "--root", root, "--tls-min", "1.0"],
      2,
      /unknown TLS version '1.0'/,
    ],
    [
      "a missing root directory",
      () => [...tlsFlags(), "--root", path.join(dir, "nope")],
      1,
      /cannot open --root .*ENOENT/,
    ],
    [
      "an https upstream",
      () => [...tlsFlags(), "--upstream", "https://127.0.0.1:9"],
      1,
      /--upstream must be an http:\/\/ URL/,
    ],
    [
      "a missing key file",
      () => ["--cert", pki.server.chainPath, "--key", path.join(dir, "none.key"), "--root", root],
      1,
      /none\.key/,
    ],
  ];
  for (const [name, args, code, message] of cases) {
    test(name, async () => {
      const r = await hsmkit(
        ["serve", ...args(), ...(args().includes("--listen") ? [] : ["--listen", "127.0.0.1:0"])],
        { timeoutMs: 30_000 },
      );
      assert.equal(r.exitCode, code, r.output);
      const lines = r.stderr.trim().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^hsmkit: /);
      assert.match(lines[0]!, message);
      assert.equal(r.stdout, "");
    });
  }

  test("an address in use", async () => {
    const serve = await startServe([...tlsFlags(), "--root", root]);
    try {
      const r = await hsmkit(["serve", ...tlsFlags(), "--root", root, "--listen", `127.0.0.1:${serve.port}`]);
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr.trim(), /^hsmkit: cannot listen on 127\.0\.0\.1:\d+: address in use$/);
    } finally {
      await serve.stop();
    }
  });
});
