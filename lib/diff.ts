/**
 * A unified diff of two texts, line by line, for `--dry-run --diff`.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/**
 * Returns a unified diff (`diff -u` format, 3 lines of context) from `before`
 * to `after`, or an empty string when they are equal.
 *
 * @param before The original text.
 * @param after The new text.
 * @param options The names shown in the `---` and `+++` header lines.
 * @returns The diff text, ending with a newline when not empty.
 * @example
 * ```ts
 * import { unifiedDiff } from "./diff.ts";
 * unifiedDiff("a\nb\n", "a\nc\n", { fromName: "old", toName: "new" });
 * // "--- old\n+++ new\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
 * ```
 */
export function unifiedDiff(
  before: string,
  after: string,
  options: { fromName?: string; toName?: string; context?: number } = {},
): string {
  if (before === after) return "";
  const a = splitLines(before);
  const b = splitLines(after);
  const context = options.context ?? 3;
  const edits = diffLines(a, b);

  const out = [`--- ${options.fromName ?? "before"}`, `+++ ${options.toName ?? "after"}`];
  let i = 0;
  while (i < edits.length) {
    if (edits[i].kind === " ") {
      i++;
      continue;
    }
    // Grow a hunk from this change until `2 * context` unchanged lines separate it from the next.
    let start = i;
    let back = 0;
    while (start > 0 && back < context && edits[start - 1].kind === " ") {
      start--;
      back++;
    }
    let end = i;
    let quiet = 0;
    while (end < edits.length && quiet <= 2 * context) {
      quiet = edits[end].kind === " " ? quiet + 1 : 0;
      end++;
    }
    end -= Math.max(0, quiet - context);
    const hunk = edits.slice(start, end);
    const aStart = edits[start].aLine;
    const bStart = edits[start].bLine;
    const aCount = hunk.filter((e) => e.kind !== "+").length;
    const bCount = hunk.filter((e) => e.kind !== "-").length;
    out.push(`@@ -${range(aStart, aCount)} +${range(bStart, bCount)} @@`);
    for (const edit of hunk) out.push(edit.kind + edit.text);
    i = end;
  }
  return out.join("\n") + "\n";
}

interface Edit {
  kind: " " | "-" | "+";
  text: string;
  aLine: number;
  bLine: number;
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

function range(start: number, count: number): string {
  return count === 1 ? `${start}` : `${count === 0 ? start - 1 : start},${count}`;
}

/**
 * Line edits by longest common subsequence, after trimming the common head
 * and tail; the hook's changes touch a few lines, so the middle stays small.
 */
function diffLines(a: string[], b: string[]): Edit[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;

  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const lcs: number[][] = Array.from({ length: midA.length + 1 }, () => new Array(midB.length + 1).fill(0));
  for (let i = midA.length - 1; i >= 0; i--) {
    for (let j = midB.length - 1; j >= 0; j--) {
      lcs[i][j] = midA[i] === midB[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }

  const edits: Edit[] = [];
  let ai = 0;
  let bi = 0;
  const push = (kind: Edit["kind"], text: string) => edits.push({ kind, text, aLine: ai + 1, bLine: bi + 1 });
  for (; ai < head; ai++, bi++) push(" ", a[ai]);
  let i = 0;
  let j = 0;
  while (i < midA.length || j < midB.length) {
    if (i < midA.length && j < midB.length && midA[i] === midB[j]) {
      push(" ", midA[i]);
      i++, j++, ai++, bi++;
    } else if (i < midA.length && (j === midB.length || lcs[i + 1][j] >= lcs[i][j + 1])) {
      push("-", midA[i]);
      i++, ai++;
    } else {
      push("+", midB[j]);
      j++, bi++;
    }
  }
  for (let k = 0; k < tail; k++, ai++, bi++) push(" ", a[ai]);
  return edits;
}
