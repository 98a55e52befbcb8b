// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../lib/xml/parse.ts";
import {
  child,
  children,
  descendants,
  getAttribute,
  indentBefore,
  indentBeforeClose,
  type XmlElement,
} from "../../lib/xml/tree.ts";

describe("tree lookups", () => {
  const { text, root } = parseXml(
    "<domain xmlns:q='urn:q'>\n  <devices>\n    <disk n='1'><boot order='1'/></disk>\n    <q:disk/>\n    <disk n='2'><x><boot order='2'/></x></disk>\n  </devices>\n</domain>",
  );
  const devices = child(root, "devices")!;

  test("child() and children() find libvirt's elements only, never another namespace's", () => {
    assert.deepEqual(children(devices, "disk").map((disk) => getAttribute(disk, "n")), ["1", "2"]);
    assert.equal(child(undefined, "disk"), undefined);
  });

  test("descendants() finds elements at any depth, in document order", () => {
    assert.deepEqual(descendants(root, "boot").map((boot) => getAttribute(boot, "order")), ["1", "2"]);
  });

  test("descendants() walks 100,000 levels without recursion (a tree the parser would refuse, built by hand)", () => {
    const element = (name: string, parent: XmlElement | null): XmlElement => ({
      name,
      namespace: null,
      attributes: [],
      parent,
      children: [],
      start: 0,
      tagEnd: 0,
      selfClosing: false,
      closeStart: 0,
      end: 0,
      leadStart: 0,
      closeLeadStart: 0,
    });
    const top = element("a", null);
    let at = top;
    for (let i = 0; i < 100_000; i++) at.children.push(at = element("a", at));
    at.children.push(element("boot", at));
    assert.equal(descendants(top, "boot").length, 1);
  });

  test("indentBefore() and indentBeforeClose() read the white space around an element", () => {
    assert.equal(indentBefore(text, devices), "\n  ");
    assert.equal(indentBeforeClose(text, devices), "\n  ");
    assert.equal(indentBefore(text, descendants(root, "boot")[0]), undefined, "no line break before it");
  });
});
