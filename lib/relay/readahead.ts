// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * When the relay's front reads ahead. A guest that reads the ISO in order
 * (an installer copying packages) would otherwise pay one round trip to
 * the server per 1 MiB block, since nbdkit's curl plugin asks one request
 * at a time: at 100 ms that is 10 MB/s whatever the link. Once the guest
 * has read more than a block's worth in order, each read starting where the
 * last ended, the front fetches the next blocks over parallel connections:
 * twice as many as the guest has read in order, RELAY_READAHEAD_START at
 * least and the relay's depth at most (as Linux's own readahead window
 * grows with what was read), so that a run in order that stops costs at most
 * about twice what it read, past its end; a read elsewhere stops it, so
 * random reads (a boot loader's, 64 KiB here and there) cost no GET more
 * than they did.
 *
 * In order means in bytes, not in blocks: a read of the first 64 KiB of
 * each block in turn is not a file read in order. A read of bytes the run
 * has already covered (nbdkit asking again after a failure) neither breaks
 * it nor adds to it.
 *
 * This module is pure: it plans, the front fetches.
 *
 * @module
 */
import { RELAY_BLOCK_BYTES } from "../limits.ts";

/** What the front remembers of the guest's reads: where the run in order began, where it ends, and its last block. */
export interface ReadAheadState {
  /** The first byte of the run of reads in order. */
  from?: number;
  /** The byte after the run's last. */
  next?: number;
  /** The block of the last read. */
  last?: number;
}

/**
 * Bytes read in order before the front reads ahead: more than one block's
 * worth, 1 MiB. The guest has read a whole block in order and gone on into
 * the next, which a file read in order does and random reads do not. It was
 * three blocks in a row, of whatever was read in them: a file of 1 to 3 MiB
 * was never read ahead, and a long one paid two round trips more first.
 */
export const RELAY_READAHEAD_TRIGGER_BYTES = RELAY_BLOCK_BYTES;

/**
 * Blocks fetched ahead at least, once the reads in order start: 8. Each
 * step of a window that grows waits for the blocks of the one before: at
 * 100 ms of round trip each costs 0.1 s. Read from 2 ahead, the bench's
 * 512 MiB read in order went at 43.3 and 45.1 MB/s; from 8, at 44.3 to 46.5
 * (four runs). A run in order that stops at once costs at most 8 MiB of GETs.
 */
export const RELAY_READAHEAD_START = 8;

/**
 * How many times what the guest has read in order the window may be: 2.
 * Doubled with each block read instead, a 4 MiB read in order had 32 MiB
 * fetched past it, and against a server that sends past each answer every
 * one of those GETs is one more connection to drop: the bench's 4 MiB read
 * against one took the front 0.77 s of CPU, 0.29–0.39 s with the window
 * grown this way (the release before, which began a block later: 0.52 s).
 */
export const RELAY_READAHEAD_GROWTH = 2;

/**
 * Blocks a front reads ahead when its relay names no depth: 8 (8 MiB), held
 * in memory by a front with no store on disk (the tests'). A relay reads
 * `relay_readahead` ahead (32 MiB unless set), and keeps those blocks on
 * disk (store.ts).
 */
export const RELAY_READAHEAD_BLOCKS = 8;

/**
 * GETs one relay has in flight at once, reads and read-ahead together: 14,
 * each on its own connection. A 1 MiB GET at 100 ms of round trip takes
 * 0.12 s on a 400 Mbit/s link, so 4 in flight read 21 MB/s; 14 keep 14 MiB
 * in flight, more than that link's bandwidth-delay product (5 MB). Each
 * costs the front memory while it streams: in the relay test's 256 MiB
 * read, 16 peaked at 95–99 MiB of RSS (and once past 100 in the whole
 * suite), 14 at 92–93, 12 at 87–92; in the bench's 512 MiB read at 100 ms,
 * 16 went at 42.9–46.7 MB/s, 14 at 45.6–46.2, 12 at 42.1–42.7. The host's
 * relay_host_connections bounds all relays' together.
 */
export const RELAY_PARALLEL_GETS = 14;

/**
 * The state after the guest reads bytes `start` to `end`, and, when that read
 * reaches another block than the last one did, the blocks to fetch ahead of
 * it, nearest first (those the front holds already are for it to skip): an
 * empty list stops the read-ahead; undefined, a read within the same block,
 * changes nothing.
 *
 * @param state What came before.
 * @param read The bytes the guest reads now, first and last.
 * @param blocks How many blocks the file has.
 * @param depth How many blocks to read ahead: the relay's relay_readahead; 0 for none.
 * @example
 * ```ts
 * import { readAhead, type ReadAheadState } from "./readahead.ts";
 * import { assertEquals } from "../_assert.ts";
 * const MiB = 1 << 20;
 * let state: ReadAheadState = {};
 * for (let at = 0; at < MiB; at += 65536) state = readAhead(state, { start: at, end: at + 65535 }, 100).state;
 * const next = readAhead(state, { start: MiB, end: MiB + 65535 }, 100);
 * assertEquals(next.ahead, [2, 3, 4, 5, 6, 7, 8, 9]);
 * assertEquals(readAhead(next.state, { start: MiB + 65536, end: MiB + 131071 }, 100).ahead, undefined);
 * assertEquals(readAhead(next.state, { start: 40 * MiB, end: 40 * MiB + 65535 }, 100).ahead, []);
 * assertEquals(readAhead({}, { start: 0, end: 65535 }, 100).ahead, []);
 * ```
 */
export function readAhead(
  state: ReadAheadState,
  read: { start: number; end: number },
  blocks: number,
  depth = RELAY_READAHEAD_BLOCKS,
): { state: ReadAheadState; ahead: number[] | undefined } {
  const index = Math.floor(read.start / RELAY_BLOCK_BYTES);
  const inRun = state.from !== undefined && state.next !== undefined && read.start >= state.from &&
    read.start <= state.next;
  const from = inRun ? state.from! : read.start;
  const next = inRun ? Math.max(state.next!, read.end + 1) : read.end + 1;
  const after = { from, next, last: index };
  if (index === state.last) return { state: after, ahead: undefined };
  const inOrder = next - from;
  if (inOrder <= RELAY_READAHEAD_TRIGGER_BYTES || depth === 0) return { state: after, ahead: [] };
  const grown = RELAY_READAHEAD_GROWTH * Math.floor(inOrder / RELAY_BLOCK_BYTES);
  const window = Math.min(depth, Math.max(RELAY_READAHEAD_START, grown));
  const last = Math.min(index + window, blocks - 1);
  return { state: after, ahead: Array.from({ length: Math.max(0, last - index) }, (_, i) => index + 1 + i) };
}
