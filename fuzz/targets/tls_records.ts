/**
 * Targets below the handshake: the record reader and every record protection's open (what
 * an unauthenticated peer reaches first), the handshake assembler under any fragmentation,
 * and the server's session-ticket opener (tickets arrive from clients in ClientHello).
 */
import fc from "fast-check";
import { suiteByName } from "../../src/tls/cipher_suites.ts";
import { ContentType, ProtocolVersion } from "../../src/tls/constants.ts";
import { HandshakeAssembler } from "../../src/tls/handshake_io.ts";
import {
  AeadProtection,
  NULL_PROTECTION,
  protectionFor,
  type RecordProtection,
} from "../../src/tls/protection.ts";
import { RecordReader } from "../../src/tls/record.ts";
import { SessionStore } from "../../src/tls/session.ts";
import type { FuzzTarget } from "../target.ts";
import { tlsExpected } from "./tls_shared.ts";

const key32 = Buffer.alloc(32, 0x42);
const macKey48 = Buffer.alloc(48, 0x24);

function tls12(name: string, etm: boolean): () => RecordProtection {
  const suite = suiteByName(name);
  if (!suite) throw new Error(`unknown suite ${name}`);
  const keys = {
    key: key32.subarray(0, suite.keyLength),
    macKey: macKey48.subarray(0, suite.macLength),
    iv: Buffer.alloc(suite.cipher === "chacha20-poly1305" ? 12 : 4, 7),
  };
  return () => protectionFor(suite, keys, etm);
}

/** Fresh protections (sequence 0) with fixed keys, so sealed seeds open in `run`. */
const PROTECTIONS: ReadonlyArray<{ version: number; make: () => RecordProtection }> = [
  { version: ProtocolVersion.TLS12, make: () => NULL_PROTECTION },
  { version: ProtocolVersion.TLS11, make: tls12("TLS_RSA_WITH_AES_128_CBC_SHA", false) },
  { version: ProtocolVersion.TLS12, make: tls12("TLS_RSA_WITH_AES_256_CBC_SHA256", true) },
  { version: ProtocolVersion.TLS12, make: tls12("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false) },
  { version: ProtocolVersion.TLS12, make: tls12("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false) },
  {
    version: ProtocolVersion.TLS12,
    make: () => new AeadProtection("aes-128-gcm", key32.subarray(0, 16), Buffer.alloc(12, 9), true),
  },
  {
    version: ProtocolVersion.TLS12,
    make: () => new AeadProtection("chacha20-poly1305", key32, Buffer.alloc(12, 9), true),
  },
];

interface PlainRecord {
  type: number;
  data: Uint8Array;
}

/** Input layout: protection selector, chunk size - 1, then the byte stream as sent. */
function recordStream(selector: number, chunk: number, records: readonly PlainRecord[]): Buffer {
  const p = PROTECTIONS[selector % PROTECTIONS.length]!;
  const sender = p.make();
  const sealed = records.map((r) => sender.seal(r.type as ContentType, p.version, Buffer.from(r.data)));
  return Buffer.concat([Buffer.from([selector, chunk]), ...sealed]);
}

const plainRecord: fc.Arbitrary<PlainRecord> = fc.record({
  type: fc.constantFrom(20, 21, 22, 23, 0, 24, 255),
  // Records near the 2^14 plaintext limit, filled cheaply (a generated 16 KiB array costs milliseconds).
  data: fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc
      .record({ length: fc.integer({ min: 16_000, max: 16_500 }), fill: fc.nat({ max: 255 }) })
      .map(({ length, fill }) => Buffer.alloc(length, fill)),
  ),
});

const records: FuzzTarget = {
  name: "tls-records",
  about: "record framing and open() of every protection (null, CBC MtE/EtM, GCM, ChaCha20, TLS 1.3)",
  async prepare() {
    const seeds = PROTECTIONS.map((_, i) =>
      recordStream(i, 255, [
        { type: ContentType.handshake, data: Buffer.from([20, 0, 0, 12, ...Buffer.alloc(12, 1)]) },
        { type: ContentType.application_data, data: Buffer.from("GET / HTTP/1.1\r\n\r\n") },
        { type: ContentType.alert, data: Buffer.from([1, 0]) },
      ]),
    );
    const generate = fc
      .record({
        selector: fc.nat({ max: 255 }),
        chunk: fc.nat({ max: 255 }),
        list: fc.array(plainRecord, { maxLength: 4 }),
      })
      .map(({ selector, chunk, list }) => recordStream(selector, chunk, list));
    return {
      seeds,
      generate,
      expected: tlsExpected,
      run(input: Buffer) {
        if (input.length < 2) return;
        const p = PROTECTIONS[input[0]! % PROTECTIONS.length]!;
        const receiver = p.make();
        const chunk = input[1]! + 1;
        const reader = new RecordReader();
        for (let o = 2; o < input.length; o += chunk) {
          reader.push(input.subarray(o, o + chunk));
          for (let r = reader.next(); r; r = reader.next()) receiver.open(r.type, r.version, r.body);
        }
      },
    };
  },
};

/** Input layout: fragment-size byte, then handshake bytes cut into fragments of that size (+1). */
function fragmentRun(input: Buffer): void {
  if (input.length < 1) return;
  const size = input[0]! + 1;
  const assembler = new HandshakeAssembler();
  for (let o = 1; o < input.length; o += size) {
    assembler.push(input.subarray(o, o + size));
    while (assembler.next());
  }
}

const assembler: FuzzTarget = {
  name: "tls-handshake-assembler",
  about: "handshake message reassembly from records of any size, including 1-byte fragments",
  async prepare(corpus) {
    const flight = Buffer.concat(corpus.handshakeMessages.slice(0, 8));
    const seeds = [0, 3, 63, 255].map((s) => Buffer.concat([Buffer.from([s]), flight]));
    // Large messages in tiny fragments: the shape that turns reassembly quadratic.
    const generate = fc
      .record({
        size: fc.nat({ max: 3 }),
        length: fc.integer({ min: 0, max: 70_000 }),
        type: fc.nat({ max: 255 }),
      })
      .map(({ size, length, type }) => {
        const head = Buffer.from([size, type, length >> 16, (length >> 8) & 0xff, length & 0xff]);
        return Buffer.concat([head, Buffer.alloc(length, 0x61)]);
      });
    return { seeds, generate, expected: tlsExpected, run: fragmentRun };
  },
};

const sessionTickets: FuzzTarget = {
  name: "tls-session-ticket",
  about: "a client's session ticket opened by the server (any bytes: undefined, never a throw)",
  async prepare(corpus) {
    const store = new SessionStore();
    const state = {
      version: ProtocolVersion.TLS12,
      suiteId: 0xc02f,
      masterSecret: Buffer.alloc(48, 3),
      extendedMasterSecret: true,
      createdAt: Date.now(),
      peerCertificates: corpus.certificates.slice(3, 5),
      authorized: true,
    };
    return {
      seeds: [store.sealTicket(state), store.sealTicket({ ...state, peerCertificates: [] })],
      expected: () => false,
      run(input: Buffer) {
        store.openTicket(input);
      },
    };
  },
};

/** Record-layer, reassembly and ticket targets. */
export const TLS_RECORD_TARGETS: readonly FuzzTarget[] = [records, assembler, sessionTickets];
