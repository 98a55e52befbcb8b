// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The https CD-ROM as a value, and the `<disk>` element libvirt reads for it.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import type { IsoUrl } from "../url.ts";
import type { NewElement } from "../xml/edit.ts";
import { child, getAttribute, type XmlElement } from "../xml/tree.ts";
import type { Target } from "./target.ts";

/** How QEMU should read the ISO: written into the disk's `<source>`. */
export interface CdromOptions {
  /** `<timeout seconds>`: how long QEMU's curl waits for each request (direct mode). */
  timeout?: number;
  /** `<readahead size>`: bytes QEMU's curl reads beyond each request; a multiple of 512 (direct mode). */
  readahead?: number;
  /**
   * Read the ISO through the VM's relay, on this NBD socket, instead of with
   * QEMU's curl; with `reconnectDelay`, QEMU waits that many seconds for a
   * relay that restarts (libvirt 9.2 and later).
   */
  relay?: { socket: string; reconnectDelay?: number };
}

/** A read-only CD-ROM that QEMU reads from an https URL, booted first. */
export interface HttpsCdrom extends CdromOptions {
  url: IsoUrl;
  target: Target;
}

/**
 * The `<disk type='network' device='cdrom'>` element for a CD-ROM: an https
 * source QEMU's curl reads, or the relay's NBD socket.
 *
 * @example
 * ```ts
 * import { cdromElement } from "./cdrom.ts";
 * import { parseIsoUrl } from "../url.ts";
 * import { assertEquals } from "../_assert.ts";
 * const disk = cdromElement({ url: parseIsoUrl("https://isos.example.org/a.iso?s=1"), target: { dev: "sda", bus: "sata" } });
 * assertEquals(disk.children!.map((element) => element.name), ["driver", "source", "target", "readonly", "boot"]);
 * assertEquals(disk.children![1].attributes, [["protocol", "https"], ["name", "/a.iso"], ["query", "s=1"]]);
 * ```
 */
export function cdromElement(cdrom: HttpsCdrom): NewElement {
  return {
    name: "disk",
    attributes: [["type", "network"], ["device", "cdrom"]],
    children: [
      { name: "driver", attributes: [["name", "qemu"], ["type", "raw"]] },
      cdrom.relay ? relaySource(cdrom.relay.socket, cdrom.relay.reconnectDelay) : httpsSource(cdrom),
      { name: "target", attributes: [["dev", cdrom.target.dev], ["bus", cdrom.target.bus], ["tray", "closed"]] },
      { name: "readonly", attributes: [] },
      { name: "boot", attributes: [["order", "1"]] },
    ],
  };
}

/** `<source protocol='https'>`, with QEMU's curl tuning. */
function httpsSource(cdrom: HttpsCdrom): NewElement {
  const { url } = cdrom;
  const source: Array<[string, string]> = [["protocol", "https"], ["name", url.name]];
  if (url.query !== undefined) source.push(["query", url.query]);
  const tuning: NewElement[] = [];
  if (cdrom.readahead !== undefined) {
    tuning.push({ name: "readahead", attributes: [["size", String(cdrom.readahead)]] });
  }
  if (cdrom.timeout !== undefined) tuning.push({ name: "timeout", attributes: [["seconds", String(cdrom.timeout)]] });
  return {
    name: "source",
    attributes: source,
    children: [{ name: "host", attributes: [["name", url.host], ["port", String(url.port)]] }, ...tuning],
  };
}

/**
 * `<source protocol='nbd'>` on the relay's Unix socket, with `<reconnect
 * delay>` where libvirt has it: the URL is not in the disk, only in the metadata.
 */
function relaySource(socket: string, reconnectDelay?: number): NewElement {
  const reconnect: NewElement[] = reconnectDelay === undefined
    ? []
    : [{ name: "reconnect", attributes: [["delay", String(reconnectDelay)]] }];
  return {
    name: "source",
    attributes: [["protocol", "nbd"]],
    children: [{ name: "host", attributes: [["transport", "unix"], ["socket", socket]] }, ...reconnect],
  };
}

/**
 * Whether a `<disk>` is already the relay's CD-ROM on this socket. Which URL
 * the relay serves is in the domain's metadata (relay_metadata.ts).
 *
 * @example
 * ```ts
 * import { isRelayCdrom } from "./cdrom.ts";
 * import { parseXml } from "../xml/parse.ts";
 * import { assertEquals } from "../_assert.ts";
 * const { root } = parseXml("<disk type='network' device='cdrom'><source protocol='nbd'><host transport='unix' socket='/run/h/u.sock'/></source></disk>");
 * assertEquals(isRelayCdrom(root, "/run/h/u.sock"), true);
 * assertEquals(isRelayCdrom(root, "/run/h/v.sock"), false);
 * ```
 */
export function isRelayCdrom(disk: XmlElement, socket: string): boolean {
  if (getAttribute(disk, "type") !== "network" || getAttribute(disk, "device") !== "cdrom") return false;
  const source = child(disk, "source");
  const host = child(source, "host");
  return getAttribute(source, "protocol") === "nbd" && getAttribute(host, "transport") === "unix" &&
    getAttribute(host, "socket") === socket;
}

/**
 * Whether a `<disk>` is already the CD-ROM for this URL, so the hook has nothing to add.
 *
 * @example
 * ```ts
 * import { isCdromFor } from "./cdrom.ts";
 * import { parseIsoUrl } from "../url.ts";
 * import { parseXml } from "../xml/parse.ts";
 * import { assertEquals } from "../_assert.ts";
 * const { root } = parseXml("<disk type='network' device='cdrom'><source protocol='https' name='/a.iso'><host name='I.example'/></source></disk>");
 * assertEquals(isCdromFor(root, parseIsoUrl("https://i.example/a.iso")), true);
 * assertEquals(isCdromFor(root, parseIsoUrl("https://i.example:8443/a.iso")), false);
 * ```
 */
export function isCdromFor(disk: XmlElement, url: IsoUrl): boolean {
  if (getAttribute(disk, "type") !== "network" || getAttribute(disk, "device") !== "cdrom") return false;
  const source = child(disk, "source");
  const host = child(source, "host");
  return !!host &&
    getAttribute(source, "protocol") === "https" &&
    getAttribute(source, "name") === url.name &&
    getAttribute(source, "query") === url.query &&
    getAttribute(host, "name")?.toLowerCase() === url.host &&
    Number(getAttribute(host, "port") ?? "443") === url.port;
}
