// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { unifiedDiff } from "../lib/diff.ts";

const LINES = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";
const at = (line: number) => LINES.indexOf(`line ${line}\n`);

describe("unifiedDiff()", () => {
  test("unifiedDiff() is empty when the edits change nothing", () => {
    assert.equal(unifiedDiff(LINES, []), "");
    assert.equal(unifiedDiff(LINES, [{ start: 3, end: 4, text: LINES[3] }]), "");
  });

  test("unifiedDiff() shows an insertion with three lines of context", () => {
    const edit = { start: at(6) - 1, end: at(6) - 1, text: "\nnew" };
    assert.equal(
      unifiedDiff(LINES, [edit]),
      "--- before\n+++ after\n@@ -3,6 +3,7 @@\n line 3\n line 4\n line 5\n+new\n line 6\n line 7\n line 8\n",
    );
  });

  test("unifiedDiff() shows a removal of a whole line with its line break, and only that line", () => {
    const edit = { start: at(10) - 1, end: at(11) - 1, text: "" };
    assert.equal(
      unifiedDiff(LINES, [edit]),
      "--- before\n+++ after\n@@ -7,7 +7,6 @@\n line 7\n line 8\n line 9\n-line 10\n line 11\n line 12\n line 13\n",
    );
  });

  test("unifiedDiff() joins changes whose context touches into one hunk, and splits far ones", () => {
    const near = [{ start: at(5), end: at(5) + 6, text: "LINE 5" }, { start: at(9), end: at(9) + 6, text: "LINE 9" }];
    assert.equal(unifiedDiff(LINES, near).match(/^@@/gm)?.length, 1);
    const far = [{ start: at(2), end: at(2) + 6, text: "LINE 2" }, { start: at(18), end: at(18) + 7, text: "LINE 18" }];
    const diff = unifiedDiff(LINES, far);
    assert.equal(diff.match(/^@@/gm)?.length, 2);
    assert.match(diff, /^@@ -15,6 \+15,6 @@$/m);
  });

  test("unifiedDiff() numbers the new side after earlier insertions", () => {
    const edits = [{ start: at(2), end: at(2), text: "a\nb\n" }, { start: at(15), end: at(15), text: "c\n" }];
    assert.match(unifiedDiff(LINES, edits), /^@@ -12,6 \+14,7 @@$/m);
  });

  test("unifiedDiff() stays linear on 100,000 changed lines (the LCS table it replaced was quadratic)", () => {
    const big = "<a/>\n".repeat(100_000);
    const edits = Array.from({ length: 100_000 }, (_, i) => ({ start: i * 5 + 1, end: i * 5 + 2, text: "b" }));
    assert.equal(unifiedDiff(big, edits).split("\n").filter((line) => line.startsWith("+<b/>")).length, 100_000);
  });
});
