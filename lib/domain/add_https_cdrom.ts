// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The hook's transform: add a read-only https CD-ROM to a libvirt domain and
 * boot from it first.
 *
 * This module is pure: string in, string out, no I/O.
 *
 * @module
 */
import { DomainError } from "../errors.ts";
import { type IsoUrl, parseIsoUrl, redactQuery } from "../url.ts";
import { parseXml } from "../xml/parse.ts";
import { applyEdits, type Edit, insertElement, type NewElement, setAttribute } from "../xml/edit.ts";
import { child, children, getAttribute, type XmlDocument, type XmlElement } from "../xml/tree.ts";
import { chooseTarget, type DriveAddress, type ExistingDisk, type Target } from "./target.ts";
import { cdromElement, type CdromOptions, isCdromFor, isRelayCdrom } from "./cdrom.ts";
import { bootOrderEdits } from "./boot_order.ts";
import { domainName, domainUuid, relayMetadataEdit, relayUrlOf } from "./relay_metadata.ts";
import { relaySocket } from "../paths.ts";

/** How the CD-ROM reads the ISO. */
export interface TransformOptions extends Omit<CdromOptions, "relay"> {
  /**
   * Read it through the VM's relay, whose socket is in this directory and
   * named after the domain's UUID; the URL goes into the domain's metadata.
   * Without it, QEMU's curl reads the URL with `timeout` and `readahead`.
   */
  relayDir?: string;
  /** With relayDir: `<reconnect delay>` for the relay's NBD source, where libvirt has it (libvirt_version.ts). */
  reconnectDelay?: number;
}

/** The VM's relay, as the CD-ROM names it. */
export interface RelayDisk {
  uuid: string;
  socket: string;
  /** The domain's name, when it is plain text (domainName), for `--status`. */
  name?: string;
}

/** What {@link addHttpsCdrom} did. */
export interface CdromResult {
  /** The resulting domain XML; the input itself when nothing changed. */
  xml: string;
  /** False when the domain already had this CD-ROM, so nothing was added. */
  changed: boolean;
  /** Whether the CD-ROM is new; a relay CD-ROM already there may only get a new URL. */
  added: boolean;
  /** The relay the CD-ROM reads through, in relay mode. */
  relay?: RelayDisk;
  /** The bus and target name of the CD-ROM. */
  target: Target;
  /** The parsed URL. */
  url: IsoUrl;
  /** The splices that turn the input into `xml`. */
  edits: Edit[];
  /**
   * The same change for showing to people: the CD-ROM's query values, new or
   * already there, are `***`. Apply them to the input with applyEdits().
   */
  shownEdits: Edit[];
}

/**
 * Adds `<disk type='network' device='cdrom'>` for an https ISO to a domain,
 * with `<boot order='1'/>`, and moves every other boot device down one.
 *
 * The URL is checked before the XML is read. The new disk is placed after the
 * last existing disk and indented like it; a domain without `<devices>` gets
 * one. Every other byte is written back as it was read. A domain that already
 * has a CD-ROM for the same URL is returned unchanged, so running the hook
 * twice adds nothing.
 *
 * @param domainXml The libvirt domain XML.
 * @param url The ISO's https URL, as text or already parsed.
 * @param options `relayDir` for relay mode; else `timeout` and `readahead` for QEMU's curl driver, QEMU's defaults when absent.
 * @returns The new XML and what was done.
 * @throws {UrlError} If the URL is not acceptable.
 * @throws {DomainError} If the XML is malformed or is not a domain, or in relay mode has no UUID.
 * @throws {LimitError} If the XML is beyond a limit of limits.ts.
 * @example
 * ```ts
 * import { addHttpsCdrom } from "./add_https_cdrom.ts";
 * import { assertEquals } from "../_assert.ts";
 * const domain = "<domain type='kvm'><os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>";
 * const result = addHttpsCdrom(domain, "https://isos.example.org/boot.iso");
 * assertEquals(result.target, { dev: "sda", bus: "sata" });
 * ```
 */
