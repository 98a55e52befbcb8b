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
  test("readAhead() starts once the guest has read RELAY_READAHEAD_TRIGGER blocks in a row, and reads 8 ahead", () => {
    assert.equal(RELAY_READAHEAD_TRIGGER, 3);
    assert.deepEqual(plans([10, 11, 12]), [[], [], [13, 14, 15, 16, 17, 18, 19, 20]]);
    assert.equal(plans([10, 11, 12])[2].length, RELAY_READAHEAD_BLOCKS);
  });

  test("readAhead() keeps going while the reads stay in order, and the same block read again changes nothing", () => {
    assert.deepEqual(plans([0, 1, 2, 2, 3]).slice(3), [[3, 4, 5, 6, 7, 8, 9, 10], [4, 5, 6, 7, 8, 9, 10, 11]]);
  });

  test("readAhead() stops at a read out of order, and starts again only after three more in a row", () => {
    assert.deepEqual(plans([0, 1, 2, 50, 51, 52]).map((ahead) => ahead.length), [0, 0, 8, 0, 0, 8]);
    assert.deepEqual(plans([5, 1, 9, 3, 4, 12]), [[], [], [], [], [], []], "random reads: nothing ahead");
  });

  test("readAhead() never plans past the file's last block", () => {
    assert.deepEqual(plans([5, 6, 7], 10)[2], [8, 9]);
    assert.deepEqual(plans([7, 8, 9], 10)[2], []);
  });
});
