// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What this host has: nbdkit with the relay's plugin and filters, QEMU's
 * curl block driver, libvirt's version. Each is found in one place.
 *
 * This module looks at files and runs --version.
 *
 * @module
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";

import { join } from "node:path";

import { spawnSync } from "node:child_process";

import { HostError } from "../../lib/errors.ts";

import { CURL_MODULE, curlDriverProblem, QEMU_MODULE_DIRS } from "../../lib/curl_driver.ts";

import { NBDKIT_BINARIES, NBDKIT_MODULE_DIRS, NBDKIT_MODULES, type NbdkitFound } from "../../lib/relay/plan.ts";

import { type LibvirtVersion, parseLibvirtVersion } from "../../lib/libvirt_version.ts";

/** What is there of nbdkit: the binary, and the plugin and filters the relay loads. */
export function findNbdkit(): NbdkitFound {
  const binary = NBDKIT_BINARIES.find(isExecutable);
  const moduleDir = NBDKIT_MODULE_DIRS.find((dir) => existsSync(dir));
  const missing = moduleDir
    ? NBDKIT_MODULES.map(([name]) => name).filter((name) => !existsSync(join(moduleDir, name)))
    : [];
  return { binary, moduleDir, missing };
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Where libvirt's QEMU daemon is: the modular daemon, then the monolithic one. */
export const LIBVIRT_DAEMONS = ["/usr/sbin/virtqemud", "/usr/sbin/libvirtd"];

/**
 * The host's libvirt version, from its QEMU daemon's --version (about 15 ms,
 * only in relay mode); undefined when neither daemon is there or answers.
 */
export function libvirtVersion(): LibvirtVersion | undefined {
  for (const daemon of LIBVIRT_DAEMONS.filter(isExecutable)) {
    const asked = spawnSync(daemon, ["--version"], { encoding: "utf8", timeout: 2000 });
    const version = asked.status === 0 ? parseLibvirtVersion(asked.stdout) : undefined;
    if (version) return version;
  }
  return undefined;
}

/**
 * Refuses, before the VM starts, a host whose QEMU loads modules but has no
 * curl block driver; says where the driver is, or that QEMU has no module
 * directory here (curl built in).
 */
export function checkCurlDriver(): string {
  const dirs = QEMU_MODULE_DIRS.map((dir) => {
    const exists = existsSync(dir);
    return { dir, exists, hasCurl: exists && existsSync(join(dir, CURL_MODULE)) };
  });
  const problem = curlDriverProblem(dirs);
  if (problem) throw new HostError(problem);
  const found = dirs.find((dir) => dir.hasCurl);
  return found ? join(found.dir, CURL_MODULE) : "no module directory here: built into QEMU, or QEMU is elsewhere";
}

/** Whether SELinux is on here: nbdkit refuses --selinux-label elsewhere. */
export function selinuxEnabled(): boolean {
  return existsSync("/sys/fs/selinux/enforce");
}
