/**
 * Random bytes for values that are public or of low value, never key material: hello randoms,
 * session IDs, ticket IVs, CBC record IVs, and the TLS 1.3 ticket nonce and ticket_age_add (sent
 * encrypted). node:crypto spends about 7 us per randomBytes call whatever its size (a handshake
 * makes two to four such calls), so these come from one buffer filled by OpenSSL's CSPRNG at a
 * time. Secrets (premasters, keys) never come from here.
 */
import { randomFillSync } from "node:crypto";

const POOL_SIZE = 2048;
const pool = Buffer.alloc(POOL_SIZE);
let used = POOL_SIZE;

/** Fills `out[offset, offset + length)` with fresh CSPRNG bytes meant to be sent in the clear. */
export function fillPublicRandom(out: Buffer, offset = 0, length = out.length - offset): void {
  // A bad range would move the pool's cursor backwards and hand the same bytes out twice.
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0)
    throw new RangeError("public random range must be non-negative integers");
  if (offset + length > out.length) throw new RangeError("public random range exceeds the buffer");
  if (length > POOL_SIZE / 4) {
    randomFillSync(out, offset, length);
    return;
  }
  if (used + length > POOL_SIZE) {
    randomFillSync(pool);
    used = 0;
  }
  pool.copy(out, offset, used, used + length);
  // Each byte is handed out once: what was given away is not left to be given again.
  pool.fill(0, used, used + length);
  used += length;
}

/** `length` fresh CSPRNG bytes meant to be sent in the clear, in a new Buffer. */
export function publicRandom(length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  fillPublicRandom(out);
  return out;
}
