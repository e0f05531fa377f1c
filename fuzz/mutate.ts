/**
 * Mutation of valid seed inputs, written as fast-check arbitraries so every mutated input is
 * reproducible from the run's seed: bit flips, boundary bytes, truncations, insertions,
 * deletions, length fields overwritten with boundary values, splices from other seeds and
 * repeated ranges (the shapes that break length arithmetic and linear-time assumptions).
 */
import fc from "fast-check";

/** One byte-level edit; positions are taken modulo the current length when applied. */
export type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; value: number }
  | { op: "truncate"; at: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; length: number }
  | { op: "length"; at: number; width: 1 | 2 | 3; delta: number; absolute: boolean }
  | { op: "splice"; at: number; donor: number; from: number; length: number }
  | { op: "repeat"; at: number; length: number; times: number };

/** Byte values that sit on boundaries parsers get wrong. */
const BOUNDARY_BYTES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x7f, 0x80, 0x81, 0xfe, 0xff];

/** Largest input a mutation may produce (bounds memory; big enough to show quadratic costs). */
export const MAX_MUTATED_BYTES = 256 * 1024;

const position = fc.nat({ max: 1 << 20 });

/** One byte-level edit, weighted towards flips, boundary bytes and length fields. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant("flip" as const), at: position, bit: fc.nat({ max: 7 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("set" as const),
      at: position,
      value: fc.constantFrom(...BOUNDARY_BYTES),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("truncate" as const), at: position }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("insert" as const),
      at: position,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("delete" as const),
      at: position,
      length: fc.integer({ min: 1, max: 64 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("length" as const),
      at: position,
      width: fc.constantFrom(1 as const, 2 as const, 3 as const),
      delta: fc.integer({ min: -4, max: 4 }),
      absolute: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("splice" as const),
      at: position,
      donor: fc.nat(),
      from: position,
      length: fc.integer({ min: 1, max: 512 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("repeat" as const),
      at: position,
      length: fc.integer({ min: 1, max: 64 }),
      times: fc.integer({ min: 2, max: 2048 }),
    }),
  },
);

/**
 * Writes a big-endian length field at `at`: either a boundary value near the bytes that follow
 * (off by a few either way) or one near the field's maximum.
 */
function lengthField(buf: Buffer, m: Extract<Mutation, { op: "length" }>): Buffer {
  const at = m.at % Math.max(1, buf.length - m.width + 1);
  if (buf.length < m.width) return buf;
  const max = 2 ** (8 * m.width) - 1;
  const follows = buf.length - at - m.width;
  const value = Math.min(max, Math.max(0, (m.absolute ? max : follows) + m.delta));
  const out = Buffer.from(buf);
  out.writeUIntBE(value, at, m.width);
  return out;
}

function apply(buf: Buffer, m: Mutation, donors: readonly Buffer[]): Buffer {
  const at = m.at % (buf.length + 1);
  switch (m.op) {
    case "flip":
    case "set": {
      if (buf.length === 0) return buf;
      const out = Buffer.from(buf);
      const i = m.at % buf.length;
      out[i] = m.op === "flip" ? out[i]! ^ (1 << m.bit) : m.value;
      return out;
    }
    case "truncate":
      return buf.subarray(0, at);
    case "insert":
      return Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
    case "delete":
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.length)]);
    case "length":
      return lengthField(buf, m);
    case "splice": {
      const donor = donors[m.donor % donors.length] ?? Buffer.alloc(0);
      const from = m.from % (donor.length + 1);
      return Buffer.concat([buf.subarray(0, at), donor.subarray(from, from + m.length), buf.subarray(at)]);
    }
    case "repeat": {
      const piece = buf.subarray(at, at + m.length);
      const times = Math.min(m.times, Math.floor(MAX_MUTATED_BYTES / Math.max(1, piece.length)));
      return Buffer.concat([buf.subarray(0, at), ...Array<Buffer>(times).fill(piece), buf.subarray(at)]);
    }
  }
}

/** Applies edits in order, keeping the result under {@link MAX_MUTATED_BYTES}. */
export function applyMutations(seed: Buffer, edits: readonly Mutation[], donors: readonly Buffer[]): Buffer {
  let out = seed;
  for (const m of edits) {
    out = apply(out, m, donors);
    if (out.length > MAX_MUTATED_BYTES) out = out.subarray(0, MAX_MUTATED_BYTES);
  }
  return out;
}

/** Inputs made by editing seeds: one seed, one to eight edits (other seeds donate splices). */
export function mutatedSeeds(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  if (seeds.length === 0) throw new RangeError("mutatedSeeds needs at least one seed");
  return fc
    .record({
      seed: fc.nat({ max: seeds.length - 1 }),
      edits: fc.array(mutation, { minLength: 1, maxLength: 8 }),
    })
    .map(({ seed, edits }) => applyMutations(seeds[seed]!, edits, seeds));
}

/** Plain random bytes, for parsers that must survive anything at all. */
export const randomBytesArb: fc.Arbitrary<Buffer> = fc
  .uint8Array({ maxLength: 2048 })
  .map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength));
