import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../lib/xml_parse.ts";
import { serializeXml } from "../lib/xml_serialize.ts";
import type { Element } from "@oozcitak/dom/lib/dom/interfaces.js";
import { fixtureCases, readFixture } from "./support.ts";

describe("parseXml() and serializeXml()", () => {
  for (const name of fixtureCases()) {
    test(`serializeXml() writes ${name}.in.xml back byte for byte`, () => {
      const text = readFixture(`${name}.in.xml`);
      assert.equal(serializeXml(parseXml(text)), text);
    });
  }

  test("serializeXml() keeps comments, CDATA, PIs, entities and both quote styles", () => {
    const text = `<?xml version="1.0"?>\n<!-- before -->\n<domain a='&apos;x&quot;' b="&lt;&#10;">\r\n` +
      `  <![CDATA[ <raw> ]]><?pi data?><!-- in -->&amp;&#x41;&gt;\n  <n:x xmlns:n="urn:n" n:y='1'/>\n</domain>\n<!-- after -->\n`;
    assert.equal(serializeXml(parseXml(text)), text);
  });

  test("serializeXml() writes a changed attribute in the element's own quote style, escaped like libvirt", () => {
    const parsed = parseXml(`<domain><a x="1" y='2'/><b z='3'/></domain>`);
    const [a, b] = [parsed.root.firstChild as unknown as Element, parsed.root.lastChild as unknown as Element];
    a.setAttribute("x", `<&>'"`);
    b.setAttribute("z", "tab\there");
    assert.equal(serializeXml(parsed), `<domain><a x="&lt;&amp;&gt;&apos;&quot;" y="2"/><b z='tab&#9;here'/></domain>`);
  });

  test("parseXml() decodes entities and character references", () => {
    const { root } = parseXml(`<d v='&lt;&#65;&#x42;&quot;'>&amp;&apos;</d>`);
    assert.equal(root.getAttribute("v"), `<AB"`);
    assert.equal(root.textContent, "&'");
  });

  test("parseXml() gives namespaced elements their namespace", () => {
    const { root } = parseXml(`<domain xmlns:ovirt-vm="http://ovirt.org/vm/1.0"><metadata><ovirt-vm:vm/></metadata></domain>`);
    const vm = root.firstChild!.firstChild as unknown as Element;
    assert.equal(vm.namespaceURI, "http://ovirt.org/vm/1.0");
    assert.equal(root.namespaceURI, null);
  });

  /** [input, words the message must contain] */
  const MALFORMED: Array<[string, string]> = [
    ["", "no root element"],
    ["   \n", "no root element"],
    ["<domain><devices></domain>", "</domain> does not close <devices> at line 1, column 18"],
    ["<domain>\n  <devices>\n</domain>", "at line 3, column 1"],
    ["<domain>", "<domain> is never closed"],
    ["<domain", "Missing opening element tag end symbol"],
    ["</domain>", "closes nothing"],
    ["<domain/><domain/>", "a second root element"],
    ["<domain/>junk", "text outside the root element"],
    ["junk<domain/>", "text outside the root element"],
    ["<domain a='1' a='2'/>", "has the attribute 'a' twice"],
    ["<domain a='<'/>", "contains '<'"],
    ["<domain a='1/>", "Missing end quote"],
    ["<domain a=1/>", "Missing start quote"],
    ["<ovirt-vm:vm/>", "the prefix 'ovirt-vm' of 'ovirt-vm:vm' is not declared"],
    ["<domain ns0:a='1'/>", "the prefix 'ns0' of 'ns0:a' is not declared"],
    ["<domain>&nbsp;</domain>", "unknown entity '&nbsp;'"],
    ["<domain>a & b</domain>", "'&' must be written as '&amp;'"],
    ["<domain>&#0;</domain>", "not a character XML allows"],
    ["<domain>\u0001</domain>", "control character U+0001"],
    ["<!DOCTYPE domain [<!ENTITY x 'y'>]><domain/>", "DOCTYPE is not allowed"],
    ["<domain><!-- open</domain>", "Missing comment end"],
    ["<domain/>\n<?xml version='1.0'?>", "the XML declaration must come first"],
  ];
  for (const [text, words] of MALFORMED) {
    test(`parseXml() refuses ${JSON.stringify(text)} saying "${words}"`, () => {
      assert.throws(() => parseXml(text), (error: Error) => {
        assert.ok(error instanceof SyntaxError, `${error.name}: ${error.message}`);
        assert.ok(error.message.includes(words), `message was: ${error.message}`);
        return true;
      });
    });
  }
});
