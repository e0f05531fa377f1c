/**
 * The seed corpus, made fresh at harness start from real parts: the test PKI (openssl CLI),
 * a CSR and PKCS#12 files made by openssl and by the KMS's own writer, and the plaintext
 * handshake messages of real TLS 1.1/1.2/1.3 handshakes between `openssl s_server` and
 * `openssl s_client -msg` (mutual TLS, RSA and ECDHE key exchange, a HelloRetryRequest).
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { writeLegacyPfx } from "../src/keys/pkcs12/index.ts";
import { ContentType, HandshakeType, ProtocolVersion } from "../src/tls/constants.ts";
import { frameRecord } from "../src/tls/record.ts";
import { decodePemBlocks } from "../src/tls/x509/pem.ts";
import { opensslClient, opensslServer, type TlsVersion } from "../test/helpers/peers.ts";
import { makePki, type Pki } from "../test/helpers/pki.ts";
import { runChecked } from "../test/helpers/process.ts";

/** Everything targets seed from; plain data so it can cross into a worker thread. */
export interface Corpus {
  /** DER certificates: roots, intermediates, RSA and EC leaves. */
  certificates: Buffer[];
  /** The root the test PKI trusts, DER (for path validation inside targets). */
  rootDer: Buffer;
  /** The intermediate CA, DER. */
  intermediateDer: Buffer;
  /** PEM texts: chain files, the CA file, a CRL file. */
  pemTexts: string[];
  /** DER CRLs (one empty, one revoking a client). */
  crls: Buffer[];
  /** PKCS#10 requests, PEM and DER. */
  csrs: Buffer[];
  /** PKCS#12 files, all under {@link PFX_PASSWORD}. */
  pfx: Buffer[];
  /** Plaintext handshake messages as sent (type, 24-bit length, body), from real handshakes. */
  handshakeMessages: Buffer[];
  /** The client's first flight of each captured handshake, as records (the ClientHello). */
  clientFlights: Buffer[];
  /** The server's plaintext first flight of each captured handshake, as records. */
  serverFlights: Buffer[];
  /** Files and PEM for running real TLS endpoints inside targets (RSA leaves, mutual TLS). */
  peers: {
    caPem: string;
    serverChainPem: string;
    serverKeyPath: string;
    clientChainPem: string;
    clientKeyPath: string;
  };
}

/** The password of every PKCS#12 seed. */
export const PFX_PASSWORD = "fuzz password";

const revive = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** Turns a corpus that crossed into a worker (its Buffers arrive as Uint8Arrays) back into Buffers. */
export function reviveCorpus(c: Corpus): Corpus {
  return {
    ...c,
    certificates: c.certificates.map(revive),
    rootDer: revive(c.rootDer),
    intermediateDer: revive(c.intermediateDer),
    crls: c.crls.map(revive),
    csrs: c.csrs.map(revive),
    pfx: c.pfx.map(revive),
    handshakeMessages: c.handshakeMessages.map(revive),
    clientFlights: c.clientFlights.map(revive),
    serverFlights: c.serverFlights.map(revive),
  };
}

/** Builds the corpus (a few seconds: key generation and a handful of openssl handshakes). */
export async function buildCorpus(): Promise<Corpus> {
  const pki = await makePki();
  const leaves = [pki.server, pki.serverEc, pki.client, pki.clientEc, pki.expiredServer, pki.otherServer];
  const crls = decodePemBlocks(pki.crlPem).map((b) => b.der);
  const [csrs, pfx, captures] = await Promise.all([makeCsrs(pki), makePfx(pki), captureHandshakes(pki)]);
  return {
    certificates: [pki.root, pki.intermediate, pki.otherCa, ...leaves].map((c) => c.certDer),
    rootDer: pki.root.certDer,
    intermediateDer: pki.intermediate.certDer,
    pemTexts: [pki.server.chainPem, pki.root.certPem, pki.crlPem, pki.client.keyPem + pki.client.chainPem],
    crls,
    csrs,
    pfx,
    handshakeMessages: captures.flatMap((c) => c.map((m) => m.message)),
    clientFlights: captures.map((c) =>
      flight(c, (m) => m.fromClient && m.message[0] === HandshakeType.client_hello, 1),
    ),
    serverFlights: captures.map((c) => flight(c, (m) => !m.fromClient, plaintextServerMessages(c))),
    peers: {
      caPem: pki.root.certPem,
      serverChainPem: pki.server.chainPem,
      serverKeyPath: pki.server.keyPath,
      clientChainPem: pki.client.chainPem,
      clientKeyPath: pki.client.keyPath,
    },
  };
}

async function makeCsrs(pki: Pki): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const [key, form] of [
    [pki.server.keyPath, "PEM"],
    [pki.serverEc.keyPath, "DER"],
  ] as const) {
    const file = path.join(pki.dir, `fuzz-${form}.csr`);
    await runChecked("openssl", [
      ...["req", "-new", "-key", key, "-subj", "/O=hsmkit fuzz/CN=fuzz.example", "-sha256"],
      ...["-addext", "subjectAltName=DNS:fuzz.example,IP:192.0.2.7", "-outform", form, "-out", file],
    ]);
    out.push(await readFile(file));
  }
  return out;
}

