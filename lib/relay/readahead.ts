// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * When the relay's front reads ahead. A guest that reads the ISO in order
 * (an installer copying packages) would otherwise pay one round trip to
 * the server per 1 MiB block, since nbdkit's curl plugin asks one request
 * at a time: at 100 ms that is 10 MB/s whatever the link. Once the guest
 * has asked for RELAY_READAHEAD_TRIGGER blocks in a row, the front fetches
 * the next blocks over parallel connections, RELAY_READAHEAD_START at
 * first, twice as many with each block the guest reads on in order, up to
 * the relay's depth (as Linux's own readahead window grows), so that a short
 * run in order costs little past its end; a read that is not the next block
 * stops it, so random reads (a boot loader's) cost no GET more than they did.
 *
 * This module is pure: it plans, the front fetches.
 *
 * @module
 */

/** What the front remembers of the guest's reads: the last block asked for, and how many came in order before it. */
export interface ReadAheadState {
  last?: number;
  run: number;
}

/** Blocks asked for in a row, one after another, before the front reads ahead: 3. */
export const RELAY_READAHEAD_TRIGGER = 3;

/**
 * Blocks fetched ahead at once when the reads in order start: 8. The window
 * grows by one step per block the guest reads, and each step waits for the
 * blocks of the one before: at 100 ms of round trip each costs 0.1 s. Read
 * from 2 ahead, the bench's 512 MiB read in order went at 43.3 and 45.1 MB/s;
 * from 8, at 44.3 to 46.5 (four runs). A run in order that stops at once
 * costs at most 8 MiB of GETs.
 */
export const RELAY_READAHEAD_START = 8;

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
 * The state after the guest asks for `index`, and the blocks to fetch ahead
 * of it, nearest first (those the front holds already are for it to skip).
 *
 * @param state What came before.
 * @param index The block the guest asks for now.
 * @param blocks How many blocks the file has.
 * @param depth How many blocks to read ahead: the relay's relay_readahead; 0 for none.
 * @example
 * ```ts
 * import { readAhead } from "./readahead.ts";
 * import { assertEquals } from "../_assert.ts";
 * let state = { run: 0 } as { last?: number; run: number };
 * for (const index of [0, 1]) state = readAhead(state, index, 100).state;
 * assertEquals(readAhead(state, 2, 100).ahead, [3, 4, 5, 6, 7, 8, 9, 10]);
 * assertEquals(readAhead({ last: 9, run: 3 }, 10, 100, 32).ahead.length, 16);
 * assertEquals(readAhead(readAhead(state, 2, 100).state, 40, 100).ahead, []);
 * assertEquals(readAhead({ last: 97, run: 9 }, 98, 100).ahead, [99]);
 * ```
 */
export function readAhead(state: ReadAheadState, index: number, blocks: number, depth = RELAY_READAHEAD_BLOCKS): {
  state: ReadAheadState;
  ahead: number[];
} {
  const run = index === state.last ? state.run : index === (state.last ?? -2) + 1 ? state.run + 1 : 1;
  const next = { last: index, run };
  if (run < RELAY_READAHEAD_TRIGGER || depth === 0) return { state: next, ahead: [] };
  const window = Math.min(depth, RELAY_READAHEAD_START * 2 ** Math.min(run - RELAY_READAHEAD_TRIGGER, 16));
  const last = Math.min(index + window, blocks - 1);
  return { state: next, ahead: Array.from({ length: Math.max(0, last - index) }, (_, i) => index + 1 + i) };
}
