// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The nbdkit a VM's relay runs, as an argument list.
 *
 * The relay is two processes: httpsisoboot's front, which alone holds the
 * URL, talks TLS to the ISO server and checks every answer, and nbdkit,
 * which serves the NBD socket QEMU reads and asks the front for the bytes
 * over a socket only the relay can enter. nbdkit never sees the URL: its
 * command line (which `ps` shows every user), its messages and its curl
 * plugin's errors name only RELAY_URL.
 *
 * - `--readonly`: a CD-ROM; it also lets nbdkit announce multi-conn.
 * - `--exit-with-parent`: nbdkit dies with the front, even on SIGKILL, so a
 *   relay is never half alive.
 * - The blocksize filter, outermost, cuts every read the guest makes to
 *   RELAY_CACHE_BLOCK_BYTES, one block of the cache: nbdkit 1.32's cache
 *   reclaims at most two blocks a request, so with larger reads it outgrows
 *   its cache-max-size without bound (a 16 MiB cache took 496 MiB for 4 MiB
 *   reads; cut to one block a request, 13 MiB). It also makes a fault cost
 *   one 64 KiB read's retry, never a whole large read's.
 * - The cache filter under it, with `cache-on-read`: what is read once is
 *   kept, up to the cache size on disk, least recently used blocks dropped
 *   first; its blocks are RELAY_CACHE_BLOCK_BYTES, so that hits stay cheap.
 *   The front fetches the server's bytes in larger blocks (RELAY_BLOCK_BYTES,
 *   one ranged GET each) and answers the cache's reads from them.
 * - The retry-request filter under that: a block whose read fails (a reset,
 *   a 503, a short or wrong answer, all of which the front turns into a cut
 *   connection) is read again, RELAY_RETRIES times, RELAY_RETRY_DELAY_S apart.
 * - The curl plugin, http only, no redirects (the front follows them, each
 *   one checked against `allow`).
 * - `--selinux-label` only where SELinux is on: nbdkit refuses the option
 *   elsewhere. It lets sVirt-confined QEMU connect, as libvirt's own nbdkit
 *   support does.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { RELAY_CACHE_BLOCK_BYTES, RELAY_RETRIES, RELAY_RETRY_DELAY_S } from "../limits.ts";
import type { RelayPaths } from "../paths.ts";
import type { RelayConfig } from "./config.ts";

/** Where nbdkit is: EL's /usr/sbin, Debian's /usr/bin. */
export const NBDKIT_BINARIES = ["/usr/sbin/nbdkit", "/usr/bin/nbdkit"];

/** Where nbdkit keeps its plugins and filters: EL's, then Debian's on x86-64 and arm64. */
export const NBDKIT_MODULE_DIRS = [
  "/usr/lib64/nbdkit",
  "/usr/lib/x86_64-linux-gnu/nbdkit",
  "/usr/lib/aarch64-linux-gnu/nbdkit",
];

/** nbdkit's filters the relay stacks, outermost first (see the module's notes). */
export const RELAY_FILTERS = ["blocksize", "cache", "retry-request"] as const;

/** What the relay loads, and the EL package each comes in. */
export const NBDKIT_MODULES: ReadonlyArray<[string, string]> = [
  ["plugins/nbdkit-curl-plugin.so", "nbdkit-curl-plugin"],
  ...RELAY_FILTERS.map((name): [string, string] => [`filters/nbdkit-${name}-filter.so`, "nbdkit-basic-filters"]),
];

/**
 * nbdkit's arguments that load the relay's plugin and filters, and print
 * its version, as libvirt probes nbdkit: what --check runs.
 *
 * @example
 * ```ts
 * import { nbdkitProbeArgs } from "./plan.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(nbdkitProbeArgs(), ["--filter=blocksize", "--filter=cache", "--filter=retry-request", "curl", "--version"]);
 * ```
 */
export function nbdkitProbeArgs(): string[] {
  return [...RELAY_FILTERS.map((name) => `--filter=${name}`), "curl", "--version"];
}

