/**
 * The one assertion the JSDoc examples use, so that `deno test --doc` runs
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
