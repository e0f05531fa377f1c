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

test("Writer: what finish() gave out stays as it was when more is written and the buffer grows", () => {
  const w = new Writer(4);
  w.u16(0x0102);
  const first = w.finish();
  w.bytes(Buffer.alloc(1000, 0xaa));
  assert.deepEqual(first, Buffer.of(1, 2));
  assert.equal(w.finish().length, 1002);
  assert.deepEqual(w.finish().subarray(0, 2), Buffer.of(1, 2));
});

test("Writer: values that do not fit are refused, not truncated", () => {
  assert.throws(() => new Writer().u16(0x10000), RangeError);
  assert.throws(() => new Writer().u16(-1), RangeError);
  assert.throws(() => new Writer().u24(0x1000000), RangeError);
  assert.throws(() => new Writer().vec8(Buffer.alloc(256)), /exceeds its length prefix/);
  assert.throws(() => new Writer().vec16(Buffer.alloc(65_536)), /exceeds its length prefix/);
});
