// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Writes the host files (lib/host_files.ts) into DIR under the names the
 * RPM's spec takes them as sources: what `npm run rpm` packages is what
 * `httpsisoboot --install` installs.
 *   node --import tsx scripts/host_files.ts DIR
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { MAN_PAGE, POLKIT_RULE, RELAY_UNIT, SELINUX_MODULE, SETTINGS_EXAMPLE, TMPFILES } from "../lib/host_files.ts";

/** The spec's source names. */
export const SOURCE_NAMES: ReadonlyArray<[string, { text: string }]> = [
  ["httpsisoboot-relay@.service", RELAY_UNIT],
  ["50-httpsisoboot.rules", POLKIT_RULE],
  ["httpsisoboot.tmpfiles", TMPFILES],
  ["httpsisoboot.conf", SETTINGS_EXAMPLE],
  ["httpsisoboot.cil", SELINUX_MODULE],
  ["httpsisoboot.8", MAN_PAGE],
];

/** Writes every source into `dir`. */
export function writeSources(dir: string): void {
  for (const [name, file] of SOURCE_NAMES) writeFileSync(join(dir, name), file.text, { mode: 0o644 });
}

if (process.argv[1]?.endsWith("host_files.ts") && process.argv.length === 3) writeSources(process.argv[2]);
