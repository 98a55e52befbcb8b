// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * When a signed URL stops working, read from its query: migration and
 * restore from hibernation reopen the URL on another host, so a signature
 * must outlive the VM's use of the CD-ROM.
 *
 * This module is pure: it does no I/O, and takes the time as an argument.
 *
 * @module
 */

/** What the query says about the URL's lifetime. */
export interface Expiry {
  /** Which signing scheme the parameters belong to, and which parameters. */
  scheme: string;
  expires: Date;
}

/**
 * The expiry of a signed URL: S3 (`X-Amz-Date` + `X-Amz-Expires`), Google
 * Cloud Storage (`X-Goog-Date` + `X-Goog-Expires`) or Azure SAS (`se`).
 *
 * @param query The URL's raw query, without `?`.
 * @returns The expiry, or undefined when the query names none (or a malformed one).
 * @example
 * ```ts
 * import { signedUrlExpiry } from "./expiry.ts";
 * import { assertEquals } from "./_assert.ts";
 * const expiry = signedUrlExpiry("X-Amz-Date=20261127T120000Z&X-Amz-Expires=3600&X-Amz-Signature=abc");
 * assertEquals(expiry?.expires.toISOString(), "2026-11-27T13:00:00.000Z");
 * assertEquals(signedUrlExpiry("sig=abc"), undefined);
 * ```
 */
export function signedUrlExpiry(query: string | undefined): Expiry | undefined {
  if (query === undefined) return undefined;
  const params = queryParams(query);
  for (
    const [scheme, date, seconds] of [["S3", "x-amz-date", "x-amz-expires"], ["GCS", "x-goog-date", "x-goog-expires"]]
  ) {
    const start = basicIsoDate(params.get(date));
    const lifetime = Number(params.get(seconds));
    if (start && params.has(seconds) && Number.isSafeInteger(lifetime) && lifetime >= 0) {
      return { scheme: `${scheme}: ${date} + ${seconds}`, expires: new Date(start.getTime() + lifetime * 1000) };
    }
  }
  const se = params.get("se");
  if (se !== undefined && /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z)?$/.test(se)) {
    const expires = new Date(se.length === 10 ? `${se}T00:00:00Z` : se);
    if (!Number.isNaN(expires.getTime())) return { scheme: "Azure SAS: se", expires };
  }
  return undefined;
}

/**
 * One line for an admin: when the signature expires, and how long from `now`.
 *
 * @example
 * ```ts
 * import { describeExpiry } from "./expiry.ts";
 * import { assertEquals } from "./_assert.ts";
 * const expiry = { scheme: "Azure SAS: se", expires: new Date("2026-11-27T12:00:00Z") };
 * assertEquals(describeExpiry(expiry, new Date("2026-11-27T10:30:00Z")), "expires 2026-11-27T12:00:00Z (Azure SAS: se), in 1 h 30 min");
 * assertEquals(describeExpiry(expiry, new Date("2026-11-30T12:00:00Z")), "EXPIRED at 2026-11-27T12:00:00Z (Azure SAS: se), 3 d ago");
 * ```
 */
export function describeExpiry(expiry: Expiry, now: Date): string {
  const at = expiry.expires.toISOString().replace(/\.000Z$/, "Z");
  const left = expiry.expires.getTime() - now.getTime();
  return left > 0
    ? `expires ${at} (${expiry.scheme}), in ${duration(left)}`
    : `EXPIRED at ${at} (${expiry.scheme}), ${duration(-left)} ago`;
}

function queryParams(query: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const pair of query.split("&")) {
    const equals = pair.indexOf("=");
    if (equals < 0) continue;
    try {
      params.set(decodeURIComponent(pair.slice(0, equals)).toLowerCase(), decodeURIComponent(pair.slice(equals + 1)));
    } catch { /* a malformed escape: not a parameter we read */ }
  }
  return params;
}

/** `20261127T120000Z`, the form S3 and GCS sign with. */
function basicIsoDate(text: string | undefined): Date | undefined {
  const match = text && /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second] = match.map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function duration(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ""}`;
  return `${Math.round(minutes / 1440)} d`;
}
