// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Near misses: the word an admin most likely meant, for "did you mean"
 * hints on a URL scheme or a settings key.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/** Levenshtein distance, for short words such as a URL scheme or a settings key. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/**
 * The one candidate within two edits of `word`, the nearest; undefined when
 * none is, or when two are equally near (a guess would then mislead).
 *
 * @example
 * ```ts
 * import { nearest } from "./spelling.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(nearest("alow", ["timeout", "allow", "relay"]), "allow");
 * assertEquals(nearest("proxy", ["timeout", "allow", "relay"]), undefined);
 * ```
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const ranked = candidates.map((candidate) => ({ candidate, distance: editDistance(word, candidate) }))
    .filter(({ distance }) => distance <= 2)
    .sort((a, b) => a.distance - b.distance);
  if (ranked.length === 0 || ranked[1]?.distance === ranked[0].distance) return undefined;
  return ranked[0].candidate;
}
