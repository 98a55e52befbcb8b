// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Makes room for a new first boot device in a libvirt domain.
 *
 * libvirt has two ways to order boot devices: `<os><boot dev='hd'/>` and
 * per-device `<boot order='N'/>`, and it refuses a domain that uses both
 * ("per-device boot elements cannot be used together with os/boot elements").
 * Once any device has an order, QEMU boots strictly by those orders and a
 * device without one is not bootable at all.
 *
 * This module is pure: it returns edits and does no I/O.
 *
 * @module
 */
import { DomainError } from "../errors.ts";
import { type Edit, removeElement, renderElement, setAttribute } from "../xml/edit.ts";
import { children, descendants, findAttribute, getAttribute, type XmlDocument, type XmlElement } from "../xml/tree.ts";

/**
 * libvirt reads at most this many `<os><boot dev>` elements
 * (VIR_DOMAIN_BOOT_LAST) and ignores the rest.
 */
const MAX_OS_BOOT_DEVS = 4;

/**
 * The edits that move every boot device of `document` one place later, so
 * that a device added with `<boot order='1'/>` boots first.
 *
 * Every `<boot order>` inside any `<devices>` (disks, interfaces, hostdevs,
 * redirdevs, at any depth) moves down by one, keeping gaps. When the domain
 * uses `<os><boot dev>` instead, or nothing at all (libvirt then boots `hd`),
 * that list becomes per-device orders 2, 3, … (first disk for `hd`, first
 * CD-ROM for `cdrom`, first interface for `network`, first floppy for `fd`)
 * and the `<os><boot>` elements are removed.
 *
 * @param document The parsed domain.
 * @returns The edits; the new device is not among them.
 * @throws {DomainError} If a boot order is not a positive integer, or the
 * domain uses both kinds of boot order (libvirt rejects that).
 * @example
 * ```ts
 * import { parseXml } from "../xml/parse.ts";
 * import { applyEdits } from "../xml/edit.ts";
 * import { bootOrderEdits } from "./boot_order.ts";
 * import { assertEquals } from "../_assert.ts";
 * const document = parseXml("<domain><devices><disk><boot order='1'/></disk></devices></domain>");
 * assertEquals(
 *   applyEdits(document.text, bootOrderEdits(document)),
 *   "<domain><devices><disk><boot order='2'/></disk></devices></domain>",
 * );
 * ```
 */
export function bootOrderEdits(document: XmlDocument): Edit[] {
  const domain = document.root;
  const devicesList = children(domain, "devices");
  const osBoots = children(domain, "os").flatMap((os) => children(os, "boot"));
  const ordered = devicesList.flatMap((devices) => descendants(devices, "boot"))
    .filter((boot) => findAttribute(boot, "order") !== undefined);

  if (ordered.length > 0 && osBoots.length > 0) {
    throw new DomainError(
      "the domain has both <os><boot dev> and per-device <boot order>, which libvirt refuses; " +
        "fix the VM's boot settings in the engine",
    );
  }
  if (ordered.length > 0) {
    return ordered.map((boot) => setAttribute(boot, "order", String(parseOrder(getAttribute(boot, "order")!) + 1)));
  }
  const devs = osBoots.slice(0, MAX_OS_BOOT_DEVS).map((boot) => getAttribute(boot, "dev") ?? "");
  return [
    ...convertOsBoot(document, devicesList, devs.length > 0 ? devs : ["hd"]),
    ...osBoots.map((boot) => removeElement(document, boot)),
  ];
}

/** Per-device orders 2, 3, … for the devices `<os><boot dev>` names, in its order. */
function convertOsBoot(document: XmlDocument, devicesList: XmlElement[], devs: string[]): Edit[] {
  const firsts = firstBootables(devicesList);
  const done = new Set<XmlElement>();
  const edits: Edit[] = [];
  let order = 2;
  for (const dev of devs) {
    const device = firsts.get(dev);
    if (!device || done.has(device) || children(device, "boot").length > 0) continue;
    done.add(device);
    edits.push(appendBootOrder(document, device, order++));
  }
  return edits;
}

/** The first device libvirt boots for each `<os><boot dev>` value, in one pass. */
function firstBootables(devicesList: XmlElement[]): Map<string, XmlElement> {
  const kinds: Record<string, string> = { disk: "hd", cdrom: "cdrom", floppy: "fd" };
  const firsts = new Map<string, XmlElement>();
  for (const devices of devicesList) {
    for (const device of devices.children) {
      if (device.namespace !== null) continue;
      const dev = device.name === "disk"
        ? kinds[getAttribute(device, "device") ?? "disk"]
        : device.name === "interface"
        ? "network"
        : undefined;
      if (dev !== undefined && !firsts.has(dev)) firsts.set(dev, device);
    }
  }
  return firsts;
}

function parseOrder(value: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(value)) {
    throw new DomainError(`a device has <boot order='${value}'>, which is not a positive integer`);
  }
  return Number(value);
}

/** Adds `<boot order='N'/>` as the last child of a device, indented like its last child. */
function appendBootOrder(document: XmlDocument, device: XmlElement, order: number): Edit {
  const boot = renderElement(document, { name: "boot", attributes: [["order", String(order)]] }, "", "");
  if (device.selfClosing) return { start: device.tagEnd - 2, end: device.tagEnd, text: `>${boot}</${device.name}>` };
  const last = device.children.at(-1);
  const { text } = document;
  const before = last ? text.slice(last.leadStart, last.start) : "";
  const after = last ? text.slice(last.end, device.closeStart) : "";
  if (last && /^[ \t\r\n]+$/.test(before) && /^[ \t\r\n]+$/.test(after)) {
    return { start: last.end, end: last.end, text: before + boot };
  }
  return { start: device.closeStart, end: device.closeStart, text: boot };
}
