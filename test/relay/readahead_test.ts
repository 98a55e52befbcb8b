// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  readAhead,
  type ReadAheadState,
  RELAY_READAHEAD_BLOCKS,
  RELAY_READAHEAD_START,
  RELAY_READAHEAD_TRIGGER,
} from "../../lib/relay/readahead.ts";

/** The blocks read ahead after each of `reads`, in a file of `blocks`, `depth` blocks deep at most. */
function plans(reads: number[], blocks = 1000, depth = RELAY_READAHEAD_BLOCKS): number[][] {
  let state: ReadAheadState = { run: 0 };
  return reads.map((index) => {
    const plan = readAhead(state, index, blocks, depth);
    state = plan.state;
    return plan.ahead;
  });
}

describe("readAhead()", () => {
  test("readAhead() starts once the guest has read RELAY_READAHEAD_TRIGGER blocks in a row, 8 ahead, and doubles to the depth", () => {
    assert.equal(RELAY_READAHEAD_TRIGGER, 3);
    assert.equal(RELAY_READAHEAD_START, 8);
    assert.deepEqual(plans([10, 11, 12, 13, 14, 15], 1000, 32).map((ahead) => ahead.length), [0, 0, 8, 16, 32, 32]);
    assert.deepEqual(plans([10, 11, 12])[2], [13, 14, 15, 16, 17, 18, 19, 20]);
    assert.equal(
      Math.max(...plans(Array.from({ length: 50 }, (_, i) => i)).map((a) => a.length)),
      RELAY_READAHEAD_BLOCKS,
    );
  });

  test("readAhead() keeps going while the reads stay in order, and the same block read again changes nothing", () => {
    assert.deepEqual(plans([0, 1, 2, 2, 3], 1000, 32).slice(2).map((ahead) => [ahead[0], ahead.length]), [
      [3, 8],
      [3, 8],
      [4, 16],
    ]);
  });

  test("readAhead() stops at a read out of order, and starts again small only after three more in a row", () => {
    assert.deepEqual(plans([0, 1, 2, 3, 4, 50, 51, 52], 1000, 32).map((ahead) => ahead.length), [
      0,
      0,
      8,
      16,
      32,
      0,
      0,
      8,
    ]);
    assert.deepEqual(plans([5, 1, 9, 3, 4, 12]), [[], [], [], [], [], []], "random reads: nothing ahead");
  });

  test("readAhead() with a depth of 0 (relay_readahead = 0) never reads ahead", () => {
    let state: ReadAheadState = { run: 0 };
    for (const index of [0, 1, 2, 3]) {
      const plan = readAhead(state, index, 100, 0);
      assert.deepEqual(plan.ahead, []);
      state = plan.state;
    }
  });

  test("readAhead() never plans past the file's last block", () => {
    assert.deepEqual(plans([3, 4, 5, 6, 7], 10)[4], [8, 9]);
    assert.deepEqual(plans([7, 8, 9], 10)[2], []);
  });
});
