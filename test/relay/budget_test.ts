// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { budgetProblem, cacheBudget, relayReservation } from "../../lib/relay/budget.ts";
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
    assert.equal(budgetProblem({ uuid: "a", bytes: GiB }, others, 0, 3 * GiB, "x"), undefined);
    assert.equal(
      budgetProblem({ uuid: "a", bytes: GiB + 1 }, others, 0, 3 * GiB, "relay_cache_total (in f)"),
      "the relay of VM a would take the relays' caches on this host to 3072 MiB, beyond relay_cache_total (in f), " +
        "3072 MiB; 2 running relays hold 2048 MiB. Lower relay_cache_size, raise relay_cache_total, or free disk",
    );
  });

  test("budgetProblem() counts the shared block cache once, and names it", () => {
    const others = [{ uuid: "b", bytes: GiB }];
    assert.equal(budgetProblem({ uuid: "a", bytes: GiB }, others, GiB, 3 * GiB, "x"), undefined);
    assert.equal(
      budgetProblem({ uuid: "a", bytes: GiB }, others, GiB + 1, 3 * GiB, "relay_cache_total (in f)"),
      "the relay of VM a would take the relays' caches on this host to 3072 MiB, beyond relay_cache_total (in f), " +
        "3072 MiB; 1 running relay holds 1024 MiB and the shared block cache 1024 MiB (relay_shared_cache). " +
        "Lower relay_cache_size or relay_shared_cache, raise relay_cache_total, or free disk",
    );
  });

  test("relayReservation() is the nbdkit cache and the front's private blocks", () => {
    assert.equal(
      relayReservation({ cacheSize: GiB, readaheadBlocks: 0 }),
      GiB + (RELAY_FRONT_BLOCKS + RELAY_PARALLEL_GETS) * 2 ** 20,
    );
  });

  test("budgetProblem() does not count a relay's own earlier reservation against it", () => {
    assert.equal(budgetProblem({ uuid: "a", bytes: GiB }, [{ uuid: "a", bytes: GiB }], 0, GiB, "x"), undefined);
  });
});
