/**
 * Server session memory: tickets sealed with AES-256-GCM under rotating keys (RFC 5077),
 * refused when forged, corrupted, truncated, expired or sealed by a retired key; the
 * session-ID cache with expiry and bounded size; NewSessionTicket codec limits.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { TlsError } from "../../src/tls/alert.ts";
import { ProtocolVersion } from "../../src/tls/constants.ts";
import {
  decodeNewSessionTicket12,
  encodeNewSessionTicket12,
  type SessionState,
  SessionStore,
} from "../../src/tls/session.ts";

function state(now: number, chain: Buffer[] = [randomBytes(300)]): SessionState {
  return {
    version: ProtocolVersion.TLS12,
    suiteId: 0xc02f,
    masterSecret: randomBytes(48),
    extendedMasterSecret: true,
    createdAt: Math.floor(now / 1000) * 1000,
    peerCertificates: chain,
    authorized: true,
  };
}

function clockAt(start: number): { now: () => number; advance: (seconds: number) => void } {
  let t = start;
  return { now: () => t, advance: (s) => (t += s * 1000) };
}

test("a ticket opens to the same session, and no two tickets are alike", () => {
  const clock = clockAt(Date.now());
  const store = new SessionStore({}, clock.now);
  const s = state(clock.now());
  const a = store.sealTicket(s);
  const b = store.sealTicket(s);
  assert.notDeepEqual(a, b);
  assert.deepEqual(store.openTicket(a), s);
  assert.deepEqual(store.openTicket(b), s);
  // The master secret is not in the ticket in the clear.
  assert.equal(a.includes(s.masterSecret), false);
});

test("forged, corrupted, truncated and foreign tickets are refused", () => {
  const clock = clockAt(Date.now());
  const store = new SessionStore({}, clock.now);
  const ticket = store.sealTicket(state(clock.now()));
  for (let i = 0; i < ticket.length; i += 5) {
    const bad = Buffer.from(ticket);
    bad[i]! ^= 0x80;
    assert.equal(store.openTicket(bad), undefined, `flipped byte ${i}`);
  }
  for (const n of [0, 1, 16, 28, 44, ticket.length - 1]) {
    assert.equal(store.openTicket(ticket.subarray(0, n)), undefined, `truncated to ${n}`);
  }
  assert.equal(store.openTicket(Buffer.concat([ticket, Buffer.from([0])])), undefined, "extended");
  assert.equal(store.openTicket(randomBytes(200)), undefined, "random");
  const other = new SessionStore({}, clock.now);
  assert.equal(other.openTicket(ticket), undefined, "another server's ticket");
});

test("tickets expire after the lifetime, counted from the full handshake", () => {
  const clock = clockAt(Date.now());
  const store = new SessionStore({ lifetimeSeconds: 600, ticketKeyRotationSeconds: 3600 }, clock.now);
  const s = state(clock.now());
  const ticket = store.sealTicket(s);
  clock.advance(599);
  assert.ok(store.openTicket(ticket));
  // A renewed ticket keeps the original creation time, so renewal cannot extend a session.
  const renewed = store.sealTicket(s);
  clock.advance(2);
  assert.equal(store.openTicket(ticket), undefined);
  assert.equal(store.openTicket(renewed), undefined);
});

test("ticket keys rotate; a retired key opens its tickets until they expire, then is dropped", () => {
  const clock = clockAt(Date.now());
  const store = new SessionStore({ lifetimeSeconds: 100, ticketKeyRotationSeconds: 50 }, clock.now);
  const first = store.sealTicket(state(clock.now()));
  clock.advance(60);
  const second = store.sealTicket(state(clock.now()));
  // Different key names: the first 16 bytes.
  assert.notDeepEqual(first.subarray(0, 16), second.subarray(0, 16));
  assert.ok(store.openTicket(first), "previous key still opens");
  clock.advance(95); // first key: 155 s old > rotation 50 + lifetime 100
  assert.equal(store.openTicket(first), undefined);
  assert.ok(store.openTicket(second));
});

test("a session from the future (clock moved back) is refused", () => {
  const clock = clockAt(Date.now());
  const store = new SessionStore({}, clock.now);
  const ticket = store.sealTicket(state(clock.now() + 60_000));
  assert.equal(store.openTicket(ticket), undefined);
});

test("the session-ID cache: recall gives a copy, expiry drops, the size is bounded, clear zeroes", () => {
  const clock = clockAt(Date.now());
  const store = new SessionStore({ cacheSize: 3, lifetimeSeconds: 10 }, clock.now);
  const ids = [0, 1, 2, 3].map(() => randomBytes(32));
  const states = ids.map(() => state(clock.now()));
  for (const [i, id] of ids.entries()) store.remember(id, states[i]!);
  assert.equal(store.size, 3);
  assert.equal(store.recall(ids[0]!), undefined, "the oldest was evicted");
  const got = store.recall(ids[1]!)!;
  assert.deepEqual(got.masterSecret, states[1]!.masterSecret);
  got.masterSecret.fill(0);
  assert.notDeepEqual(store.recall(ids[1]!)!.masterSecret, got.masterSecret, "recall hands out copies");
  assert.equal(store.recall(Buffer.alloc(0)), undefined);
  store.forget(ids[2]!);
  assert.equal(store.recall(ids[2]!), undefined);
  clock.advance(11);
  assert.equal(store.recall(ids[3]!), undefined, "expired");
  store.clear();
  assert.equal(store.size, 0);
});

test("disabled tickets and cache remember nothing", () => {
  const store = new SessionStore({ tickets: false, cache: false });
  const s = state(Date.now());
  assert.equal(store.openTicket(store.sealTicket(s)), undefined);
  store.remember(randomBytes(32), s);
  assert.equal(store.size, 0);
});

test("bad settings are refused", () => {
  assert.throws(() => new SessionStore({ lifetimeSeconds: 0 }), RangeError);
  assert.throws(() => new SessionStore({ cacheSize: -1 }), RangeError);
  assert.throws(() => new SessionStore({ ticketKeyRotationSeconds: Number.NaN }), RangeError);
});

test("NewSessionTicket codec round-trips and refuses truncated or trailing input", () => {
  const ticket = randomBytes(120);
  const body = encodeNewSessionTicket12(7200, ticket);
  assert.deepEqual(decodeNewSessionTicket12(body), { lifetimeSeconds: 7200, ticket });
  for (const n of [0, 3, 5, body.length - 1]) {
    assert.throws(() => decodeNewSessionTicket12(body.subarray(0, n)), TlsError);
  }
  assert.throws(() => decodeNewSessionTicket12(Buffer.concat([body, Buffer.from([0])])), TlsError);
});
