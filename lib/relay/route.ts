// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Where a relay asks for the ISO, and when it asks again: the pure
 * decisions of edge/relay/upstream.ts.
 *
 * A relay follows the URL's redirects once and then asks the URL they led
 * to (the target) directly, over its kept connections: a mirror manager
 * costs one redirect per relay, not one per block. It goes back to the URL
 * the VM was given only when the target fails in a way that asking again
 * may cure (an expired signature, a mirror gone or refusing), and takes the
 * new target only once it has proven it serves the same file: the same
 * size, and the same validator or the same bytes for a range the relay has
 * already read.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import type { Validator } from "./http.ts";

/** How a request to the target failed. */
export type Failure =
  | { kind: "status"; status: number }
  | { kind: "connection" }
  | { kind: "timeout" }
  | { kind: "judged" };

/** Statuses that say this URL no longer serves the file here: a signature expired, a mirror lost it. */
const GONE = new Set([401, 403, 404, 410]);

/**
 * Whether a failure at the target sends the relay back to the URL it was
 * given. A server that is merely slow (a timeout), or an answer refused for
 * what it said of the file (its size, its validator, its range), is not
 * cured by another mirror; a refusal, a missing file, a 5xx or a failed
 * connection may be.
 *
 * @example
 * ```ts
 * import { resolveAgain } from "./route.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(resolveAgain({ kind: "status", status: 403 }), true);
 * assertEquals(resolveAgain({ kind: "status", status: 503 }), true);
 * assertEquals(resolveAgain({ kind: "timeout" }), false);
 * assertEquals(resolveAgain({ kind: "judged" }), false);
 * ```
 */
export function resolveAgain(failure: Failure): boolean {
  switch (failure.kind) {
    case "status":
      return GONE.has(failure.status) || failure.status >= 500;
    case "connection":
      return true;
    default:
      return false;
  }
}

/** A range of the file the relay has read, and its digest: what a new target's bytes are compared with. */
export interface Reference {
  start: number;
  end: number;
  sha256: string;
}

/** The least a reference range holds: a few bytes could match by chance in two files. */
export const MIN_REFERENCE_BYTES = 64 * 1024;

/**
 * What a new target must show before its answers are taken: nothing more
 * when its validator is the one known (the same version of the file), the
 * bytes of the reference range when it names the file otherwise (a mirror
 * whose server makes its own ETags), or a refusal when there is nothing to
 * compare them with.
 *
 * @example
 * ```ts
 * import { proofNeeded } from "./route.ts";
 * import { assertEquals } from "../_assert.ts";
 * const v1 = { header: "etag" as const, value: '"v1"' };
 * const v2 = { header: "etag" as const, value: '"v2"' };
 * const reference = { start: 0, end: 65535, sha256: "ab" };
 * assertEquals(proofNeeded(v1, v1, reference), { kind: "none" });
 * assertEquals(proofNeeded(v1, v2, reference), { kind: "bytes", reference });
 * assertEquals(proofNeeded(v1, v2, undefined).kind, "refused");
 * ```
 */
export function proofNeeded(
  known: Validator | undefined,
  offered: Validator,
  reference: Reference | undefined,
): { kind: "none" } | { kind: "bytes"; reference: Reference } | { kind: "refused"; why: string } {
  if (known === undefined || (known.header === offered.header && known.value === offered.value)) {
    return { kind: "none" };
  }
  if (reference) return { kind: "bytes", reference };
  return {
    kind: "refused",
    why: "it names the file with another validator, and the relay has read nothing yet to compare its bytes with",
  };
}

/**
 * Whether the validator preflight saw applies to the target the relay
 * reached: only when it is the URL preflight reached too (the same server
 * and path). A mirror manager may send the relay to another mirror, which
 * names the same file with its own ETag.
 *
 * @example
 * ```ts
 * import { preflightApplies } from "./route.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(preflightApplies("m1.example:443/f.iso", "m1.example:443/f.iso"), true);
 * assertEquals(preflightApplies("m1.example:443/f.iso", "m2.example:443/f.iso"), false);
 * assertEquals(preflightApplies(undefined, "m2.example:443/f.iso"), true);
 * ```
 */
export function preflightApplies(preflightAt: string | undefined, target: string): boolean {
  return preflightAt === undefined || preflightAt === target;
}
