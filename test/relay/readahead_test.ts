// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  readAhead,
  type ReadAheadState,
  RELAY_READAHEAD_BLOCKS,
  RELAY_READAHEAD_GROWTH,
  RELAY_READAHEAD_START,
  RELAY_READAHEAD_TRIGGER_BYTES,
} from "../../lib/relay/readahead.ts";
import { RELAY_BLOCK_BYTES } from "../../lib/limits.ts";

const MiB = RELAY_BLOCK_BYTES;
const PIECE = 64 * 1024;

/** The plans after each of `reads` ([start, end] in bytes), in a file of `blocks`, `depth` blocks deep at most. */
function plans(reads: Array<[number, number]>, blocks = 1000, depth = RELAY_READAHEAD_BLOCKS) {
  let state: ReadAheadState = {};
  return reads.map(([start, end]) => {
    const plan = readAhead(state, { start, end }, blocks, depth);
    state = plan.state;
    return plan.ahead;
  });
}

/** nbdkit's 64 KiB reads of blocks `first` to `last`, whole and in order. */
function inOrder(first: number, last: number): Array<[number, number]> {
  const reads: Array<[number, number]> = [];
  for (let at = first * MiB; at < (last + 1) * MiB; at += PIECE) reads.push([at, at + PIECE - 1]);
  return reads;
}

/** The plan made as the reads reach each block (a read within a block plans nothing: undefined). */
function atEachBlock(ahead: Array<number[] | undefined>): Array<number[]> {
  return ahead.filter((plan): plan is number[] => plan !== undefined);
}

describe("readAhead()", () => {
  test("readAhead() starts once the guest has read more than a block in order, 8 ahead, then twice what it has read, to the depth", () => {
    assert.equal(RELAY_READAHEAD_TRIGGER_BYTES, MiB);
    assert.deepEqual([RELAY_READAHEAD_START, RELAY_READAHEAD_GROWTH], [8, 2]);
    const made = atEachBlock(plans(inOrder(10, 15), 1000, 32));
    assert.deepEqual(made.map((ahead) => ahead.length), [0, 8, 8, 8, 8, 10]);
    assert.deepEqual(made[1], [12, 13, 14, 15, 16, 17, 18, 19], "from the block after the one read");
    const long = atEachBlock(plans(inOrder(0, 20), 1000, 32)).map((ahead) => ahead.length);
    assert.deepEqual(
      [long[15], long[16], long[20]],
      [30, 32, 32],
      "twice the 15 and the 16 blocks read, then the depth",
    );
    assert.equal(
      Math.max(...atEachBlock(plans(inOrder(0, 49))).map((ahead) => ahead.length)),
      RELAY_READAHEAD_BLOCKS,
      "the default depth",
    );
  });

  test("readAhead() plans nothing for a read within the block it reached, and a read of bytes the run covered (nbdkit asking again) keeps the run", () => {
    const reads = inOrder(0, 1);
    assert.deepEqual(plans(reads).filter((ahead) => ahead === undefined).length, reads.length - 2);
    // The last piece of block 1 asked again after a failure, then block 2.
    const retried = plans([...reads, [2 * MiB - PIECE, 2 * MiB - 1], [2 * MiB, 2 * MiB + PIECE - 1]], 1000, 32);
    assert.deepEqual(retried.at(-2), undefined);
    assert.equal(
      retried.at(-1)!.length,
      8,
      "the run goes on: two blocks and more in order (a new one would plan nothing)",
    );
  });

  test("readAhead() stops at a read elsewhere, and starts again only after more than a block in order there", () => {
    const made = atEachBlock(plans([...inOrder(0, 3), ...inOrder(50, 52)], 1000, 32));
    assert.deepEqual(made.map((ahead) => ahead.length), [0, 8, 8, 8, 0, 8, 8]);
  });

  test("readAhead() reads nothing ahead of random reads, nor of the first 64 KiB of each block in turn", () => {
    const firstPieces = (indices: number[]) =>
      indices.map((index): [number, number] => [index * MiB, index * MiB + PIECE - 1]);
    assert.deepEqual(plans(firstPieces([5, 1, 9, 3, 4, 12])), [[], [], [], [], [], []]);
    assert.deepEqual(plans(firstPieces([0, 1, 2, 3, 4, 5])), [[], [], [], [], [], []], "adjacent blocks, not in order");
    // A boot loader's 2 KiB reads, a block's worth apart from each other.
    assert.deepEqual(atEachBlock(plans([[0, 2047], [MiB + 4096, MiB + 6143], [2 * MiB, 2 * MiB + 2047]])), [
      [],
      [],
      [],
    ]);
  });

  test("readAhead() counts a run that starts within a block once it is more than a block long", () => {
    const half = MiB / 2;
    const reads: Array<[number, number]> = [];
    for (let at = half; at < 3 * MiB; at += PIECE) reads.push([at, at + PIECE - 1]);
    assert.deepEqual(atEachBlock(plans(reads)).map((ahead) => ahead.length), [0, 0, 8]);
  });

  test("readAhead() never plans past twice what was read in order, or 8 blocks: a run that stops costs that much at most", () => {
    for (const blocks of [2, 4, 9, 13]) {
      const furthest = Math.max(...atEachBlock(plans(inOrder(0, blocks - 1), 1000, 32)).flat());
      assert.ok(
        furthest <= blocks - 1 + Math.max(8, 2 * blocks),
        `${blocks} blocks read: planned to block ${furthest}`,
      );
    }
  });

  test("readAhead() with a depth of 0 (relay_readahead = 0) never reads ahead", () => {
    assert.deepEqual(atEachBlock(plans(inOrder(0, 5), 100, 0)).flat(), []);
  });

  test("readAhead() never plans past the file's last block", () => {
    assert.deepEqual(atEachBlock(plans(inOrder(6, 8), 10)).at(-1), [9]);
    assert.deepEqual(atEachBlock(plans(inOrder(7, 9), 10)).at(-1), []);
  });
});
