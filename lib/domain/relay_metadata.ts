// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What a domain says about its relay: the VM's UUID, which names the relay's
 * socket and unit, and the ISO's URL with its query values hidden (`***`:
 * a signed URL's query is a credential, and `virsh -r dumpxml` shows the
 * domain to any local user), kept in the domain's `<metadata>` in the
 * hook's own namespace:
 *
 * ```xml
 * <metadata>
 *   <httpsisoboot:relay xmlns:httpsisoboot="http://ovirt.org/vm/httpsisoboot/1.0" url="https://…"/>
 * </metadata>
 * ```
 *
 * libvirt keeps metadata in other namespaces as it is given, and VDSM hands
 * it back to the hooks of every later point of the VM's life: a migration's
 * destination and a resume from hibernation know from it that the VM reads
 * through a relay, and which ISO; the whole URL they take from the custom
 * property VDSM passes them, which must be the one recorded.
 *
 * This module is pure: it returns edits and does no I/O.
 *
 * @module
 */
import { DomainError } from "../errors.ts";
import { type Edit, insertElement, type NewElement, renderElement } from "../xml/edit.ts";
import { child, getAttribute, type XmlDocument, type XmlElement } from "../xml/tree.ts";

/** The hook's metadata namespace. */
export const RELAY_NAMESPACE = "http://ovirt.org/vm/httpsisoboot/1.0";

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * The VM's UUID from `<uuid>`, in lower case with dashes.
 *
 * @throws {DomainError} If the domain has no `<uuid>`, or it is not a UUID.
 * @example
 * ```ts
 * import { domainUuid } from "./relay_metadata.ts";
 * import { parseXml } from "../xml/parse.ts";
 * import { assertEquals } from "../_assert.ts";
 * const document = parseXml("<domain><uuid>7A3C1F52-4D1E-4B7A-9C2E-5F0E8A6B1D21</uuid></domain>");
 * assertEquals(domainUuid(document), "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21");
 * ```
 */
export function domainUuid(document: XmlDocument): string {
  const uuid = child(document.root, "uuid");
  if (!uuid) {
    throw new DomainError("the domain has no <uuid>, which names its relay; VDSM always writes one, so check the XML");
  }
  const text = document.text.slice(uuid.tagEnd, uuid.closeStart).trim();
  if (!UUID.test(text)) throw new DomainError("the domain's <uuid> is not a UUID; check the XML");
  const hex = text.replaceAll("-", "").toLowerCase();
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

/**
 * The domain's `<name>`, for `--status`; undefined when it has none, or one
 * that is not plain printable ASCII of at most 100 characters (a name with
 * entities or control characters is a user's text, not shown).
 *
 * @example
 * ```ts
 * import { domainName } from "./relay_metadata.ts";
 * import { parseXml } from "../xml/parse.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(domainName(parseXml("<domain><name> web01 </name></domain>")), "web01");
 * assertEquals(domainName(parseXml("<domain><name>a&amp;b</name></domain>")), undefined);
 * assertEquals(domainName(parseXml("<domain/>")), undefined);
 * ```
 */
export function domainName(document: XmlDocument): string | undefined {
  const name = child(document.root, "name");
  if (!name) return undefined;
  const text = document.text.slice(name.tagEnd, name.closeStart).trim();
  return /^[\x20-\x25\x27-\x3b\x3d-\x7e]{1,100}$/.test(text) ? text : undefined;
}

/**
 * The URL the domain's relay serves, from its metadata; undefined when the
 * domain has no relay.
 *
 * @example
 * ```ts
 * import { relayUrlOf, RELAY_NAMESPACE } from "./relay_metadata.ts";
 * import { parseXml } from "../xml/parse.ts";
 * import { assertEquals } from "../_assert.ts";
 * const document = parseXml(`<domain><metadata><h:relay xmlns:h="${RELAY_NAMESPACE}" url="https://i.example:443/a.iso"/></metadata></domain>`);
 * assertEquals(relayUrlOf(document), "https://i.example:443/a.iso");
 * ```
 */
export function relayUrlOf(document: XmlDocument): string | undefined {
  return getAttribute(relayElement(document.root), "url");
}

/**
 * The edit that records `url` as the URL of the domain's relay: in an
 * existing `<metadata>`, in place of an earlier record, or in a new
 * `<metadata>` after `<uuid>`.
 *
 * @example
 * ```ts
 * import { relayMetadataEdit, relayUrlOf } from "./relay_metadata.ts";
 * import { parseXml } from "../xml/parse.ts";
 * import { applyEdits } from "../xml/edit.ts";
 * import { assertEquals } from "../_assert.ts";
 * const document = parseXml("<domain><uuid>7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21</uuid></domain>");
 * const changed = parseXml(applyEdits(document.text, [relayMetadataEdit(document, "https://i.example:443/a.iso")]));
 * assertEquals(relayUrlOf(changed), "https://i.example:443/a.iso");
 * ```
 */
export function relayMetadataEdit(document: XmlDocument, url: string): Edit {
  const domain = document.root;
  const record: NewElement = {
    name: "httpsisoboot:relay",
    attributes: [["xmlns:httpsisoboot", RELAY_NAMESPACE], ["url", url]],
  };
  const metadata = child(domain, "metadata");
  const earlier = relayElement(domain);
  if (earlier) return { start: earlier.start, end: earlier.end, text: renderElement(document, record, "", "") };
  if (metadata) {
    return insertElement(document, metadata, record, { anchor: metadata.children.at(-1), sample: metadata });
  }
  const anchor = child(domain, "uuid") ?? child(domain, "name");
  return insertElement(document, domain, { name: "metadata", attributes: [], children: [record] }, {
    anchor,
    sample: domain,
  });
}

/** The hook's element in `<metadata>`, if there is one. */
function relayElement(domain: XmlElement): XmlElement | undefined {
  return child(domain, "metadata")?.children.find((element) =>
    element.namespace === RELAY_NAMESPACE && element.name.split(":").at(-1) === "relay"
  );
}
