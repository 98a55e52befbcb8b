// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The parsed document: elements only, each with the offsets of its source
 * text, so that the hook changes a domain by splicing edits into the original
 * text (see edit.ts) and every byte it does not change comes back identical.
 *
 * Only elements in no namespace are libvirt's; the helpers never match
 * elements in other namespaces (oVirt metadata, qemu:commandline).
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/** An attribute: its decoded value and where its raw value sits. */
export interface XmlAttribute {
  /** The qualified name, such as `order` or `xmlns:ovirt-vm`. */
  name: string;
  /** The value with references decoded and white space normalized, as XML defines. */
  value: string;
  /** Offset of the raw value's first character, just after the opening quote. */
  valueStart: number;
  /** Offset of the closing quote. */
  valueEnd: number;
}

/** An element and where its parts are in the source text. */
export interface XmlElement {
  /** The qualified name, such as `disk` or `ovirt-vm:device`. */
  name: string;
  /** The namespace URI the name resolves to; null for libvirt's own elements. */
  namespace: string | null;
  attributes: XmlAttribute[];
  parent: XmlElement | null;
  /** Child elements, in document order. */
  children: XmlElement[];
  /** Offset of the start tag's `<`. */
  start: number;
  /** Offset just after the start tag's `>`. */
  tagEnd: number;
  /** Whether the start tag was `<x/>`. */
  selfClosing: boolean;
  /** Offset of the end tag's `<`; equals `tagEnd` when self-closing. */
  closeStart: number;
  /** Offset just after the element's last character. */
  end: number;
  /** Where the text run just before the start tag begins (the end of the previous markup). */
  leadStart: number;
  /** Where the text run just before the end tag begins. */
  closeLeadStart: number;
}

/** A parsed document: its text, its root, and the style new markup follows. */
export interface XmlDocument {
  text: string;
  root: XmlElement;
  /** The quote character the input uses for attributes; new attributes use it too. */
  quote: "'" | '"';
  /** How the input ends an empty element, `/>` or ` />`; new elements end the same way. */
  emptyTagEnd: "/>" | " />";
}

/**
 * The value of an attribute, or undefined.
 *
 * @example
 * ```ts
 * import { parseXml } from "./parse.ts";
 * import { getAttribute } from "./tree.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(getAttribute(parseXml("<boot order='2'/>").root, "order"), "2");
 * ```
 */
export function getAttribute(node: XmlElement | undefined, name: string): string | undefined {
  return node && findAttribute(node, name)?.value;
}

/** The attribute called `name`, or undefined. */
export function findAttribute(node: XmlElement, name: string): XmlAttribute | undefined {
  return node.attributes.find((attribute) => attribute.name === name);
}

/** The child elements of `parent` called `name`, in document order. */
export function children(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((node) => isLibvirtElement(node, name));
}

/** The first child element of `parent` called `name`. */
export function child(parent: XmlElement | undefined, name: string): XmlElement | undefined {
  return parent?.children.find((node) => isLibvirtElement(node, name));
}

/**
 * Every element called `name` below `parent`, at any depth, in document order.
 * Iterative, so it never runs out of stack.
 */
export function descendants(parent: XmlElement, name: string): XmlElement[] {
  const found: XmlElement[] = [];
  const stack = [...parent.children].reverse();
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (isLibvirtElement(node, name)) found.push(node);
    for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
  }
  return found;
}

/**
 * The indentation just before an element, from its line's start: the text
 * between the previous markup and the element, from its last line break on,
 * when that text is white space with a line break; otherwise undefined.
 *
 * @example
 * ```ts
 * import { parseXml } from "./parse.ts";
 * import { indentBefore } from "./tree.ts";
 * import { assertEquals } from "../_assert.ts";
 * const { text, root } = parseXml("<a>\n    <b/>\n</a>");
 * assertEquals(indentBefore(text, root.children[0]), "\n    ");
 * ```
 */
export function indentBefore(text: string, element: XmlElement | undefined): string | undefined {
  if (!element) return undefined;
  return indentOf(text, element.leadStart, element.start);
}

/** The indentation before an element's end tag, like {@link indentBefore}. */
export function indentBeforeClose(text: string, element: XmlElement): string | undefined {
  return element.selfClosing ? undefined : indentOf(text, element.closeLeadStart, element.closeStart);
}

function indentOf(text: string, from: number, to: number): string | undefined {
  const run = text.slice(from, to);
  if (!/^[ \t\r\n]*$/.test(run)) return undefined;
  const newline = run.lastIndexOf("\n");
  if (newline < 0) return undefined;
  // Keep a CRLF file's line ends: the break is "\r\n" there.
  return run.slice(newline > 0 && run[newline - 1] === "\r" ? newline - 1 : newline);
}

function isLibvirtElement(node: XmlElement, name: string): boolean {
  return node.namespace === null && node.name === name;
}
