/**
 * Makes one device the first boot device of a domain.
 *
 * libvirt has two ways to order boot devices: `<os><boot dev='hd'/>` and
 * per-device `<boot order='N'/>`, and it refuses a domain that uses both
 * ("per-device boot elements cannot be used together with os/boot elements").
 * Once any device has an order, QEMU boots strictly by those orders and a
 * device without one is not bootable at all.
 *
 * This module is pure: it edits a tree in memory and does no I/O.
 *
 * @module
 */
import {
  append,
  child,
  children,
  contains,
  descendants,
  element,
  getAttribute,
  insertAt,
  isIndent,
  previousSibling,
  remove,
  setAttribute,
  text,
  type XmlElement,
} from "./xml_tree.ts";

/**
 * Puts `device` first in the boot order of `domain`, which must hold
 * `<boot order='1'/>` inside `device` already.
 *
 * Every other `<boot order>` under `<devices>` (disks, interfaces, hostdevs,
 * redirdevs, at any depth) moves down by one, keeping gaps. When the domain
 * uses `<os><boot dev>` instead, or nothing at all (libvirt then boots `hd`),
 * that list becomes per-device orders 2, 3, … (first disk for `hd`, first
 * other CD-ROM for `cdrom`, first interface for `network`, first floppy for
 * `fd`) and the `<os><boot>` elements are removed.
 *
 * @param domain The `<domain>` element.
 * @param device The device to boot first, already inside `<devices>`.
 * @throws {SyntaxError} If a boot order is not a positive integer, or the
 * domain uses both kinds of boot order (libvirt rejects that).
 * @example
 * ```ts
 * import { parseXml } from "./xml_parse.ts";
 * import { child, children } from "./xml_tree.ts";
 * import { bootFirst } from "./boot_order.ts";
 * const { root } = parseXml(
 *   "<domain><devices><disk><boot order='1'/></disk><disk id='new'><boot order='1'/></disk></devices></domain>",
 * );
 * const [old, added] = children(child(root, "devices")!, "disk");
 * bootFirst(root, added);
 * child(old, "boot")!.attributes; // [["order", "2"]]
 * ```
 */
export function bootFirst(domain: XmlElement, device: XmlElement): void {
  const devices = child(domain, "devices");
  if (!devices) throw new SyntaxError("the domain has no <devices> element");
  const os = child(domain, "os");
  const osBoots = os ? children(os, "boot") : [];
  const ordered = descendants(devices, "boot").filter(
    (boot) => getAttribute(boot, "order") !== undefined && !contains(device, boot),
  );

  if (ordered.length > 0 && osBoots.length > 0) {
    throw new SyntaxError(
      "the domain has both <os><boot dev> and per-device <boot order>, which libvirt refuses; " +
        "fix the VM's boot settings in the engine",
    );
  }

  for (const boot of ordered) {
    setAttribute(boot, "order", String(parseOrder(getAttribute(boot, "order")!) + 1));
  }
  if (ordered.length > 0) return;

  const devs = osBoots.map((boot) => getAttribute(boot, "dev") ?? "");
  let order = 2;
  for (const dev of devs.length > 0 ? devs : ["hd"]) {
    const target = firstBootable(devices, dev, device);
    if (target && !hasBootOrder(target)) {
      appendBootOrder(target, order++);
    }
  }
  for (const boot of osBoots) removeWithIndent(boot);
}

function parseOrder(value: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(value)) {
    throw new SyntaxError(`a device has <boot order='${value}'>, which is not a positive integer`);
  }
  return Number(value);
}

function firstBootable(devices: XmlElement, dev: string, exclude: XmlElement): XmlElement | undefined {
  const disks = children(devices, "disk").filter((disk) => disk !== exclude);
  const diskOfKind = (kind: string) => disks.find((disk) => (getAttribute(disk, "device") ?? "disk") === kind);
  switch (dev) {
    case "hd":
      return diskOfKind("disk");
    case "cdrom":
      return diskOfKind("cdrom");
    case "fd":
      return diskOfKind("floppy");
    case "network":
      return child(devices, "interface");
  }
  return undefined;
}

function hasBootOrder(device: XmlElement): boolean {
  return children(device, "boot").length > 0;
}

/**
 * Adds `<boot order='N'/>` as the last child of a device, indented like the
 * device's other children.
 */
function appendBootOrder(device: XmlElement, order: number): void {
  const boot = element("boot", { order: String(order) });
  // An indented device ends with [indent, last child, indent before </disk>].
  const count = device.children.length;
  const indent = device.children[count - 3];
  if (count >= 3 && isIndent(device.children[count - 1]) && isIndent(indent)) {
    insertAt(device, text(indent.text), count - 1);
    insertAt(device, boot, count);
  } else {
    append(device, boot);
  }
}

/** Removes an element together with the white space that indents it. */
function removeWithIndent(node: XmlElement): void {
  const before = previousSibling(node);
  if (isIndent(before)) remove(before);
  remove(node);
}
