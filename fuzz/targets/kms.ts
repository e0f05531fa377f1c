/**
 * The KMS server's unauthenticated surface: request headers through authentication against a
 * real instance store (a real access point made by the admin code), then the protobuf body of
 * authenticated requests; and every request message decoder on its own.
 */
import { sign } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { readPfx } from "../../src/keys/pkcs12/index.ts";
import { adminCreateAccessPoint } from "../../src/kms/admin.ts";
import {
  AdvanceBlobError,
  advanceHeader,
  encodeAdvanceBlob,
  parseAdvanceBlob,
} from "../../src/kms/advance_blob.ts";
import {
  ACCESS_KEY_HEADER,
  API_VERSION,
  contentSha256,
  formatHttpDate,
  PROTOBUF_CONTENT_TYPE,
  SIGNATURE_METHOD,
  stringToSign,
} from "../../src/kms/auth.ts";
import { KmsServiceError } from "../../src/kms/errors.ts";
import { KmsInstance } from "../../src/kms/instance.ts";
import { OPERATIONS, type Operation } from "../../src/kms/policy.ts";
import { decodeMessage, encodeMessage, type KmsMessageName, ProtoDecodeError } from "../../src/kms/proto.ts";
import { authenticate } from "../../src/kms/request_auth.ts";
import { type FuzzTarget, simpleTarget, typedErrors } from "../target.ts";

const kmsExpected = typedErrors(KmsServiceError, ProtoDecodeError);

const requestName = (op: Operation): KmsMessageName => `${op}Request` as KmsMessageName;

/** Field values for sample messages (each message takes the fields it has). */
const SAMPLE_FIELDS = {
  KeyId: "key-0123456789abcdef",
  Algorithm: "RSA_PSS_SHA_256",
  Digest: Buffer.alloc(32, 1),
  Plaintext: Buffer.from("secret"),
  NumberOfBytes: 32,
  Length: 16,
  RequestId: "3f0c1c1e-0000-4000-8000-000000000000",
  ErrorCode: "InvalidParam",
};

/** A small valid body per operation. */
function sampleBody(op: Operation): Buffer {
  return encodeMessage(requestName(op), SAMPLE_FIELDS as never);
}

