// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../lib/xml/parse.ts";
import {
  child,
  children,
  contains,
  descendants,
  getAttribute,
  indentBefore,
  indentBeforeClose,
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

  test("descendants() finds elements at any depth, in document order, without recursion", () => {
    assert.deepEqual(descendants(root, "boot").map((boot) => getAttribute(boot, "order")), ["1", "2"]);
    let deep = root;
    const nested = parseXml("<a>".repeat(250) + "<boot/>" + "</a>".repeat(250));
    deep = nested.root;
    assert.equal(descendants(deep, "boot").length, 1);
  });

  test("contains() tells whether an element is inside another", () => {
    const [first] = descendants(root, "boot");
    assert.equal(contains(devices, first), true);
    assert.equal(contains(children(devices, "disk")[1], first), false);
  });

  test("indentBefore() and indentBeforeClose() read the white space around an element", () => {
    assert.equal(indentBefore(text, devices), "\n  ");
    assert.equal(indentBeforeClose(text, devices), "\n  ");
    assert.equal(indentBefore(text, descendants(root, "boot")[0]), undefined, "no line break before it");
  });
});
