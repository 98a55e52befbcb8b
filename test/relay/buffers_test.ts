// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BufferPool } from "../../lib/relay/buffers.ts";

describe("BufferPool", () => {
  test("BufferPool hands back the buffers given to it, newest first, and a new one when none is idle", () => {
    const pool = new BufferPool(8, 4);
    const [a, b] = [pool.take(), pool.take()];
    assert.notEqual(a, b);
    pool.give(a);
    pool.give(b);
    assert.equal(pool.take(), b);
    assert.equal(pool.take(), a);
    const fresh = pool.take();
    assert.ok(fresh !== a && fresh !== b && fresh.length === 8);
  });

  test("BufferPool keeps at most `most` idle buffers: a burst held at once is not kept after it", () => {
    const pool = new BufferPool(8, 2);
    const burst = Array.from({ length: 5 }, () => pool.take());
    for (const buffer of burst) pool.give(buffer);
    assert.equal(pool.idle, 2);
  });

  test("BufferPool refuses a buffer it could not have given (another size, or a part of one) and one given back twice", () => {
    const pool = new BufferPool(8, 4);
    assert.throws(() => pool.give(new Uint8Array(7)), RangeError);
    assert.throws(() => pool.give(new Uint8Array(16).subarray(0, 8)), RangeError);
    assert.throws(() => pool.give(new Uint8Array(9).subarray(1)), RangeError);
    const one = pool.take();
    pool.give(one);
    assert.throws(() => pool.give(one), /given back twice/);
    assert.equal(pool.idle, 1);
  });
});