/** What was found of nbdkit on this host. */
export interface NbdkitFound {
  binary?: string;
  /** The module directory that exists, and the modules missing from it. */
  moduleDir?: string;
  missing: string[];
}

/**
 * Why the relay cannot run on this host, naming the packages to install;
 * undefined when it can.
 *
 * @param found What is there.
 * @param settingsFile Named in the message, for `relay = off`.
 * @example
 * ```ts
 * import { nbdkitProblem } from "./plan.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(nbdkitProblem({ binary: "/usr/sbin/nbdkit", moduleDir: "/usr/lib64/nbdkit", missing: [] }, "f"), undefined);
 * ```
 */
export function nbdkitProblem(found: NbdkitFound, settingsFile: string): string | undefined {
  const off = `, or set relay = off in ${settingsFile} to let QEMU's curl read the ISO without retries`;
  if (!found.binary || !found.moduleDir) {
    return `nbdkit, which relays the ISO to the VM, is not installed; install nbdkit-server, nbdkit-curl-plugin and ` +
      `nbdkit-basic-filters (EL) or nbdkit (Debian)${off}`;
  }
  if (found.missing.length === 0) return undefined;
  const packages = [...new Set(found.missing.map((module) => NBDKIT_MODULES.find(([name]) => name === module)![1]))];
  return `nbdkit lacks ${found.missing.map((module) => module.split("/")[1]).join(", ")} in ${found.moduleDir}; ` +
    `install ${packages.join(" and ")}${off}`;
}

/** What nbdkit's curl plugin asks the front for: it names nothing of the real URL. */
export const RELAY_URL = "http://httpsisoboot-relay/iso";

/** The label of the listening socket that lets svirt_t QEMU connect (nbdkit(1), --selinux-label). */
export const SOCKET_LABEL = "system_u:object_r:svirt_socket_t:s0";

/** The front's socket, in the relay's private directory. */
export function frontSocket(paths: RelayPaths): string {
  return `${paths.private}/front.sock`;
}

/**
 * nbdkit's arguments for one relay.
 *
 * @param paths The relay's files.
 * @param config What it serves.
 * @param options `selinux`: whether SELinux is enabled on this host.
 * @example
 * ```ts
 * import { nbdkitArgs } from "./plan.ts";
 * import { relayPaths, RELAY_DIRS } from "../paths.ts";
 * import { assertEquals } from "../_assert.ts";
 * const paths = relayPaths(RELAY_DIRS, "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21");
 * const config = { url: "https://i.example:443/a.iso?sig=s", timeout: 30, allow: [], settingsFile: "f", cacheSize: 1 << 30, cacheTotal: { percent: 50 }, readaheadBlocks: 8, sharedCache: 0, hostConnections: 64 };
 * const args = nbdkitArgs(paths, config, { selinux: false });
 * assertEquals(args.includes("--filter=cache") && args.includes("--filter=retry-request"), true);
 * assertEquals(args.some((arg) => arg.includes("sig=")), false);
 * ```
 */
export function nbdkitArgs(paths: RelayPaths, config: RelayConfig, options: { selinux: boolean }): string[] {
  return [
    "--foreground",
    "--readonly",
    "--exit-with-parent",
    "--unix",
    paths.socket,
    ...(options.selinux ? [`--selinux-label=${SOCKET_LABEL}`] : []),
    ...RELAY_FILTERS.map((name) => `--filter=${name}`),
    "curl",
    `url=${RELAY_URL}`,
    `unix-socket-path=${frontSocket(paths)}`,
    "protocols=http",
    "followlocation=false",
    // The front gives up on a silent server after `timeout`; curl's limit is
    // on the whole request, so it gets room for a slow but steady one too.
    `timeout=${2 * config.timeout + 5}`,
    "cache-on-read=true",
    `cache-min-block-size=${RELAY_CACHE_BLOCK_BYTES}`,
    `cache-max-size=${config.cacheSize}`,
    `maxdata=${RELAY_CACHE_BLOCK_BYTES}`,
    `retry-request-retries=${RELAY_RETRIES}`,
    `retry-request-delay=${RELAY_RETRY_DELAY_S}`,
  ];
}
