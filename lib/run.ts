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
import { RELAY_DIRS, type RelayDirs } from "./paths.ts";
import { type RelayConfig, relayConfig } from "./relay/config.ts";
import { HookError, printable, SettingsError, UrlError } from "./errors.ts";
import { proxyFor } from "./proxy.ts";
import { checkAllowed } from "./policy.ts";
import type { ServerReport } from "./preflight/report.ts";
import type { Settings } from "./settings.ts";
import { type IsoUrl, parseIsoUrl } from "./url.ts";
import { applyEdits } from "./xml/edit.ts";
import { parseXml } from "./xml/parse.ts";
import { domainName, domainUuid, relayUrlOf } from "./domain/relay_metadata.ts";
import { unifiedDiff } from "./diff.ts";
import { type LibvirtVersion, nbdReconnectDelay } from "./libvirt_version.ts";

/** Exit codes, as VDSM reads them: anything but 0 stops the VM from starting. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 2;

/** The host's settings and the file they came from, named in messages. */
export interface Host {
  settings: Settings;
  file: string;
  /** Where relays keep their files: RELAY_DIRS unless a test says otherwise. */
  dirs?: RelayDirs;
  /** The host's libvirt, when the hook asked it (relay mode): whether to write `<reconnect delay>`. */
  libvirt?: LibvirtVersion;
}

/** The relay a plan needs running before the domain is written. */
export interface RelayStart {
  uuid: string;
  config: RelayConfig;
}

/** What hook mode does once it has read the domain. */
export interface HookPlan {
  /** Whether to ask the ISO server before writing. */
  preflight: boolean;
  /** The new domain text; undefined when the domain already has the CD-ROM. */
  write?: string;
  /** The line for stderr when all went well. */
  message: string;
  /** The VM's relay, in relay mode: started (or found running) before the domain is written. */
  relay?: RelayStart;
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
  const { settings } = host;
  const proxy = proxyFor(iso, settings.proxy, settings.noProxy);
  if (settings.relay === "off" && proxy) {
    throw new SettingsError(
      `${host.file} sets relay = off, but ${iso.host} is reached through the proxy ${proxy.shown}, which QEMU's curl ` +
        `driver cannot use: set relay = nbdkit, or name the host in no_proxy if this host reaches it directly`,
    );
  }
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
 * const domain = "<domain><uuid>7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21</uuid><devices/></domain>";
 * const plan = planHook(domain, checkUrl("https://i.example/a.iso?sig=s", host), host);
 * assertEquals(
 *   plan.message,
 *   "added CD-ROM sda (sata) from https://i.example:443/a.iso?sig=*** through its relay on " +
 *     "/run/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.sock as boot device 1",
 * );
 * assertEquals([plan.preflight, plan.relay?.config.url], [true, "https://i.example:443/a.iso?sig=s"]);
 * ```
 */
export function planHook(domainXml: string, iso: IsoUrl, host: Host): HookPlan {
  const result = transform(domainXml, iso, host);
  return {
    preflight: host.settings.preflight,
    write: result.changed ? result.xml : undefined,
    message: describe(result),
    relay: result.relay && { uuid: result.relay.uuid, config: relayConfig(iso, host, result.relay.name) },
  };
}

/**
 * Plans the start of a VM that arrives already hooked, by migration or from
 * hibernation: the relay its domain's metadata records, checked against
 * this host's settings; undefined when it has no relay.
 *
 * @throws {DomainError} If the domain is not well-formed.
 * @throws {UrlError} If the recorded URL is not one the hook accepts.
 * @throws {PolicyError} If this host's `allow` does not name its server.
 * @example
 * ```ts
 * import { planIncoming } from "./run.ts";
 * import { DEFAULT_SETTINGS } from "./settings.ts";
 * import { assertEquals } from "./_assert.ts";
 * const host = { settings: DEFAULT_SETTINGS, file: "/etc/vdsm/httpsisoboot.conf" };
 * assertEquals(planIncoming("<domain><uuid>7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21</uuid></domain>", host), undefined);
 * ```
 */
export function planIncoming(
  domainXml: string,
  host: Host,
  property?: string,
): (RelayStart & { url: IsoUrl }) | undefined {
  const document = parseXml(domainXml);
  const recorded = relayUrlOf(document);
  if (recorded === undefined) return undefined;
  const url = checkUrl(incomingUrl(recorded, property), host);
  if (url.redacted !== recorded) {
    throw new UrlError(
      `the httpsisoboot property names ${url.redacted}, but this VM reads ${printable(recorded, 300)} through ` +
        `its relay; a running VM's CD-ROM cannot change its ISO: stop the VM to give it another`,
    );
  }
  return { uuid: domainUuid(document), url, config: relayConfig(url, host, domainName(document)) };
}

/**
 * The whole URL of an incoming VM's ISO: the custom property VDSM passes
 * (the domain records it with query values hidden); the record itself when
 * it has no query, so nothing is hidden.
 */
function incomingUrl(recorded: string, property: string | undefined): string {
  if (property) return property;
  if (!recorded.includes("?")) return recorded;
  throw new UrlError(
    `this VM reads ${printable(recorded, 300)} through its relay, but VDSM passed no httpsisoboot property, which ` +
      `holds its query; check that the VM still has the custom property`,
  );
}

/**
 * The VM a hook point is about: the domain's `<uuid>`, or else VDSM's
 * `vmId`; undefined when neither is a UUID.
 *
 * @example
 * ```ts
 * import { vmUuid } from "./run.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(vmUuid("not xml", "7A3C1F52-4D1E-4B7A-9C2E-5F0E8A6B1D21"), "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21");
 * ```
 */