async function makePfx(pki: Pki): Promise<Buffer[]> {
  const passFile = path.join(pki.dir, "fuzz-pfx-pass.txt");
  await writeFile(passFile, PFX_PASSWORD, { mode: 0o600 });
  const file = path.join(pki.dir, "fuzz-3des.pfx");
  // 3DES and SHA-1 are what node-forge (and so the KMS client key reader) understands.
  await runChecked("openssl", [
    ...["pkcs12", "-export", "-in", pki.client.chainPath, "-inkey", pki.client.keyPath],
    ...["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
    ...["-passout", `file:${passFile}`, "-out", file],
  ]);
  const kmsPfx = writeLegacyPfx(pki.client.keyPem, pki.client.certPem, PFX_PASSWORD);
  return [await readFile(file), kmsPfx];
}

/** One handshake to capture: the server's settings and the client's extra arguments. */
interface Capture {
  tls: TlsVersion;
  ec?: boolean;
  ciphers?: string;
  serverArgs?: string[];
  clientArgs?: string[];
}

const CAPTURES: readonly Capture[] = [
  { tls: "1.3" },
  { tls: "1.3", serverArgs: ["-groups", "P-384"], clientArgs: ["-groups", "X25519:P-384"] }, // HelloRetryRequest
  { tls: "1.2", ciphers: "ECDHE-RSA-AES128-GCM-SHA256" },
  { tls: "1.2", ciphers: "AES128-SHA256" },
  { tls: "1.2", ec: true, ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384" },
  { tls: "1.1", ciphers: "AES128-SHA" },
];

/** A captured handshake message and who sent it. */
interface Captured {
  fromClient: boolean;
  message: Buffer;
}

/** How many of the server's messages travel in the clear: up to EncryptedExtensions or Finished. */
function plaintextServerMessages(c: readonly Captured[]): number {
  const fromServer = c.filter((m) => !m.fromClient);
  const end = fromServer.findIndex(
    (m) => m.message[0] === HandshakeType.encrypted_extensions || m.message[0] === HandshakeType.finished,
  );
  return end < 0 ? fromServer.length : end;
}

/** The first `count` messages that pass `pick`, each framed as a handshake record. */
function flight(c: readonly Captured[], pick: (m: Captured) => boolean, count: number): Buffer {
  const records = c
    .filter(pick)
    .slice(0, count)
    .map((m) => frameRecord(ContentType.handshake, ProtocolVersion.TLS12, m.message));
  return Buffer.concat(records);
}

async function captureHandshakes(pki: Pki): Promise<Captured[][]> {
  const out: Captured[][] = [];
  for (const c of CAPTURES) out.push(await captureOne(pki, c));
  return out;
}

/** Runs one mutual-TLS handshake between openssl peers and returns every handshake message seen. */
async function captureOne(pki: Pki, c: Capture): Promise<Captured[]> {
  const leaf = c.ec ? pki.serverEc : pki.server;
  const server = await opensslServer({
    cert: leaf.certPath,
    key: leaf.keyPath,
    chain: pki.intermediate.certPath,
    caFile: pki.caFile,
    verifyClient: "optional",
    tls: c.tls,
    ...(c.ciphers ? { ciphers: c.ciphers } : {}),
    extraArgs: c.serverArgs ?? [],
  });
  try {
    const level = c.tls === "1.1" ? ["-cipher", `${c.ciphers}:@SECLEVEL=0`] : [];
    const result = await opensslClient({
      port: server.port,
      args: [
        ...["-msg", "-CAfile", pki.caFile, "-cert", pki.client.certPath, "-key", pki.client.keyPath],
        ...["-cert_chain", pki.intermediate.certPath, `-tls${c.tls.replace(".", "_")}`, ...level],
        ...(c.clientArgs ?? []),
      ],
      input: "",
    });
    return parseMsgOutput(result.stdout);
  } finally {
    await server.stop();
  }
}

/**
 * Reads `s_client -msg` output: a line `>>> TLS 1.2, Handshake [length 0123], ClientHello`
 * followed by indented hex lines holding the message (header included).
 */
export function parseMsgOutput(text: string): Captured[] {
  const out: Captured[] = [];
  let hex: string[] | undefined;
  let fromClient = false;
  for (const line of text.split("\n")) {
    if (hex && /^ {4}[0-9a-f]{2}( |$)/.test(line)) {
      hex.push(line.trim().replace(/\s+/g, ""));
      continue;
    }
    if (hex && hex.length > 0) out.push({ fromClient, message: Buffer.from(hex.join(""), "hex") });
    hex = /^(<<<|>>>) \S+ [\d.]+, Handshake \[length [0-9a-f]+\]/.test(line) ? [] : undefined;
    fromClient = line.startsWith(">>>");
  }
  if (hex && hex.length > 0) out.push({ fromClient, message: Buffer.from(hex.join(""), "hex") });
  return out;
}
