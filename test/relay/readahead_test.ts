// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  readAhead,
  type ReadAheadState,
  RELAY_READAHEAD_BLOCKS,
  RELAY_READAHEAD_TRIGGER,
} from "../../lib/relay/readahead.ts";

/** The blocks read ahead after each of `reads`, in a file of `blocks`. */
function plans(reads: number[], blocks = 1000): number[][] {
  let state: ReadAheadState = { run: 0 };
  return reads.map((index) => {
    const plan = readAhead(state, index, blocks);
    state = plan.state;
    return plan.ahead;
  });
}

describe("readAhead()", () => {
  test("readAhead() starts once the guest has read RELAY_READAHEAD_TRIGGER blocks in a row, 2 ahead, and doubles to 8", () => {
    assert.equal(RELAY_READAHEAD_TRIGGER, 3);
    assert.deepEqual(plans([10, 11, 12, 13, 14, 15]).map((ahead) => ahead.length), [0, 0, 2, 4, 8, 8]);
    assert.deepEqual(plans([10, 11, 12, 13, 14])[4], [15, 16, 17, 18, 19, 20, 21, 22]);
    assert.equal(
      Math.max(...plans(Array.from({ length: 50 }, (_, i) => i)).map((a) => a.length)),
      RELAY_READAHEAD_BLOCKS,
    );
  });

  test("readAhead() keeps going while the reads stay in order, and the same block read again changes nothing", () => {
    assert.deepEqual(plans([0, 1, 2, 2, 3]).slice(2), [[3, 4], [3, 4], [4, 5, 6, 7]]);
  });

  test("readAhead() stops at a read out of order, and starts again small only after three more in a row", () => {
    assert.deepEqual(plans([0, 1, 2, 3, 4, 50, 51, 52]).map((ahead) => ahead.length), [0, 0, 2, 4, 8, 0, 0, 2]);
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
