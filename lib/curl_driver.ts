// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Whether this host's QEMU can read https: its curl block driver is a module
 * of its own on EL and Debian, in a package of its own (qemu-kvm-block-curl,
 * qemu-block-extra). Without it a VM fails to start with QEMU's
 * "Unknown protocol 'https'", after the hook has said all is well.
 *
 * This module is pure: `hook.ts` looks at the directories.
 *
 * @module
 */

/** Where EL and Debian's QEMU load their modules from. */
export const QEMU_MODULE_DIRS = [
  "/usr/lib64/qemu-kvm",
  "/usr/lib/x86_64-linux-gnu/qemu",
  "/usr/lib/aarch64-linux-gnu/qemu",
  "/usr/lib/powerpc64le-linux-gnu/qemu",
  "/usr/lib/s390x-linux-gnu/qemu",
];

/** The curl block driver's file in a module directory. */
export const CURL_MODULE = "block-curl.so";

/** What a module directory holds. */
export interface ModuleDir {
  dir: string;
  exists: boolean;
  hasCurl: boolean;
}

/**
 * The problem with the host's curl driver, or undefined when there is none:
 * QEMU loads modules from a directory here, and none holds block-curl.so.
 * With no module directory at all, QEMU has curl built in (or is not on this
 * host), and nothing is refused.
 *
 * @example
 * ```ts
 * import { curlDriverProblem } from "./curl_driver.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(curlDriverProblem([{ dir: "/usr/lib64/qemu-kvm", exists: true, hasCurl: true }]), undefined);
 * assertEquals(curlDriverProblem([{ dir: "/usr/lib64/qemu-kvm", exists: false, hasCurl: false }]), undefined);
 * assertEquals(curlDriverProblem([{ dir: "/usr/lib64/qemu-kvm", exists: true, hasCurl: false }])?.startsWith("QEMU's curl"), true);
 * ```
 */
export function curlDriverProblem(dirs: ModuleDir[]): string | undefined {
  const present = dirs.filter((dir) => dir.exists);
  if (present.length === 0 || present.some((dir) => dir.hasCurl)) return undefined;
  return `QEMU's curl block driver is not installed: ${present.map((dir) => dir.dir).join(" and ")} ` +
    `${present.length > 1 ? "hold" : "holds"} QEMU's modules but no ${CURL_MODULE}, so QEMU would refuse the VM ` +
    `("Unknown protocol 'https'"); install qemu-kvm-block-curl (EL) or qemu-block-extra (Debian)`;
}
