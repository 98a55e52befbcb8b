// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { lockFileName, tempFileName } from "../lib/paths.ts";

describe("file names beside a domain", () => {
  test("lockFileName() is 35 characters whatever the domain file's name, so a 254-character name still fits", () => {
    for (const name of ["domxml", "tmpa8x2_k", "d".repeat(254), "é".repeat(127)]) {
      const lock = lockFileName(name);
      assert.equal(lock.length, 35, name);
      assert.match(lock, /^\.httpsisoboot-[0-9a-f]{16}\.lock$/);
    }
  });

  test("lockFileName() is the same for one name and differs between names", () => {
    assert.equal(lockFileName("tmpa8x2_k"), lockFileName("tmpa8x2_k"));
    const names = Array.from({ length: 1000 }, (_, i) => `tmp${i.toString(36)}`);
    assert.equal(new Set(names.map(lockFileName)).size, names.length);
  });

  test("tempFileName() holds only the random part and never the domain's name", () => {
    assert.equal(tempFileName("00ff".repeat(6)), ".httpsisoboot-00ff00ff00ff00ff00ff00ff.tmp");
  });
});
