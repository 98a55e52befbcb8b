// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The assertions the JSDoc examples use, so that `deno test --doc` runs
 * them as tests without importing a test library into lib/.
 *
 * @module
 */

/** Throws unless `actual` and `expected` are deeply equal (JSON-wise). */
export function assertEquals(actual: unknown, expected: unknown): void {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) throw new Error(`assertEquals: ${a} !== ${b}`);
}

/** Throws unless `fn` throws an instance of `kind`. */
export function assertThrows(fn: () => unknown, kind: new (...args: never[]) => Error): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof kind) return;
    throw new Error(`assertThrows: expected ${kind.name}, got ${error}`);
  }
  throw new Error(`assertThrows: expected ${kind.name}, nothing was thrown`);
}
