// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { editDistance, nearest } from "../lib/spelling.ts";

describe("editDistance()", () => {
  const CASES: Array<[string, string, number]> = [
    ["https", "https", 0],
    ["htps", "https", 1],
    ["alow", "allow", 1],
    ["", "abc", 3],
    ["relay_readahed", "relay_readahead", 1],
  ];
  for (const [a, b, distance] of CASES) {
    test(`editDistance() counts ${distance} edits from '${a}' to '${b}'`, () => {
      assert.equal(editDistance(a, b), distance);
      assert.equal(editDistance(b, a), distance);
    });
  }
});

describe("nearest()", () => {
  const KEYS = ["timeout", "readahead", "relay_readahead", "allow", "relay"];
  test("nearest() names the one key within two edits", () => {
    assert.equal(nearest("alow", KEYS), "allow");
    assert.equal(nearest("timout", KEYS), "timeout");
  });
  test("nearest() names none when nothing is near", () => {
    assert.equal(nearest("proxy_url", KEYS), undefined);
  });
  test("nearest() names none when two are equally near", () => {
    assert.equal(nearest("ab", ["aa", "bb"]), undefined);
  });
});
