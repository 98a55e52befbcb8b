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
 * Why a relay that reserves `mine` cannot start beside `others` and the
 * host's shared block cache (`shared` bytes, relay_shared_cache) under
 * `budget`; undefined when it can. A relay's own earlier reservation (a
 * restart) is not counted twice.
 *
 * @param how What the budget is, for the message: "relay_cache_total (… in FILE)".
 * @example
 * ```ts
 * import { budgetProblem } from "./budget.ts";
 * import { assertEquals } from "../_assert.ts";
 * const others = [{ uuid: "b", bytes: 3 * 2 ** 30 }];
 * assertEquals(budgetProblem({ uuid: "a", bytes: 2 ** 30 }, others, 0, 4 * 2 ** 30, "x"), undefined);
 * assertEquals(budgetProblem({ uuid: "a", bytes: 2 * 2 ** 30 }, others, 0, 4 * 2 ** 30, "x")?.startsWith("the relay of VM a would"), true);
 * assertEquals(budgetProblem({ uuid: "a", bytes: 2 ** 30 }, others, 2 ** 30, 4 * 2 ** 30, "x")?.includes("the shared block cache 1024 MiB"), true);
 * ```
 */
export function budgetProblem(
  mine: Reservation,
  others: Reservation[],
  shared: number,
  budget: number,
  how: string,
): string | undefined {
  const held = others.filter((other) => other.uuid !== mine.uuid);
  const reserved = held.reduce((sum, other) => sum + other.bytes, 0);
  if (reserved + shared + mine.bytes <= budget) return undefined;
  const sharedPart = shared > 0 ? ` and the shared block cache ${mib(shared)} (relay_shared_cache)` : "";
  return `the relay of VM ${mine.uuid} would take the relays' caches on this host to ${
    mib(reserved + shared + mine.bytes)
  }, beyond ${how}, ${mib(budget)}; ${held.length} running relay${held.length === 1 ? " holds" : "s hold"} ${
    mib(reserved)
  }${sharedPart}. Lower relay_cache_size${
    shared > 0 ? " or relay_shared_cache" : ""
  }, raise relay_cache_total, or free disk`;
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
 * assertEquals(relayReservation({ cacheSize: 2 ** 30, readaheadBlocks: 32 }), 2 ** 30 + 52 * 2 ** 20);
 * ```
 */
export function relayReservation(config: { cacheSize: number; readaheadBlocks: number }): number {
  return config.cacheSize + (config.readaheadBlocks + RELAY_FRONT_BLOCKS + RELAY_PARALLEL_GETS) * RELAY_BLOCK_BYTES;
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 2 ** 20)} MiB`;
}
