/**
 * A small XML tree: just what the hook reads and edits in a libvirt domain.
 *
 * The hook runs on every VM start, so start-up cost matters: xmlbuilder2's
 * full DOM made the compiled hook take 78 ms where the Python original takes
 * 60 ms; with this tree and the scanner in xml_parse.ts it takes about 45 ms.
 * The tests check both against xmlbuilder2 (test/parser_agreement_test.ts).
 *
 * Only elements in no namespace are libvirt's; the helpers never match
 * elements in other namespaces (oVirt metadata, qemu:commandline).
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */

/** Where a parsed node came from, so untouched nodes serialize byte for byte. */
export interface Origin {
  /** The node's exact text in the input: a start tag, or a run of text. */
  raw: string;
  /** For elements: whether the start tag was `<x/>`. */
  selfClosing?: boolean;
  /** For text: the decoded text as parsed. */
  text?: string;
}

export interface XmlElement {
  kind: "element";
  /** The qualified name, such as `disk` or `ovirt-vm:device`. */
  name: string;
  /** The namespace URI the name resolves to; null for libvirt's own elements. */
  namespace: string | null;
  /** Attributes in document order, decoded. */
  attributes: Array<[string, string]>;
  children: XmlNode[];
  parent: XmlElement | null;
  origin?: Origin;
  /** Set by {@link setAttribute}: the start tag must be written anew. */
  changed?: boolean;
}

export interface XmlText {
  kind: "text";
  /** The decoded text. */
  text: string;
  parent: XmlElement | null;
  origin?: Origin;
}

/** A comment, CDATA section or processing instruction, kept as written. */
export interface XmlVerbatim {
  kind: "verbatim";
  raw: string;
  parent: XmlElement | null;
}

export type XmlNode = XmlElement | XmlText | XmlVerbatim;

/**
 * Makes an element, with children if given.
 *
 * @param name The element's name.
 * @param attributes Its attributes, in order.
 * @param children Its child nodes.
 * @returns The element, not yet in any tree.
 * @example
 * ```ts
 * import { element } from "./xml_tree.ts";
 * element("boot", { order: "1" });
 * ```
 */
export function element(name: string, attributes: Record<string, string> = {}, children: XmlNode[] = []): XmlElement {
  const made: XmlElement = {
    kind: "element",
    name,
    namespace: null,
    attributes: Object.entries(attributes),
    children: [],
    parent: null,
  };
  for (const node of children) append(made, node);
  return made;
}

/** Makes a text node. */
export function text(data: string): XmlText {
  return { kind: "text", text: data, parent: null };
}

/** The value of an attribute, or undefined. */
export function getAttribute(node: XmlElement, name: string): string | undefined {
  for (const [key, value] of node.attributes) if (key === name) return value;
  return undefined;
}

/** Sets an attribute, keeping its place when it exists, else adding it last. */
export function setAttribute(node: XmlElement, name: string, value: string): void {
  node.changed = true;
  const found = node.attributes.find(([key]) => key === name);
  if (found) found[1] = value;
  else node.attributes.push([name, value]);
}

/** The child elements of `parent` called `name`, in document order. */
export function children(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((node): node is XmlElement => isLibvirtElement(node, name));
}

/** The first child element of `parent` called `name`. */
export function child(parent: XmlElement, name: string): XmlElement | undefined {
  return parent.children.find((node): node is XmlElement => isLibvirtElement(node, name));
}

/** Every element called `name` below `parent`, at any depth, in document order. */
export function descendants(parent: XmlElement, name: string): XmlElement[] {
  const found: XmlElement[] = [];
  const walk = (node: XmlElement) => {
    for (const next of node.children) {
      if (next.kind !== "element") continue;
      if (isLibvirtElement(next, name)) found.push(next);
      walk(next);
    }
  };
  walk(parent);
  return found;
}

/** Whether `node` is `ancestor` or inside it. */
export function contains(ancestor: XmlElement, node: XmlNode): boolean {
  for (let at: XmlNode | null = node; at; at = at.parent) if (at === ancestor) return true;
  return false;
}

/** Adds `node` as the last child of `parent`. */
export function append(parent: XmlElement, node: XmlNode): void {
  insertAt(parent, node, parent.children.length);
}

/** Inserts `node` into `parent` at `index` (0 is first). */
export function insertAt(parent: XmlElement, node: XmlNode, index: number): void {
  node.parent = parent;
  parent.children.splice(index, 0, node);
}

/** Takes `node` out of its parent. */
export function remove(node: XmlNode): void {
  const parent = node.parent;
  if (!parent) return;
  parent.children.splice(parent.children.indexOf(node), 1);
  node.parent = null;
}

/** The node just before `node` under the same parent. */
export function previousSibling(node: XmlNode): XmlNode | undefined {
  const siblings = node.parent?.children;
  return siblings ? siblings[siblings.indexOf(node) - 1] : undefined;
}

/** The first child element of `parent`, of any name. */
export function firstElement(parent: XmlElement): XmlElement | undefined {
  return parent.children.find((node): node is XmlElement => node.kind === "element");
}

/** Whether a node is white space only: the indentation between elements. */
export function isIndent(node: XmlNode | undefined): node is XmlText {
  return node?.kind === "text" && /^\s*$/.test(node.text);
}

function isLibvirtElement(node: XmlNode, name: string): boolean {
  return node.kind === "element" && node.namespace === null && node.name === name;
}
