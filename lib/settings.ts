// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Host settings: one small file, `/etc/vdsm/httpsisoboot.conf` (or the file named
 * by HTTPSISOBOOT_CONFIG), of `key = value` lines; `#` starts a comment. A
 * missing file means every default. Unknown keys and bad values are errors
 * that name the file, the line and the key.
 *
 * ```
 * # seconds QEMU waits for each ranged GET before the guest sees an I/O error
 * timeout = 30
 * # bytes QEMU reads ahead of each request (a multiple of 512)
 * readahead = 1048576
 * # check the server before the VM starts
 * preflight = yes
 * preflight_timeout = 5
 * # only these ISO servers: host names, .domain suffixes, each with an optional :port
 * allow = isos.example.org, .lab.example.net, 192.0.2.10:8443
 * # read the ISO through a per-VM nbdkit relay that caches and retries (nbdkit), or QEMU's curl driver (off)
 * relay = nbdkit
 * # the most disk each relay's cache takes, in bytes (K, M and G are 1024-based)
 * relay_cache_size = 1G
 * # the most disk all relays' caches take together: bytes, or a share of the cache file system's free space
 * relay_cache_total = 50%
 * # bytes a relay reads ahead of a guest that reads in order (whole MiB; 0 for none)
 * relay_readahead = 32M
 * # the most disk the host's shared block cache takes, kept between VMs on the same ISO (0: no sharing)
 * relay_shared_cache = 4G
 * # the most connections all relays of the host open to ISO servers together
 * relay_host_connections = 64
 * ```
 *
 * This module is pure: it parses text and does no I/O.
 *
 * @module
 */
import { SettingsError } from "./errors.ts";
import { nearest } from "./spelling.ts";
import type { CacheTotal } from "./relay/budget.ts";
import { type NoProxyRule, parseNoProxy, parseProxy, type Proxy } from "./proxy.ts";

/** Where the settings live on a host. */
export const SETTINGS_FILE = "/etc/vdsm/httpsisoboot.conf";

/** One entry of `allow`. */
export interface AllowRule {
  /** A host name or IP address, or a domain suffix starting with `.`. */
  host: string;
  /** The only port allowed, when the entry names one. */
  port?: number;
}

export interface Settings {
  /** `<timeout seconds>`: how long QEMU waits for each request. */
  timeout: number;
  /** `<readahead size>`: bytes QEMU reads beyond each request. */
  readahead: number;
  /** Whether hook mode checks the server before the VM starts. */
  preflight: boolean;
  /** The whole preflight's time limit, in seconds. */
  preflightTimeout: number;
  /** ISO servers allowed; empty allows any. */
  allow: AllowRule[];
  /** How QEMU reads the ISO: through a per-VM nbdkit relay, or with its own curl driver. */
  relay: "nbdkit" | "off";
  /** The most disk, in bytes, one relay's cache may take. */
  relayCacheSize: number;
  /** The most disk all relays' caches on the host may take together: bytes, or a share of the free space. */
  relayCacheTotal: CacheTotal;
  /** Bytes a relay reads ahead of a guest that reads in order: whole MiB, 0 for none. */
  relayReadahead: number;
  /** The most disk the host's shared block cache takes, in bytes; 0 for no sharing. At most what relayCacheTotal leaves beside the relays. */
  relaySharedCache: number;
  /** The most connections all the host's relays open to ISO servers at once. */
  relayHostConnections: number;
  /** The HTTP proxy ISO servers are reached through (proxy.ts); none when unset. */
  proxy?: Proxy;
  /** Hosts reached directly, not through the proxy. */
  noProxy: NoProxyRule[];
}

/**
 * The defaults. timeout and readahead come from the fault e2e's measurements,
 * recorded in the README under "Slow and stalling servers".
 */
export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  timeout: 30,
  readahead: 1024 * 1024,
  preflight: true,
  preflightTimeout: 5,
  allow: [],
  relay: "nbdkit",
  relayCacheSize: 1024 * 1024 * 1024,
  relayCacheTotal: { percent: 50 },
  relayReadahead: 32 * 1024 * 1024,
  relaySharedCache: 4 * 1024 ** 3,
  relayHostConnections: 64,
  noProxy: [],
});

