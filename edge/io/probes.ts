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
import { readRegularFile, writeAtomic } from "./files.ts";

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

/** The file, in the relays' run directory, that remembers libvirt's version. */
export const LIBVIRT_MEMO = "libvirt-version";

/**
 * The host's libvirt version, from its QEMU daemon's --version; undefined
 * when neither daemon is there or answers. Asking costs 14–24 ms, on every
 * VM start in relay mode, so with `memoDir` (the relays' run directory,
 * vdsm's alone, emptied at boot) the answer is remembered under the
 * daemon's identity (path, inode, size, mtime) and asked again only once
 * libvirt has changed.
 */
export function libvirtVersion(memoDir?: string): LibvirtVersion | undefined {
  for (const daemon of LIBVIRT_DAEMONS.filter(isExecutable)) {
    const { ino, size, mtimeMs } = statSync(daemon);
    const id = `${daemon}:${ino}:${size}:${mtimeMs}`;
    const memo = memoDir && join(memoDir, LIBVIRT_MEMO);
    const remembered = memo ? rememberedVersion(memo, id) : undefined;
    if (remembered) return remembered;
    const asked = spawnSync(daemon, ["--version"], { encoding: "utf8", timeout: 2000 });
    const version = asked.status === 0 ? parseLibvirtVersion(asked.stdout) : undefined;
    if (!version) continue;
    if (memo) {
      try {
        writeAtomic(memo, `${id} ${version.join(".")}\n`, { mode: 0o644 });
      } catch { /* not ours to write (a dry run by another user): asked again next time */ }
    }
    return version;
  }
  return undefined;
}

/** The version the memo holds for this daemon, when it holds one for it. */
function rememberedVersion(memo: string, id: string): LibvirtVersion | undefined {
  try {
    const text = new TextDecoder().decode(
      readRegularFile(memo, { maxBytes: 1024, followSymlinks: false, what: "x" }).bytes,
    );
    return text.startsWith(`${id} `) ? parseLibvirtVersion(`(libvirt) ${text.slice(id.length + 1)}`) : undefined;
  } catch {
    return undefined;
  }
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
