/**
 * The hook's transform: add a read-only https CD-ROM to a libvirt domain and
 * boot from it first.
 *
 * This module is pure: string in, string out, no I/O.
 *
 * @module
 */
import { builder } from "xmlbuilder2";
import type { Element, Node } from "@oozcitak/dom/lib/dom/interfaces.js";
import { parseIsoUrl, type IsoUrl } from "./url.ts";
import { parseXml } from "./xml_parse.ts";
import { serializeXml } from "./xml_serialize.ts";
import { child, children } from "./dom.ts";
import { chooseTarget, type DriveAddress, type ExistingDisk, type Target } from "./target.ts";
import { bootFirst } from "./boot_order.ts";

/** What {@link addHttpsCdrom} did. */
export interface CdromResult {
  /** The resulting domain XML; the input itself when nothing changed. */
  xml: string;
  /** False when the domain already had this CD-ROM, so nothing was added. */
  changed: boolean;
  /** The bus and target name of the CD-ROM. */
  target: Target;
  /** The parsed URL. */
  url: IsoUrl;
}

const TEXT_NODE = 3;
const DEFAULT_INDENT_STEP = "  ";

/**
 * Adds `<disk type='network' device='cdrom'>` for an https ISO to a domain,
 * with `<boot order='1'/>`, and moves every other boot device down one.
 *
 * The URL is checked before the XML is read. The new disk is placed after the
 * last existing disk and indented like it; everything else is written back as
 * it was read. A domain that already has a CD-ROM for the same URL is
 * returned unchanged, so running the hook twice adds nothing.
 *
 * @param domainXml The libvirt domain XML.
 * @param url The ISO's https URL, as text or already parsed.
 * @returns The new XML and what was done.
 * @throws {TypeError} If the URL is not acceptable.
 * @throws {SyntaxError} If the XML is malformed or is not a domain with `<devices>`.
 * @throws {RangeError} If no target name is free.
 * @example
 * ```ts
 * import { addHttpsCdrom } from "./add_https_cdrom.ts";
 * const domain = "<domain type='kvm'><os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>";
 * const result = addHttpsCdrom(domain, "https://isos.example.org/boot.iso");
 * result.target; // { dev: "sda", bus: "sata" }
 * ```
 */
export function addHttpsCdrom(domainXml: string, url: string | IsoUrl): CdromResult {
  const iso = typeof url === "string" ? parseIsoUrl(url) : url;
  const parsed = parseXml(domainXml);
  const domain = parsed.root;
  if (domain.nodeName !== "domain") {
    throw new SyntaxError(`the root element is <${domain.nodeName}>, not <domain>; pass a libvirt domain XML`);
  }
  const devices = child(domain, "devices");
  if (!devices) throw new SyntaxError("the domain XML has no <devices> element, so there is nowhere to add the CD-ROM");

  const disks = children(devices, "disk");
  const existing = disks.find((disk) => isCdromFor(disk, iso));
  if (existing) {
    const target = child(existing, "target");
    return {
      xml: domainXml,
      changed: false,
      target: { dev: target?.getAttribute("dev") ?? "", bus: (target?.getAttribute("bus") ?? "") as Target["bus"] },
      url: iso,
    };
  }

  const target = chooseTarget(machineOf(domain), disks.map(describeDisk));
  const cdrom = buildCdrom(devices, iso, target);
  bootFirst(domain, cdrom);
  return { xml: serializeXml(parsed), changed: true, target, url: iso };
}

function machineOf(domain: Element): { arch: string; machine: string } {
  const type = child(domain, "os") && child(child(domain, "os")!, "type");
  return {
    arch: type?.getAttribute("arch") ?? "x86_64",
    machine: type?.getAttribute("machine") ?? "",
  };
}

function describeDisk(disk: Element): ExistingDisk {
  const target = child(disk, "target");
  const dev = target?.getAttribute("dev") ?? "";
  const address = child(disk, "address");
  return {
    dev,
    bus: target?.getAttribute("bus") ?? busFromName(dev),
    address: address?.getAttribute("type") === "drive" ? readDriveAddress(address) : undefined,
  };
}

// libvirt picks the bus from the name's prefix when <target bus> is absent.
function busFromName(dev: string): string {
  if (dev.startsWith("hd")) return "ide";
  if (dev.startsWith("sd")) return "scsi";
  if (dev.startsWith("vd")) return "virtio";
  if (dev.startsWith("fd")) return "fdc";
  return "";
}

