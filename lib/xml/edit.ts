// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Changes to a parsed document as splices of its source text. Applying them
 * copies every other byte unchanged, so untouched markup (`<acpi></acpi>`,
 * `&#65;`, line ends, attribute quoting) comes back exactly as it was read.
 * New elements are written in the document's quote and empty-tag style and
 * escaped the way libvirt escapes its own XML.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { indentBefore, type XmlDocument, type XmlElement } from "./tree.ts";

/** Replace `text.slice(start, end)` with `text`; `start === end` inserts. */
export interface Edit {
  start: number;
  end: number;
  text: string;
}

/** An element to be written: name, attributes in order, and children. */
export interface NewElement {
  name: string;
  attributes: Array<[string, string]>;
  children?: NewElement[];
}

/**
 * Applies splices to a text. Edits at the same offset apply in the order given.
 *
 * @param text The original text.
 * @param edits Non-overlapping edits, in any order.
 * @returns The new text.
 * @throws {RangeError} If two edits overlap: a bug in whoever made them.
 * @example
 * ```ts
 * import { applyEdits } from "./edit.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(applyEdits("<a x='1'/>", [{ start: 6, end: 7, text: "2" }]), "<a x='2'/>");
 * ```
 */
export function applyEdits(text: string, edits: readonly Edit[]): string {
  const sorted = sortEdits(edits);
  const out: string[] = [];
  let at = 0;
  for (const edit of sorted) {
    if (edit.start < at) throw new RangeError(`overlapping edits at offset ${edit.start}`);
    out.push(text.slice(at, edit.start), edit.text);
    at = edit.end;
  }
  out.push(text.slice(at));
  return out.join("");
}

/** Edits by offset, keeping the given order at equal offsets. */
export function sortEdits(edits: readonly Edit[]): Edit[] {
  return edits.map((edit, index) => ({ edit, index }))
    .sort((a, b) => a.edit.start - b.edit.start || a.index - b.index)
    .map(({ edit }) => edit);
}

/**
 * An edit that gives an existing attribute a new value, in its own quotes.
 *
 * @example
 * ```ts
 * import { parseXml } from "./parse.ts";
 * import { applyEdits, setAttribute } from "./edit.ts";
 * import { assertEquals } from "../_assert.ts";
 * const document = parseXml(`<boot order="1" x='&#65;'/>`);
 * const edit = setAttribute(document.root, "order", "2");
 * assertEquals(applyEdits(document.text, [edit]), `<boot order="2" x='&#65;'/>`);
 * ```
 */
export function setAttribute(element: XmlElement, name: string, value: string): Edit {
  const attribute = element.attributes.find((candidate) => candidate.name === name);
  if (!attribute) throw new RangeError(`<${element.name}> has no attribute '${name}'`);
  return { start: attribute.valueStart, end: attribute.valueEnd, text: escapeAttribute(value) };
}

/** An edit that removes an element together with the white space that indents it. */
export function removeElement(document: XmlDocument, element: XmlElement): Edit {
  const lead = document.text.slice(element.leadStart, element.start);
  return { start: /^[ \t\r\n]*$/.test(lead) ? element.leadStart : element.start, end: element.end, text: "" };
}

/**
 * An edit that adds `added` as a child of `parent`, right after `anchor` (or
 * first), on its own line and indented like its neighbours when the document
 * is indented.
 *
 * @param document The parsed document.
 * @param parent Where the element goes.
 * @param added The element to write.
 * @param options `anchor`: the child to follow; `sample`: an element whose
 * children show one indentation step.
 * @returns The edit.
 */
export function insertElement(
  document: XmlDocument,
  parent: XmlElement,
  added: NewElement,
  options: { anchor?: XmlElement; sample?: XmlElement } = {},
): Edit {
  const { text } = document;
  const outer = indentBefore(text, options.anchor ?? parent.children[0]) ?? closingIndent(text, parent);
  const step = outer === "" ? "" : indentStep(text, options.sample, outer);
  const written = outer + renderElement(document, added, outer === "" ? "" : outer + step, step);
  const parentIndent = indentBefore(text, parent);
  const wasEmpty = parent.selfClosing || parent.tagEnd === parent.closeStart;
  const tail = wasEmpty && outer !== "" && parentIndent !== undefined ? parentIndent : "";
  if (parent.selfClosing) {
    return { start: parent.tagEnd - 2, end: parent.tagEnd, text: `>${written}${tail}</${parent.name}>` };
  }
  const at = options.anchor ? options.anchor.end : parent.tagEnd;
  return { start: at, end: at, text: written + tail };
}

/**
 * Writes a new element. With `indent`, each child goes on its own line at
 * that indent, and the end tag one `step` less.
 *
 * @example
 * ```ts
 * import { parseXml } from "./parse.ts";
 * import { renderElement } from "./edit.ts";
 * import { assertEquals } from "../_assert.ts";
 * const document = parseXml(`<d a="1"><e /></d>`);
 * const boot = { name: "boot", attributes: [["order", "1"]] as Array<[string, string]> };
 * assertEquals(renderElement(document, boot, "", ""), `<boot order="1" />`);
 * ```
 */
export function renderElement(document: XmlDocument, element: NewElement, indent: string, step: string): string {
  const { quote } = document;
  const open = `<${element.name}${
    element.attributes.map(([name, value]) => ` ${name}=${quote}${escapeAttribute(value)}${quote}`).join("")
  }`;
  const children = element.children ?? [];
  if (children.length === 0) return open + document.emptyTagEnd;
  const inner = children.map((node) =>
    indent + renderElement(document, node, indent === "" ? "" : indent + step, step)
  );
  const close = indent === "" ? "" : indent.slice(0, indent.length - step.length);
  return `${open}>${inner.join("")}${close}</${element.name}>`;
}

/** For a parent with no indented child: its own indent plus one step, or "" when it has none. */
function closingIndent(text: string, parent: XmlElement): string {
  const parentIndent = indentBefore(text, parent);
  return parentIndent === undefined ? "" : parentIndent + DEFAULT_INDENT_STEP;
}

/** How much deeper `sample`'s children are indented than `outer`; two spaces when it cannot tell. */
function indentStep(text: string, sample: XmlElement | undefined, outer: string): string {
  const inner = sample && indentBefore(text, sample.children[0]);
  return inner && inner.startsWith(outer) && inner.length > outer.length
    ? inner.slice(outer.length)
    : DEFAULT_INDENT_STEP;
}

const DEFAULT_INDENT_STEP = "  ";

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

/**
 * Escapes an attribute value as libvirt does: both quote characters too, so
 * a value we write is the one libvirt would write back.
 */
export function escapeAttribute(value: string): string {
  return value.replace(/[&<>'"\t\n\r]/g, (c) => ATTRIBUTE_ESCAPES[c]);
}
