// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { concat } from "../lib/bytes.ts";

describe("concat()", () => {
  test("concat() joins chunks in order, whatever their sizes", () => {
    const joined = concat([Uint8Array.of(1, 2), new Uint8Array(0), Uint8Array.of(3), Uint8Array.of(4, 5, 6)]);
    assert.deepEqual([...joined], [1, 2, 3, 4, 5, 6]);
  });
  test("concat() of nothing is empty", () => {
    assert.equal(concat([]).length, 0);
  });
  test("concat() copies: changing a chunk afterwards leaves the result alone", () => {
    const chunk = Uint8Array.of(7, 8);
    const joined = concat([chunk]);
    chunk[0] = 0;
    assert.deepEqual([...joined], [7, 8]);
  });
});
