// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The names of the files the hook makes: beside a domain file, and for each
 * VM's relay. The names beside a domain never grow with the domain file's
 * name: a name at the file system's limit (255 bytes) must not make the hook
 * fail with ENAMETOOLONG.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/** Where the relays keep their files. */
export interface RelayDirs {
  /**
   * Sockets and state. The NBD socket's path is in the domain XML, so it is
   * the same on every host a VM can migrate to.
   */
  run: string;
  /** nbdkit's cache files, one directory per VM: on disk, not in RAM as /run is. */
  cache: string;
}

/**
 * The relays' directories on a host. The RPM creates both at boot with
 * systemd-tmpfiles, owned by vdsm:kvm, mode 0750: only VDSM's user can make
 * files there, so nobody can plant a socket or a link where a relay will be.
 */
export const RELAY_DIRS: Readonly<RelayDirs> = Object.freeze({
  run: "/run/httpsisoboot",
  cache: "/var/cache/httpsisoboot",
});

/** The files of one VM's relay, all named after the VM's UUID. */
export interface RelayPaths {
  /** The NBD socket QEMU connects to (in the domain XML). */
  socket: string;
  /** What the relay serves: the URL and the settings, mode 0600 (it holds the URL's query). */
  config: string;
  /** The running relay's pid. */
  pid: string;
  /** The relay's log, when the hook starts it without systemd. */
  log: string;
  /** Held while a relay starts or stops. */
  lock: string;
  /** A directory only the relay can enter: its HTTP front's socket. */
  private: string;
  /** nbdkit's TMPDIR, where its cache file lives, and the front's private blocks. */
  cache: string;
  /** What the relay has done, for `httpsisoboot --status`. */
  status: string;
}

/**
 * The paths of one VM's relay.
 *
 * @param dirs RELAY_DIRS, or others in tests.
 * @param uuid The VM's UUID, already checked (lower case, 36 characters).
 * @example
 * ```ts
 * import { RELAY_DIRS, relayPaths } from "./paths.ts";
 * import { assertEquals } from "./_assert.ts";
 * const paths = relayPaths(RELAY_DIRS, "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21");
 * assertEquals(paths.socket, "/run/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.sock");
 * assertEquals(paths.cache, "/var/cache/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21");
 * ```
 */
export function relayPaths(dirs: RelayDirs, uuid: string): RelayPaths {
  const base = `${dirs.run}/${uuid}`;
  return {
    socket: relaySocket(dirs.run, uuid),
    config: `${base}.relay`,
    pid: `${base}.pid`,
    log: `${base}.log`,
    lock: `${base}.lock`,
    private: `${base}.d`,
    cache: `${dirs.cache}/${uuid}`,
    status: `${base}.status`,
  };
}

/**
 * The host's shared block cache (store.ts): in the cache directory, beside
 * the relays' own, whose names are UUIDs.
 *
 * @example
 * ```ts
 * import { RELAY_DIRS, sharedCacheDir } from "./paths.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(sharedCacheDir(RELAY_DIRS), "/var/cache/httpsisoboot/shared");
 * ```
 */
export function sharedCacheDir(dirs: RelayDirs): string {
  return `${dirs.cache}/shared`;
}

/**
 * The host's connection slots (slots.ts).
 *
 * @example
 * ```ts
 * import { connectionSlotsDir, RELAY_DIRS } from "./paths.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(connectionSlotsDir(RELAY_DIRS), "/run/httpsisoboot/connections");
 * ```
 */
export function connectionSlotsDir(dirs: RelayDirs): string {
  return `${dirs.run}/connections`;
}

/**
 * The NBD socket of a VM's relay, as the domain XML names it.
 *
 * @example
 * ```ts
 * import { relaySocket } from "./paths.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(relaySocket("/run/httpsisoboot", "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21"), "/run/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.sock");
 * ```
 */
export function relaySocket(runDir: string, uuid: string): string {
  return `${runDir}/${uuid}.sock`;
}

/**
 * The systemd unit that runs one VM's relay.
 *
 * @example
 * ```ts
 * import { relayUnit } from "./paths.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(relayUnit("7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21"), "httpsisoboot-relay@7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.service");
 * ```
 */
export function relayUnit(uuid: string): string {
  return `httpsisoboot-relay@${uuid}.service`;
}

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
