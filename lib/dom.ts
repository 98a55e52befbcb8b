/**
 * Small helpers for reading libvirt domain XML through the DOM. libvirt's own
 * elements have no namespace; elements in other namespaces (oVirt metadata,
 * qemu:commandline) are never matched.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import type { Element, Node } from "@oozcitak/dom/lib/dom/interfaces.js";

const ELEMENT_NODE = 1;
const TEXT_NODE = 3;

/** The child elements of `parent` called `name`, in document order. */
export function children(parent: Element, name: string): Element[] {
  const found: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (isLibvirtElement(node, name)) found.push(node as Element);
  }
  return found;
}

/** The first child element of `parent` called `name`. */
export function child(parent: Element, name: string): Element | undefined {
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (isLibvirtElement(node, name)) return node as Element;
  }
  return undefined;
}

/** Every element called `name` below `parent`, at any depth, in document order. */
export function descendants(parent: Element, name: string): Element[] {
  const found: Element[] = [];
  const walk = (node: Node) => {
    for (let next = node.firstChild; next; next = next.nextSibling) {
      if (next.nodeType !== ELEMENT_NODE) continue;
      if (isLibvirtElement(next, name)) found.push(next as Element);
      walk(next);
    }
  };
  walk(parent);
  return found;
}

/**
 * Removes an element together with the white space that indents it, so the
 * lines around it stay as they were.
 */
export function removeWithIndent(element: Element): void {
  const before = element.previousSibling;
  if (before && before.nodeType === TEXT_NODE && /^\s*$/.test(before.nodeValue ?? "")) {
    before.parentNode!.removeChild(before);
  }
  element.parentNode!.removeChild(element);
}

function isLibvirtElement(node: Node, name: string): boolean {
  return node.nodeType === ELEMENT_NODE && (node as Element).namespaceURI === null &&
    (node as Element).localName === name;
}
