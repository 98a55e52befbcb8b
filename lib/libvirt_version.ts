// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What the host's libvirt can be asked for, by its version: `<reconnect
 * delay='N'/>` in an NBD disk's `<source>` came with libvirt 9.2 (EL 9.4
 * ships 10.0). With it, QEMU's NBD client waits for the relay's socket to
 * come back after a relay dies, and systemd's restart of the relay's unit
 * resumes the guest's reads; without it, a relay that dies leaves the
 * CD-ROM unreadable until the VM is restarted.
 *
 * This module is pure: it parses what `virtqemud --version` or
 * `libvirtd --version` printed.
 *
 * @module
 */

/** libvirt's version: major, minor, micro. */
export type LibvirtVersion = [number, number, number];

/** The first libvirt with `<reconnect delay>` for NBD disks. */
export const NBD_RECONNECT_SINCE: LibvirtVersion = [9, 2, 0];

/**
 * Seconds QEMU waits for the relay to come back before it fails a read: 10,
 * room for systemd's RestartSec (1 s) and the relay's start (well under 1 s)
 * several times over. Reads pause meanwhile; they are not lost.
 */
export const NBD_RECONNECT_DELAY_S = 10;

/**
 * The version a libvirt daemon prints for `--version`.
 *
 * @example
 * ```ts
 * import { parseLibvirtVersion } from "./libvirt_version.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(parseLibvirtVersion("virtqemud (libvirt) 10.0.0\n"), [10, 0, 0]);
 * assertEquals(parseLibvirtVersion("libvirtd (libvirt) 9.0.0"), [9, 0, 0]);
 * assertEquals(parseLibvirtVersion("no version here"), undefined);
 * ```
 */
export function parseLibvirtVersion(text: string): LibvirtVersion | undefined {
  const match = /\(libvirt\) ([0-9]{1,4})\.([0-9]{1,4})\.([0-9]{1,4})/.exec(text);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

/**
 * The `<reconnect delay>` to write into the relay's NBD source, in seconds;
 * undefined where libvirt does not know it (or its version is unknown),
 * since an older libvirt would drop it, or refuse it when validating.
 *
 * @example
 * ```ts
 * import { nbdReconnectDelay } from "./libvirt_version.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(nbdReconnectDelay([10, 0, 0]), 10);
 * assertEquals(nbdReconnectDelay([9, 2, 0]), 10);
 * assertEquals(nbdReconnectDelay([9, 0, 0]), undefined);
 * assertEquals(nbdReconnectDelay(undefined), undefined);
 * ```
 */
export function nbdReconnectDelay(version: LibvirtVersion | undefined): number | undefined {
  return version && atLeast(version, NBD_RECONNECT_SINCE) ? NBD_RECONNECT_DELAY_S : undefined;
}

/**
 * What --check says of it.
 *
 * @example
 * ```ts
 * import { describeReconnect } from "./libvirt_version.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(describeReconnect([10, 0, 0]).startsWith("libvirt 10.0.0: QEMU reconnects"), true);
 * ```
 */
export function describeReconnect(version: LibvirtVersion | undefined): string {
  if (version === undefined) {
    return "libvirt's version is unknown here (no virtqemud or libvirtd): no <reconnect>, so a relay that dies " +
      "leaves the CD-ROM unreadable until the VM restarts";
  }
  const named = `libvirt ${version.join(".")}`;
  return nbdReconnectDelay(version) === undefined
    ? `${named} has no NBD <reconnect> (9.2 and later, EL 9.4): a relay that dies leaves the CD-ROM unreadable ` +
      `until the VM restarts`
    : `${named}: QEMU reconnects to a relay that restarts, pausing reads up to ${NBD_RECONNECT_DELAY_S} s (<reconnect delay>)`;
}

function atLeast(version: LibvirtVersion, floor: LibvirtVersion): boolean {
  for (let i = 0; i < 3; i++) if (version[i] !== floor[i]) return version[i] > floor[i];
  return true;
}
