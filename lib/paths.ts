// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The names of the files the hook makes beside a domain file. Their length
 * never grows with the domain file's name: a name at the file system's limit
 * (255 bytes) must not make the hook fail with ENAMETOOLONG.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/**
 * The temporary file a new domain is written to before it is renamed over
 * the old one: `.httpsisoboot-<random>.tmp`.
 *
 * @param random Hex digits nobody can predict.
 * @example
 * ```ts
 * import { tempFileName } from "./paths.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(tempFileName("0a1b"), ".httpsisoboot-0a1b.tmp");
 * ```
 */
export function tempFileName(random: string): string {
  return `.httpsisoboot-${random}.tmp`;
}

/**
 * The lock file of one domain file: `.httpsisoboot-<digest of its name>.lock`,
 * 35 characters whatever the name. Two names with the same digest only make
 * their hooks wait for each other.
 *
 * @param domainFileName The domain file's name, without its directory.
 * @example
 * ```ts
 * import { lockFileName } from "./paths.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(lockFileName("x".repeat(254)).length, 35);
 * assertEquals(lockFileName("a") === lockFileName("b"), false);
 * ```
 */
export function lockFileName(domainFileName: string): string {
  return `.httpsisoboot-${digest(domainFileName)}.lock`;
}

/** 64-bit FNV-1a of the UTF-16 code units, as 16 hex digits: a name, not a secret. */
function digest(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) {
    hash = ((hash ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}
