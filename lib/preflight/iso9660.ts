// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Recognizes an ISO image from the volume descriptor at byte 32768.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { printable } from "../errors.ts";

/** ISO 9660's volume identifier is at most this long (ECMA-119, 8.4.6). */
const LABEL_BYTES = 32;

/**
 * Reads the volume descriptor that starts 32768 bytes into an ISO image.
 *
 * @param sector At least the first 6 bytes of that sector; 72 for the label.
 * @returns The format and the ISO 9660 volume label (printable, trimmed), or
 * undefined when the bytes are no volume descriptor.
 * @example
 * ```ts
 * import { readVolumeDescriptor } from "./iso9660.ts";
 * import { assertEquals } from "../_assert.ts";
 * const sector = new Uint8Array(2048);
 * sector.set([1, ...new TextEncoder().encode("CD001")]);
 * sector.set(new TextEncoder().encode("BOOT\u001b[2J"), 40);
 * assertEquals(readVolumeDescriptor(sector), { format: "ISO 9660", label: "BOOT [2J" });
 * ```
 */
export function readVolumeDescriptor(sector: Uint8Array): { format: string; label: string } | undefined {
  const magic = new TextDecoder("latin1").decode(sector.subarray(1, 6));
  if (magic === "BEA01") return { format: "UDF", label: "" };
  if (magic !== "CD001") return undefined;
  const raw = sector.length >= 40 + LABEL_BYTES
    ? new TextDecoder("latin1").decode(sector.subarray(40, 40 + LABEL_BYTES))
    : "";
  return { format: "ISO 9660", label: printable(raw, LABEL_BYTES) };
}
