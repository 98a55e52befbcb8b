/**
 * The hook's transform: add a read-only https CD-ROM to a libvirt domain and
 * boot from it first.
 *
 * This module is pure: string in, string out, no I/O.
 *
 * @module
 */
import { type IsoUrl, parseIsoUrl } from "./url.ts";
import { parseXml } from "./xml_parse.ts";
import { serializeXml } from "./xml_serialize.ts";
import {
  child,
  children,
  element,
  firstElement,
  getAttribute,
  insertAt,
  isIndent,
  previousSibling,
  text,
  type XmlElement,
  type XmlNode,
} from "./xml_tree.ts";
import { chooseTarget, type DriveAddress, type ExistingDisk, type Target } from "./target.ts";
import { bootFirst } from "./boot_order.ts";

/** How QEMU should read the ISO: written into the disk's `<source>`. */
export interface CdromOptions {
  /** `<timeout seconds>`: how long QEMU waits for each request. */
  timeout?: number;
  /** `<readahead size>`: bytes QEMU reads beyond each request; a multiple of 512. */
  readahead?: number;
}

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
 * @param options `timeout` and `readahead` for QEMU's curl driver; QEMU's defaults when absent.
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
export function addHttpsCdrom(domainXml: string, url: string | IsoUrl, options: CdromOptions = {}): CdromResult {
  const iso = typeof url === "string" ? parseIsoUrl(url) : url;
  const parsed = parseXml(domainXml);
  const domain = parsed.root;
  if (domain.name !== "domain") {
    throw new SyntaxError(`the root element is <${domain.name}>, not <domain>; pass a libvirt domain XML`);
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
      target: { dev: attr(target, "dev") ?? "", bus: (attr(target, "bus") ?? "") as Target["bus"] },
      url: iso,
    };
  }

  const target = chooseTarget(machineOf(domain), disks.map(describeDisk));
  const cdrom = buildCdrom(devices, iso, target, options);
  bootFirst(domain, cdrom);
  return { xml: serializeXml(parsed), changed: true, target, url: iso };
}

function attr(node: XmlElement | undefined, name: string): string | undefined {
  return node && getAttribute(node, name);
}

function machineOf(domain: XmlElement): { arch: string; machine: string } {
  const os = child(domain, "os");
  const type = os && child(os, "type");
  return { arch: attr(type, "arch") ?? "x86_64", machine: attr(type, "machine") ?? "" };
}

function describeDisk(disk: XmlElement): ExistingDisk {
  const target = child(disk, "target");
  const dev = attr(target, "dev") ?? "";
  const address = child(disk, "address");
  return {
    dev,
    bus: attr(target, "bus") ?? busFromName(dev),
    address: attr(address, "type") === "drive" ? readDriveAddress(address!) : undefined,
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

function readDriveAddress(address: XmlElement): DriveAddress {
  const number = (name: string) => Number(getAttribute(address, name) ?? "0");
  return { controller: number("controller"), bus: number("bus"), target: number("target"), unit: number("unit") };
}

function isCdromFor(disk: XmlElement, iso: IsoUrl): boolean {
  if (attr(disk, "type") !== "network" || attr(disk, "device") !== "cdrom") return false;
  const source = child(disk, "source");
  const host = source && child(source, "host");
  return !!source && !!host &&
    attr(source, "protocol") === "https" &&
    attr(source, "name") === iso.name &&
    attr(source, "query") === iso.query &&
    attr(host, "name")?.toLowerCase() === iso.host &&
    Number(attr(host, "port") ?? "443") === iso.port;
}

/**
 * Builds the CD-ROM element and places it after the last disk (or at the top
 * of `<devices>`), indented like its neighbours.
 */
function buildCdrom(devices: XmlElement, iso: IsoUrl, target: Target, options: CdromOptions): XmlElement {
  const disks = children(devices, "disk");
  const anchor: XmlElement | undefined = disks.at(-1) ?? child(devices, "emulator");
  const outer = indentBefore(anchor ?? firstElement(devices)) ?? closingIndent(devices, DEFAULT_INDENT_STEP);
  const step = outer === "" ? "" : indentStep(disks.at(-1), outer);
  const inner = outer + step;

  const source: Record<string, string> = { protocol: "https", name: iso.name };
  if (iso.query !== undefined) source.query = iso.query;
  const lines = (nodes: XmlNode[], indent: string): XmlNode[] =>
    indent === "" ? nodes : [...nodes.flatMap((node) => [text(indent), node]), text(indent.slice(0, -step.length))];

  const cdrom = element("disk", { type: "network", device: "cdrom" }, lines([
    element("driver", { name: "qemu", type: "raw" }),
    element("source", source, lines([
      element("host", { name: iso.host, port: String(iso.port) }),
      ...(options.readahead === undefined ? [] : [element("readahead", { size: String(options.readahead) })]),
      ...(options.timeout === undefined ? [] : [element("timeout", { seconds: String(options.timeout) })]),
    ], inner + step)),
    element("target", { dev: target.dev, bus: target.bus, tray: "closed" }),
    element("readonly"),
    element("boot", { order: "1" }),
  ], inner));

  // Right after the anchor, preceded by the anchor's own indent.
  const wasEmpty = devices.children.length === 0;
  let at = anchor ? devices.children.indexOf(anchor) + 1 : 0;
  if (outer !== "") insertAt(devices, text(outer), at++);
  insertAt(devices, cdrom, at);
  const devicesIndent = indentBefore(devices);
  if (wasEmpty && outer !== "" && devicesIndent !== undefined) insertAt(devices, text(devicesIndent), at + 1);
  return cdrom;
}

/** The white space just before a node, from its last newline, when the document is indented. */
function indentBefore(node: XmlNode | undefined): string | undefined {
  const before = node && previousSibling(node);
  if (!isIndent(before) || !before.text.includes("\n")) return undefined;
  return before.text.slice(before.text.lastIndexOf("\n"));
}

/** For an empty `<devices>`: its own indent plus one step. */
function closingIndent(devices: XmlElement, step: string): string {
  const parentIndent = indentBefore(devices);
  return parentIndent === undefined ? "" : parentIndent + step;
}

/** How much deeper a disk's children are indented than the disk itself. */
function indentStep(disk: XmlElement | undefined, outer: string): string {
  const inner = disk && indentBefore(firstElement(disk));
  return inner && inner.startsWith(outer) && inner.length > outer.length ? inner.slice(outer.length) : DEFAULT_INDENT_STEP;
}