function readDriveAddress(address: Element): DriveAddress {
  const number = (name: string) => Number(address.getAttribute(name) ?? "0");
  return { controller: number("controller"), bus: number("bus"), target: number("target"), unit: number("unit") };
}

function isCdromFor(disk: Element, iso: IsoUrl): boolean {
  if (disk.getAttribute("type") !== "network" || disk.getAttribute("device") !== "cdrom") return false;
  const source = child(disk, "source");
  const host = source && child(source, "host");
  return !!source && !!host &&
    source.getAttribute("protocol") === "https" &&
    source.getAttribute("name") === iso.name &&
    (source.getAttribute("query") ?? undefined) === iso.query &&
    host.getAttribute("name")?.toLowerCase() === iso.host &&
    Number(host.getAttribute("port") ?? "443") === iso.port;
}

/**
 * Builds the CD-ROM element and places it after the last disk (or at the top
 * of `<devices>`), indented like its neighbours.
 */
function buildCdrom(devices: Element, iso: IsoUrl, target: Target): Element {
  const disks = children(devices, "disk");
  const anchor: Node | null = disks.at(-1) ?? child(devices, "emulator") ?? null;
  const outer = indentBefore(anchor ?? firstElement(devices)) ?? closingIndent(devices, DEFAULT_INDENT_STEP);
  const inner = outer === "" ? "" : outer + indentStep(disks.at(-1), outer);
  const step = inner.slice(outer.length);

  const source: Record<string, string> = { protocol: "https", name: iso.name };
  if (iso.query !== undefined) source.query = iso.query;

  const disk = builder({ version: "1.0" }, devices as never)
    .ele("disk", { type: "network", device: "cdrom" })
    .txt(inner).ele("driver", { name: "qemu", type: "raw" }).up()
    .txt(inner).ele("source", source)
    .txt(inner + step).ele("host", { name: iso.host, port: String(iso.port) }).up()
    .txt(inner).up()
    .txt(inner).ele("target", { dev: target.dev, bus: target.bus, tray: "closed" }).up()
    .txt(inner).ele("readonly").up()
    .txt(inner).ele("boot", { order: "1" }).up()
    .txt(outer);
  const element = disk.node as unknown as Element;
  removeEmptyText(element);

  // builder() appended the disk at the end of <devices>; move it into place,
  // right after the anchor, preceded by the anchor's own indent.
  const hadChildren = devices.firstChild !== element;
  const reference = anchor ? anchor.nextSibling : hadChildren ? devices.firstChild : null;
  if (outer !== "") devices.insertBefore(devices.ownerDocument!.createTextNode(outer), reference);
  devices.insertBefore(element, reference);
  const devicesIndent = indentBefore(devices);
  if (!hadChildren && outer !== "" && devicesIndent !== undefined) {
    devices.appendChild(devices.ownerDocument!.createTextNode(devicesIndent));
  }
  return element;
}

function firstElement(parent: Element): Node | null {
  return parent.firstElementChild;
}

/** The white space just before a node, when the document is indented. */
function indentBefore(node: Node | null): string | undefined {
  const before = node?.previousSibling;
  if (!before || before.nodeType !== TEXT_NODE || !/^\s*\n[ \t]*$/.test(before.nodeValue ?? "")) return undefined;
  return before.nodeValue!.slice(before.nodeValue!.lastIndexOf("\n"));
}

/** For an empty `<devices>`: its closing tag's indent plus one step. */
function closingIndent(devices: Element, step: string): string {
  const parentIndent = indentBefore(devices);
  return parentIndent === undefined ? "" : parentIndent + step;
}

/** How much deeper a disk's children are indented than the disk itself. */
function indentStep(disk: Element | undefined, outer: string): string {
  const inner = disk && indentBefore(disk.firstElementChild);
  return inner && inner.startsWith(outer) && inner.length > outer.length
    ? inner.slice(outer.length)
    : DEFAULT_INDENT_STEP;
}

function removeEmptyText(element: Element): void {
  for (let node = element.firstChild, next; node; node = next) {
    next = node.nextSibling;
    if (node.nodeType === TEXT_NODE && node.nodeValue === "") element.removeChild(node);
    else if (node.nodeType === 1) removeEmptyText(node as Element);
  }
}
