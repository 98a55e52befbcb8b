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
 * size, and the same bytes for a range the relay has already read. A new
 * connection proves those bytes too, and a kept one every so many bytes: a
 * file replaced in place under the same size and validator is found, and
 * then not served at all.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { DESCRIPTOR_BYTES, DESCRIPTOR_OFFSET } from "../limits.ts";
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

/** A range of the file the relay has read, and its digest: what a new target's or connection's bytes are compared with. */
export interface Reference {
  start: number;
  end: number;
  sha256: string;
}

/**
 * The bytes a reference range holds: the file's start up to the end of its
 * first volume descriptor, the relay's first request (upstream.ts's PROBE),
 * which preflight has seen answered. A rebuilt ISO differs there first: its
 * volume descriptor holds its creation time and its size in blocks, and a
 * hybrid ISO's partition tables their own identifiers.
 */
export const REFERENCE_BYTES = DESCRIPTOR_OFFSET + DESCRIPTOR_BYTES;

/**
 * What a new target must show before its answers are taken: the bytes of
 * the reference range, whatever its validator (a rebuilt file keeps nginx's
 * ETag when its size and mtime are kept, and a mirror's server makes its
 * own); when nothing has been read yet to compare them with, nothing more
 * if its validator is the one known, or a refusal.
 *
 * @example
 * ```ts
 * import { proofNeeded } from "./route.ts";
 * import { assertEquals } from "../_assert.ts";
 * const v1 = { header: "etag" as const, value: '"v1"' };
 * const v2 = { header: "etag" as const, value: '"v2"' };
 * const reference = { start: 0, end: 34815, sha256: "ab" };
 * assertEquals(proofNeeded(v1, v1, reference), { kind: "bytes", reference });
 * assertEquals(proofNeeded(v1, v2, reference), { kind: "bytes", reference });
 * assertEquals(proofNeeded(v1, v1, undefined), { kind: "none" });
 * assertEquals(proofNeeded(v1, v2, undefined).kind, "refused");
 * ```
 */
export function proofNeeded(
  known: Validator | undefined,
  offered: Validator,
  reference: Reference | undefined,
): { kind: "none" } | { kind: "bytes"; reference: Reference } | { kind: "refused"; why: string } {
  if (reference) return { kind: "bytes", reference };
  if (known === undefined || (known.header === offered.header && known.value === offered.value)) {
    return { kind: "none" };
  }
  return {
    kind: "refused",
    why: "it names the file with another validator, and the relay has read nothing yet to compare its bytes with",
  };
}

/**
 * Whether a connection to the target must prove the file's bytes before
 * its next request: a new one always (it may reach another of the server's
 * machines, or a file replaced since), a kept one once `every` bytes have
 * come since the last proof; never before there is a reference, nor on a
 * server whose connections end with each answer (there is no connection to
 * prove before a request).
 *
 * @example
 * ```ts
 * import { connectionProofDue } from "./route.ts";
 * import { assertEquals } from "../_assert.ts";
 * const proof = { referenced: true, keepsAlive: true, every: 100 };
 * assertEquals(connectionProofDue({ ...proof, fresh: true, since: 0 }), true);
 * assertEquals(connectionProofDue({ ...proof, fresh: false, since: 99 }), false);
 * assertEquals(connectionProofDue({ ...proof, fresh: false, since: 100 }), true);
 * assertEquals(connectionProofDue({ ...proof, referenced: false, fresh: true, since: 0 }), false);
 * ```
 */
export function connectionProofDue(
  state: { referenced: boolean; keepsAlive: boolean; fresh: boolean; since: number; every: number },
): boolean {
  if (!state.referenced || !state.keepsAlive) return false;
  return state.fresh || state.since >= state.every;
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