export function vmUuid(domainXml: string | undefined, vmId: string | undefined): string | undefined {
  for (const xml of [domainXml, vmId && `<domain><uuid>${vmId.replace(/[<&]/g, "")}</uuid></domain>`]) {
    if (!xml) continue;
    try {
      return domainUuid(parseXml(xml));
    } catch (error) {
      if (!(error instanceof HookError)) throw error; // not there, or not a UUID: try the next
    }
  }
  return undefined;
}

/**
 * Plans `--dry-run`: what to print, with the CD-ROM's query values as `***`,
 * new or already there. It never writes and never asks the server.
 *
 * @param options `diff` for a unified diff; `name`, the input's name in its header;
 * `relay`, in relay mode, the commands that would start it, shown after the line.
 * @example
 * ```ts
 * import { checkUrl, planDryRun } from "./run.ts";
 * import { DEFAULT_SETTINGS } from "./settings.ts";
 * import { assertEquals } from "./_assert.ts";
 * const host = { settings: { ...DEFAULT_SETTINGS, relay: "off" as const }, file: "/etc/vdsm/httpsisoboot.conf" };
 * const { stdout } = planDryRun("<domain/>", checkUrl("https://i.example/a.iso?sig=s", host), host, { diff: false, name: "x" });
 * assertEquals(stdout.includes("query='sig=***'"), true);
 * ```
 */
export function planDryRun(
  domainXml: string,
  iso: IsoUrl,
  host: Host,
  options: { diff: boolean; name: string; relay?: RelayCommands },
): { stdout: string; message: string } {
  const result = transform(domainXml, iso, host);
  const stdout = options.diff
    ? unifiedDiffOf(domainXml, result, options.name)
    : applyEdits(domainXml, result.shownEdits);
  const relay = result.relay && options.relay;
  const notes = relay
    ? [`the hook would start the relay: ${shellWords(relay.start)}`, `the relay would run: ${shellWords(relay.nbdkit)}`]
    : [];
  return { stdout, message: [describe(result), ...notes].join("\nhttpsisoboot: ") };
}

/** How a relay would be started, for --dry-run to show. */
export interface RelayCommands {
  /** What the hook runs: systemctl start, or this program with --relay. */
  start: string[];
  /** The nbdkit command the relay runs; it holds nothing of the URL. */
  nbdkit: string[];
}

/**
 * Words as a shell would need them: quoted when they hold anything but safe characters.
 *
 * @example
 * ```ts
 * import { shellWords } from "./run.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(shellWords(["nbdkit", "--filter=cache", "a b", "it's"]), `nbdkit --filter=cache 'a b' 'it'\\''s'`);
 * ```
 */
export function shellWords(words: string[]): string {
  return words.map((word) => /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`).join(
    " ",
  );
}

/**
 * The report `--check` prints; everything from the server is made printable.
 *
 * @param report What preflight found.
 * @param host What this host has: `driver`, where QEMU's curl block driver is;
 * `relay`, whether and how relays run here; `signature`, a signed URL's
 * expiry when the query names one (expiry.ts).
 */
export function checkReport(
  report: ServerReport,
  host: { driver: string; relay?: string[]; signature?: string; selinux?: string; warnings?: string[]; proxy?: string },
): string {
  const after = report.redirects ? ` (after ${report.redirects} redirect${report.redirects > 1 ? "s" : ""})` : "";
  const signed = host.signature
    ? `signed URL: ${host.signature}; migration and resume reopen it, so it must last as long as the VM uses the CD-ROM\n`
    : "";
  return `url: ${printable(report.finalUrl, 2000)}${after}\n` +
    (host.proxy === undefined ? "" : `proxy: ${host.proxy}\n`) +
    `tls: trusted by this host, issuer ${report.issuer ? `CN=${printable(report.issuer, 64)}` : "unknown"}\n` +
    `size: ${report.size} bytes\n` +
    `byte ranges: yes\n` +
    (report.headRefused === undefined
      ? ""
      : `head: refused (HTTP ${report.headRefused}), as a URL signed for GET only answers; the relay asks no HEAD\n`) +
    `image: ${report.format}${report.label ? `, volume label '${report.label}'` : ""}\n` +
    signed +
    (host.relay ?? []).map((line) => `relay: ${line}\n`).join("") +
    `qemu curl driver: ${host.driver}\n` +
    (host.selinux === undefined ? "" : `selinux: ${host.selinux}\n`) +
    (host.warnings ?? []).map((line) => `warning: ${line}\n`).join("");
}

function transform(domainXml: string, iso: IsoUrl, host: Host): CdromResult {
  const { settings } = host;
  if (settings.relay === "nbdkit") {
    return addHttpsCdrom(domainXml, iso, {
      relayDir: (host.dirs ?? RELAY_DIRS).run,
      reconnectDelay: nbdReconnectDelay(host.libvirt),
    });
  }
  return addHttpsCdrom(domainXml, iso, { timeout: settings.timeout, readahead: settings.readahead });
}

function unifiedDiffOf(domainXml: string, result: CdromResult, name: string): string {
  return unifiedDiff(domainXml, result.shownEdits, { fromName: name, toName: `${name} (with httpsisoboot)` });
}

/** The one line the hook logs on success; the query's values are `***`. */
function describe(result: CdromResult): string {
  const through = result.relay ? ` through its relay on ${result.relay.socket}` : "";
  const where = `CD-ROM ${result.target.dev} (${result.target.bus}) from ${result.url.redacted}${through}`;
  if (result.added) return `added ${where} as boot device 1`;
  return result.changed ? `the domain's ${where} now reads this URL` : `the domain already has ${where}; nothing to do`;
}
