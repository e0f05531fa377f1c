import assert from "node:assert/strict";
import { test } from "node:test";
import { Reader, Writer } from "../../src/tls/codec.ts";

test("Writer: fields and vectors in order, read back by Reader, across growth from a tiny start", () => {
  const big = Buffer.alloc(70_000, 7);
  const w = new Writer(1);
  w.u8(0x1ff)
    .u16(0xbeef)
    .u24(0x123456)
    .bytes(Buffer.from("ab"))
    .vec8(Buffer.of(9))
    .vec16(big.subarray(0, 300));
  w.vec24(big);
  const out = w.finish();
  assert.equal(out.length, 1 + 2 + 3 + 2 + 2 + 302 + 3 + 70_000);
  const r = new Reader(out, "test");
  assert.equal(r.u8(), 0xff);
  assert.equal(r.u16(), 0xbeef);
  assert.equal(r.u24(), 0x123456);
  assert.deepEqual(r.bytes(2), Buffer.from("ab"));
  assert.deepEqual(r.vec8(), Buffer.of(9));
  assert.deepEqual(r.vec16(), big.subarray(0, 300));
  assert.deepEqual(r.vec24(), big);
  r.end();
});

test("Writer: finish() ends it; what it gave out is not changed by a refused later write", () => {
  const w = new Writer(4);
  w.u16(0x0102);
  const first = w.finish();
  assert.throws(() => w.bytes(Buffer.alloc(1000, 0xaa)), /after finish/);
  assert.throws(() => w.u8(1), /after finish/);
  assert.deepEqual(first, Buffer.of(1, 2));
});

test("Writer: a small result is its own copy, and the secret-bearing buffer behind it is zeroed", () => {
  const w = new Writer(256);
  const inside = (w as unknown as { buf: Buffer }).buf;
  const secret = Buffer.alloc(16, 0x5a);
  const out = w.vec8(secret).finish();
  assert.deepEqual(out, Buffer.concat([Buffer.of(16), secret]));
  assert.ok(inside.subarray(0, 17).every((b) => b === 0));
  const overlaps =
    out.buffer === inside.buffer &&
    out.byteOffset < inside.byteOffset + inside.length &&
    inside.byteOffset < out.byteOffset + out.length;
  assert.equal(overlaps, false);
});

test("Writer: a refused write leaves no copy of what was written before it", () => {
  const w = new Writer(64);
  w.bytes(Buffer.alloc(32, 0x5a));
  const inside = (w as unknown as { buf: Buffer }).buf;
  assert.throws(() => w.vec8(Buffer.alloc(300)), /exceeds its length prefix/);
  assert.ok(inside.subarray(0, 32).every((b) => b === 0));
});

test("Writer: values that do not fit are refused, not truncated", () => {
  assert.throws(() => new Writer().u16(0x10000), RangeError);
  assert.throws(() => new Writer().u16(-1), RangeError);
  assert.throws(() => new Writer().u24(0x1000000), RangeError);
  assert.throws(() => new Writer().vec8(Buffer.alloc(256)), /exceeds its length prefix/);
  assert.throws(() => new Writer().vec16(Buffer.alloc(65_536)), /exceeds its length prefix/);
});