export function addHttpsCdrom(domainXml: string, url: string | IsoUrl, options: TransformOptions = {}): CdromResult {
  const iso = typeof url === "string" ? parseIsoUrl(url) : url;
  const document = parseXml(domainXml);
  const domain = document.root;
  if (domain.name !== "domain" || domain.namespace !== null) {
    throw new DomainError(`the root element is <${domain.name}>, not <domain>; pass a libvirt domain XML`);
  }
  const relay = options.relayDir === undefined ? undefined : relayDisk(document, options.relayDir);
  const devicesList = children(domain, "devices");
  const disks = devicesList.flatMap((devices) => children(devices, "disk"));
  const existing = disks.find((disk) => relay ? isRelayCdrom(disk, relay.socket) : isCdromFor(disk, iso));
  if (existing) return unchanged(document, existing, iso, relay);

  const target = chooseTarget(machineOf(domain), disks.map(describeDisk));
  const boots = bootOrderEdits(document);
  const source = relay
    ? { relay: { socket: relay.socket, reconnectDelay: options.reconnectDelay } }
    : { timeout: options.timeout, readahead: options.readahead };
  const place = (shown: IsoUrl) => placeCdrom(document, devicesList, cdromElement({ url: shown, target, ...source }));
  // The metadata records the URL with its query values hidden: any local user may read the domain.
  const record = relay ? [relayMetadataEdit(document, iso.redacted)] : [];
  const edits = [...boots, place(iso), ...record];
  const shownEdits = [...boots, place(redacted(iso)), ...(relay ? record : hiddenRecord(document))];
  return { xml: applyEdits(domainXml, edits), changed: true, added: true, target, url: iso, relay, edits, shownEdits };
}

/** The relay of the domain's VM: its UUID and socket. */
function relayDisk(document: XmlDocument, dir: string): RelayDisk {
  const uuid = domainUuid(document);
  const name = domainName(document);
  return { uuid, socket: relaySocket(dir, uuid), ...(name !== undefined && { name }) };
}

/**
 * The result for a domain that already has the CD-ROM: no edits, and its
 * query hidden when shown. A relay CD-ROM whose metadata names another URL
 * gets this one.
 */
function unchanged(document: XmlDocument, existing: XmlElement, iso: IsoUrl, relay?: RelayDisk): CdromResult {
  const target = child(existing, "target");
  const source = child(existing, "source")!;
  const query = getAttribute(source, "query");
  const result: CdromResult = {
    xml: document.text,
    changed: false,
    added: false,
    target: { dev: getAttribute(target, "dev") ?? "", bus: (getAttribute(target, "bus") ?? "") as Target["bus"] },
    url: iso,
    relay,
    edits: [],
    shownEdits: query === undefined ? [] : [setAttribute(source, "query", redactQuery(query))],
  };
  if (!relay || relayUrlOf(document) === iso.redacted) {
    return { ...result, shownEdits: [...result.shownEdits, ...hiddenRecord(document)] };
  }
  const edits = [relayMetadataEdit(document, iso.redacted)];
  const xml = applyEdits(document.text, edits);
  return { ...result, xml, changed: true, edits, shownEdits: [relayMetadataEdit(document, iso.redacted)] };
}

/** For showing: the relay URL the domain's metadata records, its query values hidden. */
function hiddenRecord(document: XmlDocument): Edit[] {
  const recorded = relayUrlOf(document);
  return recorded === undefined ? [] : [relayMetadataEdit(document, redactedHref(recorded))];
}

/** A recorded URL with its query values hidden, whatever it is. */
function redactedHref(href: string): string {
  const question = href.indexOf("?");
  return question < 0 ? href : `${href.slice(0, question)}?${redactQuery(href.slice(question + 1))}`;
}

function redacted(iso: IsoUrl): IsoUrl {
  return iso.query === undefined ? iso : { ...iso, query: redactQuery(iso.query) };
}

/**
 * Where the CD-ROM goes: after the last disk of the `<devices>` that holds
 * it (or after `<emulator>`, or first), or in a new `<devices>` at the end
 * of a domain that has none.
 */
function placeCdrom(document: XmlDocument, devicesList: XmlElement[], cdrom: NewElement): Edit {
  if (devicesList.length === 0) {
    const domain = document.root;
    const last = domain.children.at(-1);
    return insertElement(document, domain, { name: "devices", attributes: [], children: [cdrom] }, {
      anchor: last,
      sample: last,
    });
  }
  const devices = devicesList.findLast((candidate) => child(candidate, "disk")) ?? devicesList[0];
  const lastDisk = children(devices, "disk").at(-1);
  return insertElement(document, devices, cdrom, { anchor: lastDisk ?? child(devices, "emulator"), sample: lastDisk });
}

function machineOf(domain: XmlElement): { arch: string; machine: string } {
  const type = child(child(domain, "os"), "type");
  return { arch: getAttribute(type, "arch") ?? "x86_64", machine: getAttribute(type, "machine") ?? "" };
}

function describeDisk(disk: XmlElement): ExistingDisk {
  const dev = getAttribute(child(disk, "target"), "dev") ?? "";
  const address = child(disk, "address");
  return {
    dev,
    bus: getAttribute(child(disk, "target"), "bus") ?? busFromName(dev),
    address: getAttribute(address, "type") === "drive" ? readDriveAddress(address!) : undefined,
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
