// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { budgetProblem, cacheBudget, MIN_SHARED_BYTES, relayReservation, sharedBound } from "../../lib/relay/budget.ts";
import { RELAY_FRONT_BLOCKS } from "../../lib/limits.ts";
import { RELAY_PARALLEL_GETS } from "../../lib/relay/readahead.ts";

const GiB = 2 ** 30;

describe("the relays' cache budget", () => {
  test("cacheBudget() is the bytes set, or the share of the free space", () => {
    assert.equal(cacheBudget({ bytes: 5 * GiB }, 1), 5 * GiB);
    assert.equal(cacheBudget({ percent: 50 }, 10 * GiB + 1), 5 * GiB);
    assert.equal(cacheBudget({ percent: 100 }, 7), 7);
  });

  test("budgetProblem() lets a relay fill the budget exactly, and no further", () => {
    const others = [{ uuid: "b", bytes: GiB }, { uuid: "c", bytes: GiB }];
    assert.equal(budgetProblem({ uuid: "a", bytes: GiB }, others, 3 * GiB, "x"), undefined);
    assert.equal(
      budgetProblem({ uuid: "a", bytes: GiB + 1 }, others, 3 * GiB, "relay_cache_total (in f)"),
      "the relay of VM a would take the relays' caches on this host to 3072 MiB, beyond relay_cache_total (in f), " +
        "3072 MiB; 2 running relays hold 2048 MiB. Lower relay_cache_size, raise relay_cache_total, or free disk",
    );
  });

  test("sharedBound() gives the shared cache what the relays leave of the budget, never a reason to refuse a VM", () => {
    const mine = { uuid: "a", bytes: GiB };
    assert.equal(sharedBound(4 * GiB, mine, [], 100 * GiB), 4 * GiB, "relay_shared_cache where there is room");
    assert.equal(sharedBound(4 * GiB, mine, [{ uuid: "b", bytes: GiB }], 4 * GiB), 2 * GiB, "what is left");
    assert.equal(sharedBound(4 * GiB, mine, [{ uuid: "a", bytes: GiB }], 3 * GiB), 2 * GiB, "its own counted once");
    assert.equal(sharedBound(4 * GiB, mine, [], GiB + MIN_SHARED_BYTES - 1), 0, "too little: no sharing");
    assert.equal(budgetProblem(mine, [], GiB, "x"), undefined, "a relay that fits starts, with no shared cache");
  });

  test("relayReservation() is the nbdkit cache and the front's private blocks", () => {
    assert.equal(
      relayReservation({ cacheSize: GiB, readaheadBlocks: 0 }),
      GiB + (RELAY_FRONT_BLOCKS + RELAY_PARALLEL_GETS) * 2 ** 20,
    );
  });

  test("budgetProblem() does not count a relay's own earlier reservation against it", () => {
    assert.equal(budgetProblem({ uuid: "a", bytes: GiB }, [{ uuid: "a", bytes: GiB }], GiB, "x"), undefined);
  });
});
