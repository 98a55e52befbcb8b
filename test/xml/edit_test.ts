// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../lib/xml/parse.ts";
import { applyEdits, insertElement, removeElement, renderElement, setAttribute } from "../../lib/xml/edit.ts";
import { fixtureCases, readFixture } from "../support/mod.ts";

describe("applyEdits()", () => {
  for (const name of fixtureCases()) {
    test(`applyEdits() with no edits gives ${name}.in.xml back byte for byte`, () => {
      const text = readFixture(`${name}.in.xml`);
      assert.equal(applyEdits(parseXml(text).text, []), text);
    });
  }

  test("applyEdits() refuses overlapping edits, a bug in whoever made them", () => {
    assert.throws(
      () => applyEdits("abcdef", [{ start: 1, end: 4, text: "" }, { start: 2, end: 3, text: "x" }]),
      RangeError,
    );
  });

  test("applyEdits() applies inserts at one offset in the order given", () => {
    assert.equal(applyEdits("ab", [{ start: 1, end: 1, text: "1" }, { start: 1, end: 1, text: "2" }]), "a12b");
  });
});

describe("setAttribute()", () => {
  test("setAttribute() changes only the value, keeping the tag's other bytes", () => {
    const text = `<domain><boot\n  order="1" x='&#65;'   /><acpi></acpi></domain>`;
    const document = parseXml(text);
    const boot = document.root.children[0];
    assert.equal(
      applyEdits(text, [setAttribute(boot, "order", "2")]),
      `<domain><boot\n  order="2" x='&#65;'   /><acpi></acpi></domain>`,
    );
  });

  test("setAttribute() escapes like libvirt: both quotes, tabs and line ends", () => {
    const document = parseXml(`<a x="1"/>`);
    assert.equal(
      applyEdits(document.text, [setAttribute(document.root, "x", `<&>'"\t\n`)]),
      `<a x="&lt;&amp;&gt;&apos;&quot;&#9;&#10;"/>`,
    );
  });
});

describe("removeElement() and insertElement()", () => {
  test("removeElement() takes the element's indentation with it", () => {
    const document = parseXml("<os>\n  <type/>\n  <boot dev='hd'/>\n</os>");
    assert.equal(
      applyEdits(document.text, [removeElement(document, document.root.children[1])]),
      "<os>\n  <type/>\n</os>",
    );
  });

  test("insertElement() follows the anchor's indentation and the document's style", () => {
    const document = parseXml(`<devices>\n    <disk a="1">\n      <x />\n    </disk>\n  </devices>`);
    const disk = document.root.children[0];
    const added = {
      name: "disk",
      attributes: [["b", "2"]] as Array<[string, string]>,
      children: [{ name: "y", attributes: [] }],
    };
    assert.equal(
      applyEdits(document.text, [insertElement(document, document.root, added, { anchor: disk, sample: disk })]),
      `<devices>\n    <disk a="1">\n      <x />\n    </disk>\n    <disk b="2">\n      <y />\n    </disk>\n  </devices>`,
    );
  });

  test("insertElement() opens a self-closing parent, keeping a CRLF file's line ends", () => {
    const document = parseXml("<domain>\r\n  <devices/>\r\n</domain>");
    const devices = document.root.children[0];
    const edit = insertElement(document, devices, { name: "disk", attributes: [] });
    assert.equal(
      applyEdits(document.text, [edit]),
      "<domain>\r\n  <devices>\r\n    <disk/>\r\n  </devices>\r\n</domain>",
    );
  });

  test("renderElement() writes compactly without an indent", () => {
    const document = parseXml("<a/>");
    assert.equal(
      renderElement(
        document,
        { name: "s", attributes: [["q", "a'b"]], children: [{ name: "h", attributes: [] }] },
        "",
        "",
      ),
      "<s q='a&apos;b'><h/></s>",
    );
  });
});
