// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What the hook hands a VM's relay: the ISO's URL and the host settings it
 * serves it with. The hook writes it to the relay's config file (mode 0600,
 * since the URL's query is a credential); the relay reads it back and trusts
 * nothing in it that it has not checked again.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { RelayError } from "../errors.ts";
import type { AllowRule, Settings } from "../settings.ts";
import { type IsoUrl, parseIsoUrl } from "../url.ts";
import type { Validator } from "./http.ts";
import type { CacheTotal } from "./budget.ts";
import { RELAY_BLOCK_BYTES } from "../limits.ts";

/** A relay's configuration. */
export interface RelayConfig {
  /** The URL as the hook accepted it (IsoUrl.href), query included. */
  url: string;
  /** Seconds the relay waits for the server to send anything, on each request. */
  timeout: number;
  /** The host's `allow` setting, applied to every redirect the server sends. */
  allow: AllowRule[];
  /** The settings file, named in the relay's messages. */
  settingsFile: string;
  /** The most disk, in bytes, the relay's cache may take. */
  cacheSize: number;
  /** The host's budget for all relays' caches together (budget.ts). */
  cacheTotal: CacheTotal;
  /** Blocks of RELAY_BLOCK_BYTES read ahead of a guest that reads in order (readahead.ts); 0 for none. */
  readaheadBlocks: number;
  /** The most bytes the host's shared block cache takes (shared.ts); 0 for no sharing. */
  sharedCache: number;
  /** The most connections all the host's relays open to ISO servers (slots.ts). */
  hostConnections: number;
  /**
   * What preflight saw of the file: every answer the relay takes must be of
   * this size, and carry this validator where it comes from the URL
   * preflight reached (`at`, as shared.ts's blockSource names it). Without
   * it (preflight = no), the relay's first answer sets both.
   */
  expect?: { size: number; validator: Validator; at?: string };
  /** The VM's name, for `--status` (relay_metadata.ts's domainName): plain printable text. */
  name?: string;
}

/**
 * The configuration for serving `url` with the host's settings.
 *
 * @example
 * ```ts
 * import { relayConfig } from "./config.ts";
 * import { DEFAULT_SETTINGS } from "../settings.ts";
 * import { parseIsoUrl } from "../url.ts";
 * import { assertEquals } from "../_assert.ts";
 * const config = relayConfig(parseIsoUrl("https://i.example/a.iso?s=1"), { settings: DEFAULT_SETTINGS, file: "/etc/vdsm/httpsisoboot.conf" });
 * assertEquals([config.url, config.timeout], ["https://i.example:443/a.iso?s=1", 30]);
 * ```
 */
export function relayConfig(
  url: IsoUrl,
  host: { settings: Settings; file: string },
  name?: string,
): RelayConfig {
  const { settings, file } = host;
  return {
    url: url.href,
    timeout: settings.timeout,
    allow: settings.allow,
    settingsFile: file,
    cacheSize: settings.relayCacheSize,
    cacheTotal: settings.relayCacheTotal,
    readaheadBlocks: settings.relayReadahead / RELAY_BLOCK_BYTES,
    sharedCache: settings.relaySharedCache,
    hostConnections: settings.relayHostConnections,
    ...(name !== undefined && { name }),
  };
}

/**
 * The config file's text.
 *
 * @example
 * ```ts
 * import { parseRelayConfig, relayConfigText } from "./config.ts";
 * import { assertEquals } from "../_assert.ts";
 * const config = { url: "https://i.example:443/a.iso", timeout: 30, allow: [{ host: "i.example" }], settingsFile: "/etc/vdsm/httpsisoboot.conf", cacheSize: 16777216, cacheTotal: { percent: 50 }, readaheadBlocks: 8, sharedCache: 0, hostConnections: 64 };
 * assertEquals(parseRelayConfig(relayConfigText(config), "x.relay"), config);
 * ```
 */
export function relayConfigText(config: RelayConfig): string {
  return `${JSON.stringify(config)}\n`;
}

/**
 * Reads a config file's text back, checking every field as the hook did.
 *
 * @param text The file's text.
 * @param file The file's path, for messages.
 * @throws {RelayError} If it is not a config the hook would have written.
 */
export function parseRelayConfig(text: string, file: string): RelayConfig {
  const refuse = (what: string) =>
    new RelayError(`the relay's config ${file} ${what}; start the VM again, which writes it anew`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch {
    throw refuse("is not JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw refuse("is not an object");
  const {
    url,
    timeout,
    allow,
    settingsFile,
    cacheSize,
    cacheTotal,
    readaheadBlocks,
    sharedCache,
    hostConnections,
    expect,
    name: vmName,
  } = raw;
  if (typeof url !== "string") throw refuse("has no URL");
  try {
    parseIsoUrl(url);
  } catch {
    throw refuse("has a URL the hook would refuse");
  }
  if (!isWhole(timeout, 1, 10_000)) throw refuse("has no valid timeout");
  if (!isWhole(cacheSize, 1, 2 ** 50)) throw refuse("has no valid cacheSize");
  if (typeof settingsFile !== "string") throw refuse("has no settingsFile");
  if (!Array.isArray(allow) || !allow.every(isAllowRule)) throw refuse("has no valid allow list");
  if (expect !== undefined && !isExpect(expect)) throw refuse("has no valid expect");
  if (!isCacheTotal(cacheTotal)) throw refuse("has no valid cacheTotal");
  if (!isWhole(readaheadBlocks, 0, 64)) throw refuse("has no valid readaheadBlocks");
  if (!isWhole(sharedCache, 0, 2 ** 50)) throw refuse("has no valid sharedCache");
  if (!isWhole(hostConnections, 1, 1024)) throw refuse("has no valid hostConnections");
  if (vmName !== undefined && !(typeof vmName === "string" && /^[\x20-\x7e]{1,100}$/.test(vmName))) {
    throw refuse("has no valid name");
  }
  return {
    url,
    timeout,
    allow,
    settingsFile,
    cacheSize,
    cacheTotal,
    readaheadBlocks,
    sharedCache,
    hostConnections,
    ...(expect !== undefined && { expect }),
    ...(vmName !== undefined && { name: vmName }),
  };
}

function isWhole(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max;
}

function isCacheTotal(value: unknown): value is CacheTotal {
  if (typeof value !== "object" || value === null) return false;
  const { bytes, percent } = value as Record<string, unknown>;
  return Object.keys(value).length === 1 && (isWhole(bytes, 1, 2 ** 50) || isWhole(percent, 1, 100));
}

function isExpect(value: unknown): value is RelayConfig["expect"] {
  if (typeof value !== "object" || value === null) return false;
  const { size, validator, at } = value as Record<string, unknown>;
  if (!isWhole(size, 1, 2 ** 53 - 1) || typeof validator !== "object" || validator === null) return false;
  if (at !== undefined && (typeof at !== "string" || at.length > 8192)) return false;
  const { header, value: text } = validator as Record<string, unknown>;
  return (header === "etag" || header === "last-modified") && typeof text === "string" && text.length <= 256 &&
    !/[\r\n]/.test(text);
}

function isAllowRule(rule: unknown): rule is AllowRule {
  if (typeof rule !== "object" || rule === null) return false;
  const { host, port } = rule as Record<string, unknown>;
  return typeof host === "string" && host !== "" && (port === undefined || isWhole(port, 1, 65535));
}
