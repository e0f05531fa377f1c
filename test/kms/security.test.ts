/**
 * KMS defences against callers who hold an access point or none at all: the IV rule of
 * AES-GCM Encrypt, stalled connections that must not crowd out real clients, and refusals that
 * must not grow the audit log without bound. Everything runs against a real server on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { after, before, describe, it, type TestContext } from "node:test";
import tls from "node:tls";
import { adminCreateKey } from "../../src/kms/admin.ts";
import { ACCESS_KEY_HEADER, API_VERSION, formatHttpDate, SIGNATURE_METHOD } from "../../src/kms/auth.ts";
import { KmsClient, KmsRequestError } from "../../src/kms/client.ts";
import { MAX_REFUSAL_GROUPS } from "../../src/kms/refusals.ts";
import { KmsServer } from "../../src/kms/server.ts";
import { type ApClient, type KmsFixture, rawRequest, signedHeaders, startKms } from "./kms_fixture.ts";

let kms: KmsFixture;
let aesKey: string;
let full: ApClient;

before(async () => {
  kms = await startKms();
  aesKey = (await adminCreateKey(kms.instance, "AES_256", "ENCRYPT/DECRYPT")).id;
  full = await kms.client("key-*");
});
after(() => kms.close());

/** The bytes GCM produced for the plaintext (the blob is header || ciphertext || tag). */
function ciphertextBody(blob: Uint8Array, length: number): Buffer {
  return Buffer.from(blob.subarray(blob.length - 16 - length, blob.length - 16));
}

function xor(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((byte, i) => byte ^ (b[i] ?? 0)));
}

describe("AES-GCM IVs are the KMS's alone", () => {
  it("refuses an Encrypt that names another ciphertext's IV; fresh IVs never repeat the keystream", async () => {
    const secret = Buffer.from("the victim's secret: 4111-1111");
    const known = Buffer.from("attacker-chosen plaintext bytes");
    const victim = await full.kms.encrypt({ keyId: aesKey, plaintext: secret });
    await assert.rejects(
      full.kms.encrypt({ keyId: aesKey, plaintext: known, iv: victim.Iv }),
      (err: unknown) =>
        err instanceof KmsRequestError && err.code === "InvalidParameter" && /Iv/.test(err.message),
    );
    await assert.rejects(
      full.kms.encrypt({ keyId: aesKey, plaintext: known, iv: Buffer.alloc(12) }),
      (err: unknown) => err instanceof KmsRequestError && err.code === "InvalidParameter",
    );
    // Without an IV the request succeeds, under an IV of the KMS's choosing.
    const mine = await full.kms.encrypt({ keyId: aesKey, plaintext: known });
    assert.equal(mine.Iv.length, 12);
    assert.notDeepEqual(Buffer.from(mine.Iv), Buffer.from(victim.Iv));
    const leaked = xor(
      xor(
        ciphertextBody(victim.CiphertextBlob, secret.length),
        ciphertextBody(mine.CiphertextBlob, known.length),
      ),
      known,
    );
    assert.notDeepEqual(leaked, secret, "XOR of the two ciphertexts gives the plaintext XOR away");
    const dataKey = await full.kms.generateDataKey({ keyId: aesKey });
    assert.notDeepEqual(Buffer.from(dataKey.Iv), Buffer.from(victim.Iv));
    const back = await full.kms.decrypt({ ciphertextBlob: victim.CiphertextBlob, iv: victim.Iv });
    assert.deepEqual(Buffer.from(back.Plaintext), secret);
  });
});

/** A TLS connection to the server that sends `head` and then nothing; resolves when it is connected. */
function stalledConnection(
  endpoint: string,
  ca: string,
  head: string,
): Promise<{ socket: tls.TLSSocket; received: () => string; closed: Promise<void> }> {
  const [host, port] = endpoint.split(":");
  return new Promise((resolve, reject) => {
    let received = "";
    const socket = tls.connect({ host, port: Number(port), ca, servername: "localhost" }, () => {
      socket.write(head);
      resolve({ socket, received: () => received, closed });
    });
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.on("data", (d: Buffer) => {
      received += d.toString("latin1");
    });
    socket.once("error", reject);
  });
}

/** Waits until `promise` settles, failing the test instead of hanging if it never does. */
async function within<T>(promise: Promise<T>, what: string, guardMs = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${guardMs} ms`)), guardMs);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

function kmsHead(extra: Record<string, string>, contentLength: number): string {
  const headers: Record<string, string> = {
    host: "localhost",
    date: formatHttpDate(new Date()),
    "x-kms-apiversion": API_VERSION,
    "x-kms-apiname": "GenerateRandom",
    "x-kms-signaturemethod": SIGNATURE_METHOD,
    "content-type": "application/x-protobuf",
    "content-length": String(contentLength),
    ...extra,
  };
  return `POST / HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;
}

/**
 * A server with 5 s read bounds (short enough for a quick test, long enough for the real
 * client's handshake under load), stopped after the test with every socket it lists.
 */
async function shortTimeoutServer(
  t: TestContext,
  options: { maxInflight?: number } = {},
): Promise<{ server: KmsServer; sockets: tls.TLSSocket[]; ca: string }> {
  const server = await KmsServer.start({
    instance: kms.instance,
    ...options,
    headersTimeoutMs: 5000,
    bodyTimeoutMs: 5000,
  });
  const sockets: tls.TLSSocket[] = [];
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await server.close();
  });
  return { server, sockets, ca: await kms.instance.caCertPem() };
}