/** Request as fuzz input: `METHOD\nname:value\n...\n\nbody` (latin1, so any byte survives). */
function serialize(method: string, headers: Record<string, string>, body: Buffer): Buffer {
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}:${v}\n`)
    .join("");
  return Buffer.concat([Buffer.from(`${method}\n${head}\n`, "latin1"), body]);
}

function parse(input: Buffer): { method: string; headers: Record<string, string>; body: Buffer } {
  const split = input.indexOf("\n\n", 0, "latin1");
  const headText = (split < 0 ? input : input.subarray(0, split)).toString("latin1");
  const body = split < 0 ? Buffer.alloc(0) : input.subarray(split + 2);
  const [method = "", ...lines] = headText.split("\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).toLowerCase();
    // As Node's parser and the server's singleHeaders: first value wins, trimmed.
    if (!Object.hasOwn(headers, name)) headers[name] = line.slice(colon + 1).trim();
  }
  return { method, headers, body };
}

interface Signer {
  id: string;
  sign(op: string, body: Buffer, date: string, extra: Record<string, string>): Buffer;
}

async function accessPoint(instance: KmsInstance, dir: string): Promise<Signer> {
  const created = await adminCreateAccessPoint(instance, { name: "fuzz", keys: "*", outDir: dir });
  const json = JSON.parse(await readFile(created.clientKeyFile, "utf8")) as { PrivateKeyData: string };
  const password = (await readFile(created.passwordFile, "utf8")).trim();
  const { privateKey } = readPfx(Buffer.from(json.PrivateKeyData, "base64"), password);
  const id = created.record.id;
  return {
    id,
    sign(op, body, date, extra) {
      const headers: Record<string, string> = {
        date,
        "x-kms-apiversion": API_VERSION,
        "x-kms-apiname": op,
        "x-kms-signaturemethod": SIGNATURE_METHOD,
        [ACCESS_KEY_HEADER]: id,
        "content-type": PROTOBUF_CONTENT_TYPE,
        "content-sha256": contentSha256(body),
        ...extra,
      };
      headers.authorization = `Bearer ${sign("sha256", Buffer.from(stringToSign("POST", headers)), privateKey).toString("base64")}`;
      return serialize("POST", headers, body);
    },
  };
}

const request: FuzzTarget = {
  name: "kms-request",
  about: "KMS request headers and signature checked against a real store, then the authenticated body",
  async prepare() {
    const dir = await mkdtemp(path.join(tmpdir(), "hsmkit-fuzz-kms-"));
    const instance = await KmsInstance.open({
      dataDir: path.join(dir, "data"),
      create: true,
      passphrase: "fuzz passphrase",
    });
    const signer = await accessPoint(instance, path.join(dir, "aps"));
    const now = Date.now();
    const date = formatHttpDate(new Date(now));
    // Correctly signed requests with odd bodies and extra x-kms-* headers reach the protobuf decoders.
    const generate = fc
      .record({
        op: fc.constantFrom(...OPERATIONS),
        body: fc.uint8Array({ maxLength: 256 }),
        extra: fc.dictionary(fc.stringMatching(/^x-kms-[a-z]{1,8}$/), fc.string({ maxLength: 20 }), {
          maxKeys: 2,
        }),
      })
      .map(({ op, body, extra }) => signer.sign(op, Buffer.from(body), date, extra));
    return {
      seeds: OPERATIONS.map((op) => signer.sign(op, sampleBody(op), date, {})),
      generate,
      expected: kmsExpected,
      async run(input: Buffer) {
        const req = parse(input);
        const who = await authenticate({ ...req, sourceAddress: "127.0.0.1" }, instance.accessPoints, now);
        decodeMessage(requestName(who.operation), req.body);
      },
      async close() {
        await instance.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
};

/** Every message: requests (what the server decodes) and responses and Error (what the client decodes). */
const MESSAGES: readonly KmsMessageName[] = [
  ...OPERATIONS.flatMap((op) => [requestName(op), `${op}Response` as KmsMessageName]),
  "Error",
];

const proto = simpleTarget({
  name: "kms-proto",
  about: "every KMS protobuf decoder, requests, responses and Error (first byte picks the message)",
  seeds: () =>
    MESSAGES.map((name, i) =>
      Buffer.concat([
        Buffer.from([i]),
        encodeMessage(name, { ...SAMPLE_FIELDS, StatusCode: 400, Value: true } as never),
      ]),
    ),
  expected: kmsExpected,
  run(input) {
    if (input.length === 0) return;
    decodeMessage(MESSAGES[input[0]! % MESSAGES.length]!, input.subarray(1));
  },
});

const advanceBlob = simpleTarget({
  name: "kms-advance-blob",
  about: "the Advance ciphertext blob parser an access point reaches with AdvanceDecrypt",
  seeds: () => [
    encodeAdvanceBlob(
      advanceHeader("AES_GCM", SAMPLE_FIELDS.KeyId, "00".repeat(16)),
      Buffer.alloc(12, 1),
      Buffer.alloc(40, 2),
    ),
    encodeAdvanceBlob(
      advanceHeader("RSAES_OAEP_SHA_256", SAMPLE_FIELDS.KeyId, "11".repeat(16)),
      Buffer.alloc(0),
      Buffer.alloc(256, 3),
    ),
  ],
  expected: typedErrors(AdvanceBlobError),
  run(input) {
    parseAdvanceBlob(input);
  },
});

/** KMS targets. */
export const KMS_TARGETS: readonly FuzzTarget[] = [request, proto, advanceBlob];
