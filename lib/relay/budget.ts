// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host's budget for the relays' caches. Each relay's cache is bounded
 * by `relay_cache_size`, and all of them together by `relay_cache_total`:
 * bytes, or a share of the space the cache file system has free when the
 * relay starts (50 % unless set). A relay reserves its whole
 * `relay_cache_size` while its config exists; one that would take the sum
 * past the budget is refused before the VM starts, so twenty VMs on one ISO
 * server never fill the host's disk.
 *
 * This module is pure: it does arithmetic on what control.ts read.
 *
 * @module
 */
import { RELAY_BLOCK_BYTES, RELAY_FRONT_BLOCKS } from "../limits.ts";
import { RELAY_PARALLEL_GETS } from "./readahead.ts";

/** `relay_cache_total`: bytes, or a percentage of the cache file system's free space. */
export type CacheTotal = { bytes: number } | { percent: number };

/** What one relay of the host holds: its VM and its relay_cache_size. */
export interface Reservation {
  uuid: string;
  bytes: number;
}

/**
 * The budget in bytes, given the space the cache file system has free.
 *
 * @example
 * ```ts
 * import { cacheBudget } from "./budget.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(cacheBudget({ percent: 50 }, 80 * 2 ** 30), 40 * 2 ** 30);
 * assertEquals(cacheBudget({ bytes: 2 ** 30 }, 80 * 2 ** 30), 2 ** 30);
 * ```
 */
export function cacheBudget(total: CacheTotal, freeBytes: number): number {
  return "bytes" in total ? total.bytes : Math.floor((freeBytes * total.percent) / 100);
}

/**
 * Why a relay that reserves `mine` cannot start beside `others` under
 * `budget`; undefined when it can. A relay's own earlier reservation (a
 * restart) is not counted twice. The shared block cache never refuses a
 * VM: it takes what is left (sharedBound).
 *
 * @param how What the budget is, for the message: "relay_cache_total (… in FILE)".
 * @example
 * ```ts
 * import { budgetProblem } from "./budget.ts";
 * import { assertEquals } from "../_assert.ts";
 * const others = [{ uuid: "b", bytes: 3 * 2 ** 30 }];
 * assertEquals(budgetProblem({ uuid: "a", bytes: 2 ** 30 }, others, 4 * 2 ** 30, "x"), undefined);
 * assertEquals(budgetProblem({ uuid: "a", bytes: 2 * 2 ** 30 }, others, 4 * 2 ** 30, "x")?.startsWith("the relay of VM a would"), true);
 * ```
 */
export function budgetProblem(
  mine: Reservation,
  others: Reservation[],
  budget: number,
  how: string,
): string | undefined {
  const held = others.filter((other) => other.uuid !== mine.uuid);
  const reserved = held.reduce((sum, other) => sum + other.bytes, 0);
  if (reserved + mine.bytes <= budget) return undefined;
  return `the relay of VM ${mine.uuid} would take the relays' caches on this host to ${mib(reserved + mine.bytes)}, ` +
    `beyond ${how}, ${mib(budget)}; ${held.length} running relay${held.length === 1 ? " holds" : "s hold"} ${
      mib(reserved)
    }. Lower relay_cache_size, raise relay_cache_total, or free disk`;
}

/** The least room worth a shared cache: 16 MiB; below it a relay keeps its blocks to itself. */
export const MIN_SHARED_BYTES = 16 * 2 ** 20;

/**
 * How much the host's shared block cache may hold for a relay that starts
 * now: relay_shared_cache, or what the budget has left beside every relay's
 * reservation, whichever is less; 0 (no sharing) when that is under
 * MIN_SHARED_BYTES. A relay that starts later with less room evicts the
 * cache down to its own bound (store.ts), so the whole stays in the budget.
 *
 * @example
 * ```ts
 * import { sharedBound } from "./budget.ts";
 * import { assertEquals } from "../_assert.ts";
 * const GiB = 2 ** 30;
 * assertEquals(sharedBound(4 * GiB, { uuid: "a", bytes: GiB }, [], 10 * GiB), 4 * GiB);
 * assertEquals(sharedBound(4 * GiB, { uuid: "a", bytes: GiB }, [{ uuid: "b", bytes: GiB }], 5 * GiB), 3 * GiB);
 * assertEquals(sharedBound(4 * GiB, { uuid: "a", bytes: GiB }, [], GiB), 0);
 * ```
 */
export function sharedBound(wanted: number, mine: Reservation, others: Reservation[], budget: number): number {
  const reserved = others.filter((other) => other.uuid !== mine.uuid).reduce((sum, other) => sum + other.bytes, 0);
  const room = budget - reserved - mine.bytes;
  return room < MIN_SHARED_BYTES ? 0 : Math.min(wanted, room);
}

/**
 * What one relay reserves on disk: its nbdkit cache (relay_cache_size), and
 * the blocks its front keeps of a file it cannot share: the read-ahead
 * window and the blocks just served (store.ts).
 *
 * @example
 * ```ts
 * import { relayReservation } from "./budget.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(relayReservation({ cacheSize: 2 ** 30, readaheadBlocks: 32 }), 2 ** 30 + 50 * 2 ** 20);
 * ```
 */
export function relayReservation(config: { cacheSize: number; readaheadBlocks: number }): number {
  return config.cacheSize + (config.readaheadBlocks + RELAY_FRONT_BLOCKS + RELAY_PARALLEL_GETS) * RELAY_BLOCK_BYTES;
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 2 ** 20)} MiB`;
}