describe("slow clients", () => {
  it("connections that stall before or after their headers hold no slot and are closed by the server", async (t) => {
    const maxInflight = 2;
    const { server, sockets, ca } = await shortTimeoutServer(t, { maxInflight });
    // Signed headers in, body promised, never sent. "Expect: 100-continue" makes the server say when
    // the request has reached its handler, so the stall is in place before the real client asks.
    const noBody = [];
    for (let i = 0; i < maxInflight * 3; i++) {
      const c = await stalledConnection(
        server.endpoint,
        ca,
        kmsHead(
          { expect: "100-continue", ...signedHeaders(full.config, "GenerateRandom", Buffer.alloc(64)) },
          64,
        ),
      );
      sockets.push(c.socket);
      noBody.push(c);
    }
    for (const c of noBody) {
      await within(
        new Promise<void>((resolve) => {
          const check = () =>
            c.received().includes("100 Continue") ? resolve() : c.socket.once("data", check);
          check();
        }),
        "100 Continue",
      );
    }
    // Half a header block, and a connection that says nothing at all after the handshake.
    const partial = await stalledConnection(server.endpoint, ca, "POST / HTTP/1.1\r\nhost: localhost\r\n");
    const silent = await stalledConnection(server.endpoint, ca, "");
    sockets.push(partial.socket, silent.socket);

    const client = new KmsClient({ ...full.config, endpoint: server.endpoint, maxAttempts: 1 });
    t.after(() => client.close());
    assert.equal((await client.generateRandom(16)).Random.length, 16, "a real client is served meanwhile");

    for (const c of [...noBody, partial, silent])
      await within(c.closed, "server closing a stalled connection");
    assert.ok(
      noBody.every((c) => / 408 /.test(c.received())),
      "stalled bodies are told 408 Request Timeout",
    );
  });

  it("an unsigned request is refused before its body is read: no stranger makes the server buffer one", async (t) => {
    const { server, sockets, ca } = await shortTimeoutServer(t);
    const forged = {
      ...signedHeaders(full.config, "GenerateRandom", Buffer.alloc(3 << 20)),
      authorization: "Bearer AAAA",
    };
    // Three mebibytes announced, one kibibyte sent: the refusal must come without the rest.
    const c = await stalledConnection(server.endpoint, ca, kmsHead(forged, 3 << 20));
    sockets.push(c.socket);
    c.socket.write(Buffer.alloc(1024));
    await within(c.closed, "the server answering and closing");
    assert.match(c.received(), /^HTTP\/1\.1 401 /);
    assert.ok(c.received().includes("SignatureDoesNotMatch"), c.received());
  });
});

interface AuditSize {
  readonly rows: number;
  readonly bytes: number;
}

async function auditSize(): Promise<AuditSize> {
  const [size] = await kms.instance.store.driver.query<AuditSize>(
    `SELECT COUNT(*) AS rows, COALESCE(SUM(length(actor) + length(source) + length(operation) +
        length(key_id) + length(outcome) + length(request_id) + length(detail)), 0) AS bytes FROM audit`,
  );
  return size as AuditSize;
}

describe("refusals and the audit log", () => {
  it("a flood of unauthenticated requests with huge headers grows the audit log by a bounded amount", async (t) => {
    const server = await KmsServer.start({ instance: kms.instance });
    t.after(() => server.close());
    const ca = await kms.instance.caCertPem();
    const before = await auditSize();
    const huge = "A".repeat(6000);
    const body = Buffer.from([0x08, 0x10]);
    for (let i = 0; i < 40; i++) {
      const reply = await rawRequest(
        server.endpoint,
        ca,
        {
          date: formatHttpDate(new Date()),
          "x-kms-apiversion": API_VERSION,
          "x-kms-apiname": huge,
          "x-kms-signaturemethod": SIGNATURE_METHOD,
          [ACCESS_KEY_HEADER]: `KAAP.${huge}`,
          "content-sha256": "0".repeat(64),
          authorization: "Bearer AAAA",
        },
        body,
      );
      assert.equal(reply.status, 400);
    }
    // Many different well-formed access key ids: groups beyond the cap are counted together.
    for (let i = 0; i < MAX_REFUSAL_GROUPS + 20; i++) {
      const reply = await rawRequest(
        server.endpoint,
        ca,
        {
          date: formatHttpDate(new Date()),
          "x-kms-apiversion": API_VERSION,
          "x-kms-apiname": "Sign",
          "x-kms-signaturemethod": SIGNATURE_METHOD,
          [ACCESS_KEY_HEADER]: `KAAP.00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
          "content-sha256": "0".repeat(64),
          authorization: "Bearer AAAA",
        },
        body,
      );
      assert.equal(reply.status, 401, "unknown access key ids are refused before any body is read");
    }
    await server.close(); // flushes the summaries
    const grown = await auditSize();
    const rows = grown.rows - before.rows;
    assert.ok(rows >= 1, "refusals are recorded");
    assert.ok(
      rows <= MAX_REFUSAL_GROUPS + 2,
      `${rows} audit rows for ${40 + MAX_REFUSAL_GROUPS + 20} refusals`,
    );
    assert.ok(grown.bytes - before.bytes <= rows * 200, `${grown.bytes - before.bytes} bytes of audit text`);
    const summaries = await kms.instance.audit.entries(rows);
    assert.ok(
      summaries.some((e) => e.actor === "(malformed)" && /^40 refused before authentication/.test(e.detail)),
      JSON.stringify(summaries.slice(0, 3)),
    );
    // Made-up access key ids are one group, not one each: they cannot crowd out real ones.
    const unknown = summaries.filter((e) => e.actor === "(unknown access point)");
    assert.equal(unknown.length, 1, JSON.stringify(unknown));
    assert.match(unknown[0]!.detail, new RegExp(`^${MAX_REFUSAL_GROUPS + 20} refused before authentication`));
    assert.deepEqual((await kms.instance.audit.verify()).ok, true);
  });
});
