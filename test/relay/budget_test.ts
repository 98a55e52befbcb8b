// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { budgetProblem, cacheBudget } from "../../lib/relay/budget.ts";

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

  test("budgetProblem() does not count a relay's own earlier reservation against it", () => {
    assert.equal(budgetProblem({ uuid: "a", bytes: GiB }, [{ uuid: "a", bytes: GiB }], GiB, "x"), undefined);
  });
});
