/**
 * Shared set-up for KMS tests: a real instance in a temp directory, a real HTTPS server on
 * 127.0.0.1, access points with client key files on disk, and raw protocol requests for tests
 * that must craft what the SDK would never send.
 */
import assert from "node:assert/strict";
import { type KeyObject, sign } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { adminCreateAccessPoint } from "../../src/kms/admin.ts";
import {
  ACCESS_KEY_HEADER,
  API_VERSION,
  contentSha256,
  formatHttpDate,
  SIGNATURE_METHOD,
  stringToSign,
} from "../../src/kms/auth.ts";
import { KmsClient, type KmsClientConfig, KmsRequestError, loadClientKey } from "../../src/kms/client.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { decodeMessage } from "../../src/kms/proto.ts";
import { KmsServer, type KmsServerOptions } from "../../src/kms/server.ts";

/** A running KMS for one test file. */
export interface KmsFixture {
  readonly dir: string;
  readonly instance: KmsInstance;
  readonly server: KmsServer;
  /** Creates an access point and returns a client for it (closed with the fixture). */
  client(
    keys?: string,
    extra?: { operations?: string; sourceIps?: string; secrets?: string },
    config?: Partial<KmsClientConfig>,
  ): Promise<ApClient>;
  /** Stops everything and removes the directory. */
  close(): Promise<void>;
}

/** A client plus the files that configure it. */
export interface ApClient {
  readonly kms: KmsClient;
  readonly id: string;
  readonly clientKeyFile: string;
  readonly passwordFile: string;
  readonly config: KmsClientConfig;
}

/** The passphrase the fixtures use. */
export const TEST_PASSPHRASE = "correct horse battery staple";

let apCounter = 0;

/** Starts an instance and its server; registers cleanup on `t` when given. */
export async function startKms(
  t?: TestContext,
  serverOptions: Partial<KmsServerOptions> = {},
): Promise<KmsFixture> {
  const dir = await mkdtemp(join(tmpdir(), "hsmkit-kms-"));
  const instance = await KmsInstance.open({
    dataDir: join(dir, "data"),
    create: true,
    passphrase: TEST_PASSPHRASE,
  });
  const server = await KmsServer.start({ instance, ...serverOptions });
  const clients: KmsClient[] = [];
  let closed = false;
  const fixture: KmsFixture = {
    dir,
    instance,
    server,
    async client(keys = "*", extra = {}, config = {}) {
      const created = await adminCreateAccessPoint(instance, {
        name: `ap${++apCounter}`,
        keys,
        outDir: join(dir, "aps"),
        ...(extra.operations !== undefined ? { operations: extra.operations } : {}),
        ...(extra.sourceIps !== undefined ? { sourceIps: extra.sourceIps } : {}),
        ...(extra.secrets !== undefined ? { secrets: extra.secrets } : {}),
      });
      const cfg: KmsClientConfig = {
        endpoint: server.endpoint,
        clientKeyFile: created.clientKeyFile,
        passwordFile: created.passwordFile,
        caFilePath: instance.caPath,
        ...config,
      };
      const kms = new KmsClient(cfg);
      clients.push(kms);
      return {
        kms,
        id: created.record.id,
        clientKeyFile: created.clientKeyFile,
        passwordFile: created.passwordFile,
        config: cfg,
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const c of clients) c.close();
      await server.close();
      await instance.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  t?.after(() => fixture.close());
  return fixture;
}

/** What a raw request got back. */
export interface RawReply {
  readonly status: number;
  readonly body: Buffer;
  /** The protobuf Error's code, when the reply is an error. */
  readonly code: string | undefined;
}

/** Sends a hand-made request (headers exactly as given) and decodes an Error reply. */
export function rawRequest(
  endpoint: string,
  ca: string,
  headers: Record<string, string>,
  body: Buffer,
  path = "/",
): Promise<RawReply> {
  const [host, port] = endpoint.split(":");
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port: Number(port), method: "POST", path, headers, ca, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const data = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          const code = status === 200 ? undefined : decodeMessage("Error", data).ErrorCode;
          resolve({ status, body: data, code });
        });
      },
    );
    req.on("error", reject);
    req.setTimeout(20_000, () => req.destroy(new Error("raw request timed out")));
    req.end(body);
  });
}

/** Asserts that a client call is refused by the server with `code` (and a request id). */
export async function refused(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof KmsRequestError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.requestId, /^[0-9a-f-]{36}$/);
    return true;
  });
}

/**
 * Protocol headers for a hand-made body, signed with the access point's key as an SDK would;
 * `overrides` replace headers before signing (a skewed date, a wrong hash, another id);
 * `signWith` signs with another private key than the access point's.
 */
export function signedHeaders(
  config: KmsClientConfig,
  apiName: string,
  body: Buffer,
  overrides: Record<string, string> = {},
  signWith?: KeyObject,
): Record<string, string> {
  const { accessKeyId, privateKey: own } = loadClientKey(config);
  const privateKey = signWith ?? own;
  const headers: Record<string, string> = {
    date: formatHttpDate(new Date()),
    "x-kms-apiversion": API_VERSION,
    "x-kms-apiname": apiName,
    "x-kms-signaturemethod": SIGNATURE_METHOD,
    [ACCESS_KEY_HEADER]: accessKeyId,
    "content-type": "application/x-protobuf",
    "content-sha256": contentSha256(body),
    ...overrides,
  };
  const signature = sign("sha256", Buffer.from(stringToSign("POST", headers)), privateKey);
  return { ...headers, authorization: `Bearer ${signature.toString("base64")}` };
}
