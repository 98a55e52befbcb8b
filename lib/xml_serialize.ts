/**
 * Writes a document parsed by {@link parseXml} back to text.
 *
 * A node the transform did not touch is written exactly as it was read, so a
 * domain that needs no change comes out byte-identical and a diff shows only
 * what changed. New or changed nodes are written in the input's quote style,
 * escaped the way libvirt escapes its own XML.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import type { Element, Node } from "@oozcitak/dom/lib/dom/interfaces.js";
import type { ParsedXml } from "./xml_parse.ts";

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;
const CDATA_SECTION_NODE = 4;
const PROCESSING_INSTRUCTION_NODE = 7;
const COMMENT_NODE = 8;

/**
 * Serializes a parsed document, keeping the source text of untouched nodes.
 *
 * @param parsed The document, as returned by `parseXml` and then edited.
 * @returns The XML text.
 * @example
 * ```ts
 * import { parseXml } from "./xml_parse.ts";
 * import { serializeXml } from "./xml_serialize.ts";
 * const text = "<domain type='kvm'>\n  <name>a&amp;b</name>\n</domain>\n";
 * serializeXml(parseXml(text)) === text; // true
 * ```
 */
export function serializeXml(parsed: ParsedXml): string {
  const out: string[] = [parsed.prolog];
  writeNode(parsed.root, parsed, out);
  out.push(parsed.epilog);
  return out.join("");
}

function writeNode(node: Node, parsed: ParsedXml, out: string[]): void {
  switch (node.nodeType) {
    case ELEMENT_NODE:
      writeElement(node as Element, parsed, out);
      break;
    case TEXT_NODE: {
      const origin = parsed.origins.get(node);
      const data = node.nodeValue ?? "";
      out.push(origin && origin.data === data ? origin.raw : escapeText(data));
      break;
    }
    case CDATA_SECTION_NODE:
      out.push(`<![CDATA[${node.nodeValue}]]>`);
      break;
    case COMMENT_NODE:
      out.push(`<!--${node.nodeValue}-->`);
      break;
    case PROCESSING_INSTRUCTION_NODE:
      out.push(`<?${node.nodeName}${node.nodeValue ? " " + node.nodeValue : ""}?>`);
      break;
  }
}

function writeElement(element: Element, parsed: ParsedXml, out: string[]): void {
  const origin = parsed.origins.get(element);
  const empty = element.childNodes.length === 0;
  const name = element.nodeName;
  if (origin && origin.selfClosing === empty && sameAttributes(element, origin.attributes!)) {
    out.push(origin.raw);
  } else {
    out.push(`<${name}`);
    const quote = origin ? quoteOf(origin.raw, parsed.quote) : parsed.quote;
    for (const attribute of Array.from(element.attributes)) {
      out.push(` ${attribute.name}=${quote}${escapeAttribute(attribute.value)}${quote}`);
    }
    const emptyTagEnd = origin ? (origin.raw.endsWith(" />") ? " />" : "/>") : parsed.emptyTagEnd;
    out.push(empty ? emptyTagEnd : ">");
  }
  if (empty) return;
  for (let child = element.firstChild; child; child = child.nextSibling) writeNode(child, parsed, out);
  out.push(`</${name}>`);
}

function sameAttributes(element: Element, parsed: Array<[string, string]>): boolean {
  const current = element.attributes;
  if (current.length !== parsed.length) return false;
  for (let i = 0; i < parsed.length; i++) {
    const attribute = current.item(i)!;
    if (attribute.name !== parsed[i][0] || attribute.value !== parsed[i][1]) return false;
  }
  return true;
}

function quoteOf(rawTag: string, fallback: "'" | '"'): "'" | '"' {
  return (/=\s*(['"])/.exec(rawTag)?.[1] as "'" | '"' | undefined) ?? fallback;
}

function escapeText(text: string): string {
  return text.replace(/[&<>]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : "&gt;"));
}

const ATTRIBUTE_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  "'": "&apos;",
  '"': "&quot;",
  "\t": "&#9;",
  "\n": "&#10;",
  "\r": "&#13;",
};

// libvirt escapes both quote characters in attribute values; doing the same
// keeps a value we write identical to the one libvirt would write back.
function escapeAttribute(value: string): string {
  return value.replace(/[&<>'"\t\n\r]/g, (c) => ATTRIBUTE_ESCAPES[c]);
}
