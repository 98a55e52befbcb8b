// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Which of VDSM's hook points the hook was run for. VDSM runs every
 * executable in /usr/libexec/vdsm/hooks/<point>/ and says nothing else
 * about the point, so the one binary, linked into each directory, reads it
 * from the path it was run by.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/** The points the hook serves: one starts a VM with the CD-ROM, the others follow its relay through the VM's life. */
export const HOOK_POINTS = [
  "before_vm_start",
  "before_vm_migrate_destination",
  "before_vm_dehibernate",
  "after_vm_destroy",
  "after_vm_migrate_source",
  "after_vm_hibernate",
] as const;

export type HookPoint = typeof HOOK_POINTS[number];

/**
 * The hook point of the path the hook was run by: its directory's name when
 * that is one of HOOK_POINTS, else before_vm_start, as the hook was always
 * installed and as an admin runs it by hand.
 *
 * @param invokedAs The absolute path the program was run by, links not followed.
 * @example
 * ```ts
 * import { hookPointOf } from "./hook_point.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(hookPointOf("/usr/libexec/vdsm/hooks/after_vm_destroy/50_httpsisoboot"), "after_vm_destroy");
 * assertEquals(hookPointOf("/usr/local/bin/httpsisoboot"), "before_vm_start");
 * ```
 */
export function hookPointOf(invokedAs: string): HookPoint {
  const directory = invokedAs.split("/").at(-2) ?? "";
  return (HOOK_POINTS as readonly string[]).includes(directory) ? directory as HookPoint : "before_vm_start";
}
