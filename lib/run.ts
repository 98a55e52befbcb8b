// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What each mode does, planned as data from what `hook.ts` read: the URL
 * checked against the host's settings, the new domain text to write, and the
 * lines to print. `hook.ts` carries the plans out.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { addHttpsCdrom, type CdromResult } from "./domain/add_https_cdrom.ts";
import { printable } from "./errors.ts";
import { checkAllowed } from "./policy.ts";
import type { ServerReport } from "./preflight/preflight.ts";
import type { Settings } from "./settings.ts";
import { type IsoUrl, parseIsoUrl } from "./url.ts";
import { applyEdits } from "./xml/edit.ts";
import { unifiedDiff } from "./diff.ts";

/** Exit codes, as VDSM reads them: anything but 0 stops the VM from starting. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 2;

/** The host's settings and the file they came from, named in messages. */
export interface Host {
  settings: Settings;
  file: string;
}

/** What hook mode does once it has read the domain. */
export interface HookPlan {
  /** Whether to ask the ISO server before writing. */
  preflight: boolean;
  /** The new domain text; undefined when the domain already has the CD-ROM. */
  write?: string;
  /** The line for stderr when all went well. */
  message: string;
}

/**
 * The URL, checked before anything else is read: its form, then the host's
 * `allow` setting.
 *
 * @throws {UrlError} If the URL is not acceptable.
 * @throws {PolicyError} If `allow` does not name its server.
 * @example
 * ```ts
 * import { checkUrl } from "./run.ts";
 * import { DEFAULT_SETTINGS } from "./settings.ts";
 * import { assertEquals } from "./_assert.ts";
 * const iso = checkUrl("https://isos.example.org/a.iso", { settings: DEFAULT_SETTINGS, file: "/etc/vdsm/httpsisoboot.conf" });
 * assertEquals(iso.href, "https://isos.example.org:443/a.iso");
 * ```
 */
export function checkUrl(url: string, host: Host): IsoUrl {
  const iso = parseIsoUrl(url);
  checkAllowed(iso, host.settings.allow, host.file);
  return iso;
}

/**
 * Plans hook mode: the new domain, and whether to ask the server first.
 *
 * @example
 * ```ts
 * import { checkUrl, planHook } from "./run.ts";
 * import { DEFAULT_SETTINGS } from "./settings.ts";
 * import { assertEquals } from "./_assert.ts";
 * const host = { settings: DEFAULT_SETTINGS, file: "/etc/vdsm/httpsisoboot.conf" };
 * const plan = planHook("<domain><devices/></domain>", checkUrl("https://i.example/a.iso?sig=s", host), host);
 * assertEquals(plan.message, "added CD-ROM sda (sata) from https://i.example:443/a.iso?sig=*** as boot device 1");
 * assertEquals(plan.preflight, true);
 * ```
 */
export function planHook(domainXml: string, iso: IsoUrl, host: Host): HookPlan {
  const result = transform(domainXml, iso, host);
  return {
    preflight: host.settings.preflight,
    write: result.changed ? result.xml : undefined,
    message: describe(result),
  };
}

/**
 * Plans `--dry-run`: what to print, with the CD-ROM's query values as `***`,
 * new or already there. It never writes and never asks the server.
 *
 * @param options `diff` for a unified diff; `name`, the input's name in its header.
 * @example
 * ```ts
 * import { checkUrl, planDryRun } from "./run.ts";
 * import { DEFAULT_SETTINGS } from "./settings.ts";
 * import { assertEquals } from "./_assert.ts";
 * const host = { settings: DEFAULT_SETTINGS, file: "/etc/vdsm/httpsisoboot.conf" };
 * const { stdout } = planDryRun("<domain/>", checkUrl("https://i.example/a.iso?sig=s", host), host, { diff: false, name: "x" });
 * assertEquals(stdout.includes("query='sig=***'"), true);
 * ```
 */
export function planDryRun(
  domainXml: string,
  iso: IsoUrl,
  host: Host,
  options: { diff: boolean; name: string },
): { stdout: string; message: string } {
  const result = transform(domainXml, iso, host);
  const stdout = options.diff
    ? unifiedDiffOf(domainXml, result, options.name)
    : applyEdits(domainXml, result.shownEdits);
  return { stdout, message: describe(result) };
}

/**
 * The report `--check` prints; everything from the server is made printable.
 *
 * @param report What preflight found.
 * @param host What this host has: `driver`, where QEMU's curl block driver is;
 * `signature`, a signed URL's expiry when the query names one (expiry.ts).
 */
export function checkReport(report: ServerReport, host: { driver: string; signature?: string }): string {
  const after = report.redirects ? ` (after ${report.redirects} redirect${report.redirects > 1 ? "s" : ""})` : "";
  const signed = host.signature
    ? `signed URL: ${host.signature}; migration and resume reopen it, so it must last as long as the VM uses the CD-ROM\n`
    : "";
  return `url: ${printable(report.finalUrl, 2000)}${after}\n` +
    `tls: trusted by this host, issuer ${report.issuer ? `CN=${printable(report.issuer, 64)}` : "unknown"}\n` +
    `size: ${report.size} bytes\n` +
    `byte ranges: yes\n` +
    `image: ${report.format}${report.label ? `, volume label '${report.label}'` : ""}\n` +
    signed +
    `qemu curl driver: ${host.driver}\n`;
}

function transform(domainXml: string, iso: IsoUrl, host: Host): CdromResult {
  return addHttpsCdrom(domainXml, iso, { timeout: host.settings.timeout, readahead: host.settings.readahead });
}

function unifiedDiffOf(domainXml: string, result: CdromResult, name: string): string {
  return unifiedDiff(domainXml, result.shownEdits, { fromName: name, toName: `${name} (with httpsisoboot)` });
}

/** The one line the hook logs on success; the query's values are `***`. */
function describe(result: CdromResult): string {
  const where = `CD-ROM ${result.target.dev} (${result.target.bus}) from ${result.url.redacted}`;
  return result.changed ? `added ${where} as boot device 1` : `the domain already has ${where}; nothing to do`;
}
