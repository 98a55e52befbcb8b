// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A unified diff of a change made as splices (xml/edit.ts), for
 * `--dry-run --diff`. It is built from the splices, not by comparing the two
 * texts, so its cost is linear in the text whatever the change looks like.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { applyEdits, type Edit, sortEdits } from "./xml/edit.ts";

/** Lines removed from the old text at `oldStart` (0-based) and the lines put there instead. */
interface Change {
  oldStart: number;
  oldLines: string[];
  newLines: string[];
}

/**
 * Returns a unified diff (`diff -u` format) of what `edits` do to `before`,
 * or an empty string when they change nothing.
 *
 * @param before The original text.
 * @param edits The splices applied to it.
 * @param options The names in the `---` and `+++` lines, and lines of context (3).
 * @returns The diff text, ending with a newline when not empty.
 * @example
 * ```ts
 * import { unifiedDiff } from "./diff.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(
 *   unifiedDiff("a\nb\n", [{ start: 2, end: 3, text: "c" }], { fromName: "old", toName: "new" }),
 *   "--- old\n+++ new\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n",
 * );
 * ```
 */
export function unifiedDiff(
  before: string,
  edits: readonly Edit[],
  options: { fromName?: string; toName?: string; context?: number } = {},
): string {
  const context = options.context ?? 3;
  const lines = splitLines(before);
  const changes = findChanges(before, edits);
  if (changes.length === 0) return "";
  const out = [`--- ${options.fromName ?? "before"}`, `+++ ${options.toName ?? "after"}`];
  let delta = 0;
  for (const hunk of groupHunks(changes, context)) {
    const first = hunk[0];
    const last = hunk.at(-1)!;
    const from = Math.max(0, first.oldStart - context);
    const to = Math.min(lines.length, last.oldStart + last.oldLines.length + context);
    const body: string[] = [];
    let at = from;
    let added = 0;
    for (const change of hunk) {
      for (; at < change.oldStart; at++) body.push(` ${lines[at]}`);
      for (const line of change.oldLines) body.push(`-${line}`);
      for (const line of change.newLines) body.push(`+${line}`);
      at += change.oldLines.length;
      added += change.newLines.length - change.oldLines.length;
    }
    for (; at < to; at++) body.push(` ${lines[at]}`);
    out.push(`@@ -${range(from + 1, to - from)} +${range(from + 1 + delta, to - from + added)} @@`);
    for (const line of body) out.push(line); // not push(...body): a hunk can hold more lines than a call takes arguments
    delta += added;
  }
  return out.join("\n") + "\n";
}

/** Each run of edits on shared lines becomes one change, trimmed to the lines that differ. */
function findChanges(before: string, edits: readonly Edit[]): Change[] {
  const starts = lineStarts(before);
  const changes: Change[] = [];
  const sorted = sortEdits(edits);
  for (let i = 0; i < sorted.length;) {
    const first = lineAt(starts, sorted[i].start);
    let last = lineAt(starts, Math.max(sorted[i].start, sorted[i].end - 1));
    const group: Edit[] = [];
    for (; i < sorted.length && lineAt(starts, sorted[i].start) <= last; i++) {
      group.push(sorted[i]);
      last = Math.max(last, lineAt(starts, Math.max(sorted[i].start, sorted[i].end - 1)));
    }
    const regionStart = starts[first];
    const regionEnd = last + 1 < starts.length ? starts[last + 1] : before.length;
    const shifted = group.map((edit) => ({ ...edit, start: edit.start - regionStart, end: edit.end - regionStart }));
    const region = before.slice(regionStart, regionEnd);
    const change = trim(first, splitLines(region), splitLines(applyEdits(region, shifted)));
    if (change) changes.push(change);
  }
  return changes;
}

/** Drops the lines a change leaves as they were, at both ends. */
function trim(oldStart: number, oldLines: string[], newLines: string[]): Change | undefined {
  let head = 0;
  while (head < oldLines.length && head < newLines.length && oldLines[head] === newLines[head]) head++;
  let tail = 0;
  while (
    tail < oldLines.length - head && tail < newLines.length - head &&
    oldLines[oldLines.length - 1 - tail] === newLines[newLines.length - 1 - tail]
  ) tail++;
  const removed = oldLines.slice(head, oldLines.length - tail);
  const added = newLines.slice(head, newLines.length - tail);
  return removed.length + added.length === 0
    ? undefined
    : { oldStart: oldStart + head, oldLines: removed, newLines: added };
}

/** Changes whose context would touch go into one hunk. */
function groupHunks(changes: Change[], context: number): Change[][] {
  const hunks: Change[][] = [];
  for (const change of changes) {
    const previous = hunks.at(-1)?.at(-1);
    if (previous && change.oldStart - (previous.oldStart + previous.oldLines.length) <= 2 * context) {
      hunks.at(-1)!.push(change);
    } else hunks.push([change]);
  }
  return hunks;
}

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let at = text.indexOf("\n"); at >= 0 && at + 1 < text.length; at = text.indexOf("\n", at + 1)) {
    starts.push(at + 1);
  }
  return starts;
}

/** The 0-based line holding `offset`, by binary search. */
function lineAt(starts: number[], offset: number): number {
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (starts[middle] <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

function range(start: number, count: number): string {
  return count === 1 ? `${start}` : `${count === 0 ? start - 1 : start},${count}`;
}
