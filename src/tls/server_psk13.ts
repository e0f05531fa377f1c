/**
 * TLS 1.3 resumption on the server (RFC 8446 §4.2.11, §4.6.1): accepting a ticket the
 * client offers as a PSK, after checking its binder, and issuing new tickets sealed by the
 * same SessionStore that serves TLS 1.2.
 */
import { AlertDescription, TlsError } from "./alert.ts";
import type { CipherSuite } from "./cipher_suites.ts";
import { suiteById } from "./cipher_suites.ts";
import type { ClientHelloInfo } from "./client_hello.ts";
import { ExtensionType, HandshakeType, ProtocolVersion } from "./constants.ts";
import { findExtension } from "./extensions.ts";
import type { HandshakeIO } from "./handshake_io.ts";
import { type Tls13Hash, ticketPsk } from "./key_schedule.ts";
import { decodeOfferedPsks, decodePskModes, encodeNewSessionTicket13 } from "./messages13.ts";
import { binderMatches } from "./psk.ts";
import { publicRandom } from "./public_random.ts";
import type { ServerConfig } from "./server_config.ts";
import type { SessionState } from "./session.ts";
import type { Transcript } from "./transcript.ts";

/** psk_dhe_ke: resumption with a fresh (EC)DHE exchange, the only mode hsmkit accepts. */
const PSK_DHE_KE = 1;

/** An offered ticket the server accepts. */
export interface AcceptedPsk {
  /** Its position among the client's identities (echoed in ServerHello). */
  index: number;
  /** The session it resumes; `masterSecret` holds the PSK. */
  state: SessionState;
  /** Whether the client chain it carries still validates. */
  authorizationError: string | undefined;
}

/**
 * The first offered ticket this server sealed, for a suite of the same hash, whose binder
 * verifies over `prefix` + the truncated ClientHello. A wrong binder aborts the handshake.
 * A session without a client certificate is not resumed where one is now required.
 */
export function acceptPsk(
  cfg: ServerConfig,
  hello: ClientHelloInfo,
  hash: Tls13Hash,
  prefix: Transcript,
): AcceptedPsk | undefined {
  const ext = findExtension(hello.extensions, ExtensionType.pre_shared_key);
  if (!ext) return undefined;
  if (hello.extensions.at(-1) !== ext) {
    throw new TlsError(AlertDescription.illegal_parameter, "pre_shared_key is not the last extension");
  }
  const modes = findExtension(hello.extensions, ExtensionType.psk_key_exchange_modes);
  if (!modes)
    throw new TlsError(AlertDescription.missing_extension, "pre_shared_key without psk_key_exchange_modes");
  const store = cfg.sessions;
  if (!store?.tickets || !decodePskModes(modes.data).includes(PSK_DHE_KE)) return undefined;
  const offered = decodeOfferedPsks(ext.data);
  for (const [index, id] of offered.identities.entries()) {
    const state = store.openTicket(id.identity);
    if (!state) continue;
    if (state.version !== ProtocolVersion.TLS13 || suiteById(state.suiteId)?.prfHash !== hash) {
      state.masterSecret.fill(0);
      continue;
    }
    if (!binderMatches(hash, state.masterSecret, prefix, hello.message.raw, offered.binders, index)) {
      throw new TlsError(AlertDescription.decrypt_error, "the PSK binder does not verify");
    }
    const auth = cfg.clientAuth;
    const verdict =
      auth && state.peerCertificates.length > 0 ? auth.verify(state.peerCertificates) : undefined;
    if (auth?.require && !verdict?.ok) {
      state.masterSecret.fill(0);
      return undefined; // a full handshake will ask for the certificate again
    }
    return { index, state, authorizationError: verdict && !verdict.ok ? verdict.reason : undefined };
  }
  return undefined;
}

/** What a new ticket records about the connection. */
export interface TicketSubject {
  suite: CipherSuite;
  hash: Tls13Hash;
  resumptionSecret: Buffer;
  peerCertificates: Buffer[];
  authorized: boolean;
  /** When the original full handshake happened; a resumed session keeps its first date. */
  createdAt: number;
}

/** Writes one NewSessionTicket (the caller flushes), when tickets are on. */
export function writeTicket(io: HandshakeIO, cfg: ServerConfig, t: TicketSubject): void {
  const store = cfg.sessions;
  if (!store?.tickets) return;
  const nonce = publicRandom(8);
  const psk = ticketPsk(t.hash, t.resumptionSecret, nonce);
  const ticket = store.sealTicket({
    version: ProtocolVersion.TLS13,
    suiteId: t.suite.id,
    masterSecret: psk,
    extendedMasterSecret: false,
    createdAt: t.createdAt,
    peerCertificates: t.peerCertificates,
    authorized: t.authorized,
  });
  psk.fill(0);
  const body = encodeNewSessionTicket13({
    lifetime: store.lifetimeSeconds,
    ageAdd: publicRandom(4).readUInt32BE(0),
    nonce,
    ticket,
    extensions: [],
  });
  io.writeMessage(HandshakeType.new_session_ticket, body);
}
