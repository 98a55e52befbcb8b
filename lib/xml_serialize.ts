/**
 * Writes a document parsed by {@link parseXml} back to text.
 *
 * A node the transform did not touch is written exactly as it was read, so a
 * domain that needs no change comes out byte-identical and a diff shows only
 * what changed. New or changed nodes are written in the input's quote style
 * and empty-tag style, escaped the way libvirt escapes its own XML.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import type { ParsedXml } from "./xml_parse.ts";
import type { XmlElement, XmlNode } from "./xml_tree.ts";

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
  writeElement(parsed.root, parsed, out);
  out.push(parsed.epilog);
  return out.join("");
}

function writeNode(node: XmlNode, parsed: ParsedXml, out: string[]): void {
  switch (node.kind) {
    case "element":
      writeElement(node, parsed, out);
      break;
    case "text":
      out.push(node.origin && node.origin.text === node.text ? node.origin.raw : escapeText(node.text));
      break;
    case "verbatim":
      out.push(node.raw);
      break;
  }
}

function writeElement(element: XmlElement, parsed: ParsedXml, out: string[]): void {
  const origin = element.origin;
  const empty = element.children.length === 0;
  if (origin && origin.selfClosing === empty && !element.changed) {
    out.push(origin.raw);
  } else {
    out.push(`<${element.name}`);
    const quote = origin ? quoteOf(origin.raw, parsed.quote) : parsed.quote;
    for (const [name, value] of element.attributes) {
      out.push(` ${name}=${quote}${escapeAttribute(value)}${quote}`);
    }
    const emptyTagEnd = origin ? (origin.raw.endsWith(" />") ? " />" : "/>") : parsed.emptyTagEnd;
    out.push(empty ? emptyTagEnd : ">");
  }
  if (empty) return;
  for (const child of element.children) writeNode(child, parsed, out);
  out.push(`</${element.name}>`);
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
