import assert from "node:assert/strict";
import { test } from "node:test";
import { fillPublicRandom, publicRandom } from "../../src/tls/public_random.ts";

test("public randoms never repeat, across many refills of the pool", () => {
  const seen = new Set<string>();
  // 32-byte values through ten 2 KiB pools, plus odd sizes that straddle a refill.
  for (let i = 0; i < 640; i++) seen.add(publicRandom(32).toString("hex"));
  for (let i = 0; i < 300; i++) seen.add(publicRandom(12 + (i % 7)).toString("hex"));
  assert.equal(seen.size, 940);
  // Not all zero: the bytes given away are zeroed in the pool, not in what was given.
  for (const hex of [...seen].slice(-50)) assert.doesNotMatch(hex, /^(00)+$/);
});

test("fillPublicRandom writes exactly the range asked for, large ranges included", () => {
  for (const length of [16, 600, 5000]) {
    const out = Buffer.alloc(length + 10, 0xee);
    fillPublicRandom(out, 5, length);
    assert.deepEqual(out.subarray(0, 5), Buffer.alloc(5, 0xee));
    assert.deepEqual(out.subarray(5 + length), Buffer.alloc(5, 0xee));
    const filled = out.subarray(5, 5 + length);
    // 16+ random bytes all 0xee has probability 2^-128.
    assert.ok(!filled.every((b) => b === 0xee));
    assert.ok(new Set(filled).size > (length > 100 ? 200 : 4));
  }
});

test("a range outside the buffer or negative is refused, and the pool hands out nothing twice after it", () => {
  assert.throws(() => fillPublicRandom(Buffer.alloc(4), 10), RangeError);
  assert.throws(() => fillPublicRandom(Buffer.alloc(4), 0, -3), RangeError);
  assert.throws(() => fillPublicRandom(Buffer.alloc(4), 1.5, 1), RangeError);
  const next = publicRandom(8);
  assert.ok(next.subarray(0, 6).some((b) => b !== 0));
});
