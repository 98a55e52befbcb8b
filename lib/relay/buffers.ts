// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Block buffers a relay's front reuses. Each block it fetches or reads from
 * disk needs 1 MiB; a fresh buffer for each, freed by the collector, was the
 * largest item in perf's profile of the front: Bun returns freed memory to
 * the kernel at each full collection (which the front asks for, to bound its
 * RSS), so every new block's pages were faulted in again. The bench's
 * 512 MiB read took 10.3–10.9 s of the front's CPU that way, 6.5–7.1 s with
 * buffers reused.
 *
 * The pool only keeps and hands out buffers; who may give one back, and
 * when, is the front's to say (a buffer goes back only once no fetch fills
 * it and no answer being written still points into it).
 *
 * This module is pure.
 *
 * @module
 */

/**
 * Buffers of one size, taken and given back; at most `most` idle ones are
 * kept, so a burst of blocks held at once does not stay allocated after it.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffers.ts";
 * import { assertEquals } from "../_assert.ts";
 * const pool = new BufferPool(4, 1);
 * const one = pool.take();
 * const two = pool.take();
 * assertEquals(one.length, 4);
 * pool.give(one);
 * pool.give(two);
 * assertEquals(pool.idle, 1);
 * assertEquals(pool.take(), one);
 * assertEquals(pool.idle, 0);
 * ```
 */
export class BufferPool {
  private readonly free: Uint8Array[] = [];

  /**
   * @param size Each buffer's length in bytes.
   * @param most The most idle buffers kept for reuse.
   */
  constructor(readonly size: number, readonly most: number) {}

  /** A buffer of `size` bytes, holding whatever it held before: its user says how much of it is filled. */
  take(): Uint8Array {
    return this.free.pop() ?? new Uint8Array(this.size);
  }

  /**
   * Takes a buffer back for reuse. Refuses one of another size, or a part of
   * one (a subarray), which is never a buffer this pool gave.
   *
   * @throws {RangeError} For a buffer this pool could not have given, or one given back twice.
   */
  give(buffer: Uint8Array): void {
    if (buffer.length !== this.size || buffer.byteOffset !== 0 || buffer.buffer.byteLength !== this.size) {
      throw new RangeError(`a buffer of ${buffer.length} bytes is not one of this pool's ${this.size}-byte buffers`);
    }
    if (this.free.includes(buffer)) throw new RangeError("a buffer was given back twice");
    if (this.free.length < this.most) this.free.push(buffer);
  }

  /** Buffers kept for reuse now. */
  get idle(): number {
    return this.free.length;
  }
}