/** QEMU's curl driver refuses a timeout above this (block/curl.c). */
const MAX_TIMEOUT = 10000;

/**
 * A relay's cache: at least 16 MiB (16 of its 1 MiB blocks), at most 1 TiB.
 * nbdkit's cache filter needs room for a few blocks to work at all.
 */
const MIN_CACHE = 16 * 1024 * 1024;
const MAX_CACHE = 1024 ** 4;

/**
 * Parses a settings file.
 *
 * @param text The file's text.
 * @param file The file's path, for error messages.
 * @returns The settings, with defaults for what the file does not set.
 * @throws {SettingsError} If a line is not `key = value`, a key is unknown or repeated, or a value is out of range.
 * @example
 * ```ts
 * import { parseSettings } from "./settings.ts";
 * import { assertEquals } from "./_assert.ts";
 * const settings = parseSettings("timeout = 60\nallow = .example.org", "/etc/vdsm/httpsisoboot.conf");
 * assertEquals([settings.timeout, settings.allow, settings.preflight], [60, [{ host: ".example.org" }], true]);
 * ```
 */
export function parseSettings(text: string, file: string): Settings {
  const settings: Settings = { ...DEFAULT_SETTINGS, allow: [], noProxy: [] };
  const seen = new Set<string>();
  text.split("\n").forEach((rawLine, index) => {
    const line = rawLine.replace(/#.*/, "").trim();
    if (line === "") return;
    const where = `${file} line ${index + 1}`;
    const match = /^([a-z_]+)\s*=\s*(.*)$/.exec(line);
    if (!match) {
      const shown = line.includes("@") ? "the line (not shown: it may hold credentials)" : `'${line}'`;
      throw new SettingsError(`${where}: ${shown} is not 'key = value'`);
    }
    const [, key, value] = match;
    if (seen.has(key)) throw new SettingsError(`${where}: '${key}' is set twice`);
    seen.add(key);
    const read = READERS[key];
    if (!read) {
      const meant = nearest(key, Object.keys(READERS));
      throw new SettingsError(
        `${where}: unknown setting '${key}'${meant ? ` (did you mean '${meant}'?)` : ""}; the settings are ${
          Object.keys(READERS).slice(0, -1).join(", ")
        } and ${Object.keys(READERS).at(-1)}`,
      );
    }
    read(settings, value, where);
  });
  return settings;
}

/** How each key's value is read into the settings; `where` names the file and line. */
const READERS: Record<string, (settings: Settings, value: string, where: string) => void> = {
  timeout(settings, value, where) {
    settings.timeout = wholeNumber(
      value,
      1,
      MAX_TIMEOUT,
      `${where}: 'timeout' must be whole seconds from 1 to ${MAX_TIMEOUT}`,
    );
  },
  readahead(settings, value, where) {
    settings.readahead = wholeNumber(value, 512, 1 << 30, `${where}: 'readahead' must be bytes from 512 to 1073741824`);
    if (settings.readahead % 512 !== 0) {
      throw new SettingsError(`${where}: 'readahead' must be a multiple of 512 (QEMU refuses others), not ${value}`);
    }
  },
  preflight(settings, value, where) {
    settings.preflight = yesNo(value, `${where}: 'preflight' must be yes or no`);
  },
  preflight_timeout(settings, value, where) {
    settings.preflightTimeout = wholeNumber(
      value,
      1,
      120,
      `${where}: 'preflight_timeout' must be whole seconds from 1 to 120`,
    );
  },
  allow(settings, value, where) {
    settings.allow = value.split(",").map((entry) => allowRule(entry.trim(), `${where}: 'allow'`));
  },
  relay(settings, value, where) {
    if (value !== "nbdkit" && value !== "off") {
      throw new SettingsError(`${where}: 'relay' must be nbdkit or off, not '${value}'`);
    }
    settings.relay = value;
  },
  relay_cache_size(settings, value, where) {
    settings.relayCacheSize = byteSize(
      value,
      MIN_CACHE,
      MAX_CACHE,
      `${where}: 'relay_cache_size' must be bytes from 16M to 1024G (K, M and G are 1024-based)`,
    );
  },
  relay_readahead(settings, value, where) {
    const message =
      `${where}: 'relay_readahead' must be whole MiB from 0 (none) to 64M, read ahead of a guest that reads in order`;
    const bytes = /^0$/.test(value) ? 0 : byteSize(value, 1024 * 1024, 64 * 1024 * 1024, message);
    if (bytes % (1024 * 1024) !== 0) throw new SettingsError(`${message}, not '${value}'`);
    settings.relayReadahead = bytes;
  },
  relay_shared_cache(settings, value, where) {
    const message =
      `${where}: 'relay_shared_cache' must be bytes from 16M to 1024G (K, M and G are 1024-based), or 0 for no sharing`;
    settings.relaySharedCache = /^0$/.test(value) ? 0 : byteSize(value, MIN_CACHE, MAX_CACHE, message);
  },
  relay_host_connections(settings, value, where) {
    settings.relayHostConnections = wholeNumber(
      value,
      1,
      1024,
      `${where}: 'relay_host_connections' must be a whole number from 1 to 1024, the connections all relays open to ISO servers together`,
    );
  },
  proxy(settings, value, where) {
    settings.proxy = parseProxy(value, where);
  },
  no_proxy(settings, value, where) {
    settings.noProxy = parseNoProxy(value, where);
  },
  relay_cache_total(settings, value, where) {
    const message =
      `${where}: 'relay_cache_total' must be bytes from 16M to 1024G (K, M and G are 1024-based), or a share of the cache file system's free space from 1% to 100%`;
    const percent = /^([0-9]{1,3})%$/.exec(value);
    if (percent) {
      const share = Number(percent[1]);
      if (share < 1 || share > 100) throw new SettingsError(`${message}, not '${value}'`);
      settings.relayCacheTotal = { percent: share };
      return;
    }
    settings.relayCacheTotal = { bytes: byteSize(value, MIN_CACHE, MAX_CACHE, message) };
  },
};

function wholeNumber(value: string, min: number, max: number, message: string): number {
  if (!/^[0-9]{1,10}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new SettingsError(`${message}, not '${value}'`);
  }
  return Number(value);
}

/** A whole number of bytes, with an optional K, M or G (powers of 1024). */
function byteSize(value: string, min: number, max: number, message: string): number {
  const match = /^([0-9]{1,13})([KMG]?)$/i.exec(value);
  const bytes = match ? Number(match[1]) * 1024 ** " KMG".indexOf(match[2].toUpperCase() || " ") : NaN;
  if (!(bytes >= min && bytes <= max)) throw new SettingsError(`${message}, not '${value}'`);
  return bytes;
}

function yesNo(value: string, message: string): boolean {
  if (/^(yes|true|on|1)$/i.test(value)) return true;
  if (/^(no|false|off|0)$/i.test(value)) return false;
  throw new SettingsError(`${message}, not '${value}'`);
}

function allowRule(entry: string, where: string): AllowRule {
  if (entry.startsWith("*.")) {
    throw new SettingsError(
      `${where} has '${entry}'; 'allow' takes no wildcards: write '${entry.slice(1)}' for ${
        entry.slice(2)
      } and every name under it`,
    );
  }
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+)(?::([0-9]{1,5}))?$/.exec(entry);
  if (!match || (match[2] !== undefined && (Number(match[2]) < 1 || Number(match[2]) > 65535))) {
    throw new SettingsError(
      `${where} has '${entry}'; write host names, .domain suffixes or IP addresses, each with an optional :port`,
    );
  }
  const host = match[1].replace(/^\[|\]$/g, "").toLowerCase();
  return match[2] === undefined ? { host } : { host, port: Number(match[2]) };
}
