// SPDX-License-Identifier: GPL-2.0-or-later
/** The assertions the JSDoc examples rely on must fail when they should, or every doc test passes. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { assertEquals, assertThrows } from "../lib/_assert.ts";
import { UrlError } from "../lib/errors.ts";

describe("lib/_assert.ts", () => {
  test("assertEquals() passes equal values and throws on any difference, nested or in order", () => {
    assertEquals({ a: [1, "x"] }, { a: [1, "x"] });
    for (const [actual, expected] of [[1, 2], [[1, 2], [2, 1]], [{ a: 1 }, { a: "1" }], [undefined, null]] as const) {
      assert.throws(() => assertEquals(actual, expected), /^Error: assertEquals: /);
    }
  });

  test("assertThrows() passes only when the function throws the kind named", () => {
    assertThrows(() => {
      throw new UrlError("bad");
    }, UrlError);
    assert.throws(() => assertThrows(() => undefined, UrlError), /nothing was thrown/);
    assert.throws(() =>
      assertThrows(() => {
        throw new TypeError("bug");
      }, UrlError), /expected UrlError, got TypeError: bug/);
  });
});
