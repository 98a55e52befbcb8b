// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Bytes, joined and searched: what the relay's front and the hook's stdin
 * reader share.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/** Joins byte chunks. Not Buffer.concat: node:buffer costs Bun about 1.5 ms to load, on every VM start. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}
