import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../lib/xml_parse.ts";
import { serializeXml } from "../lib/xml_serialize.ts";
import { child, getAttribute, setAttribute, type XmlElement } from "../lib/xml_tree.ts";
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
    const [a, b] = parsed.root.children as XmlElement[];
    setAttribute(a, "x", `<&>'"`);
    setAttribute(b, "z", "tab\there");
    assert.equal(serializeXml(parsed), `<domain><a x="&lt;&amp;&gt;&apos;&quot;" y="2"/><b z='tab&#9;here'/></domain>`);
  });

  test("parseXml() decodes entities and character references", () => {
    const { root } = parseXml(`<d v='&lt;&#65;&#x42;&quot;'>&amp;&apos;</d>`);
    assert.equal(getAttribute(root, "v"), `<AB"`);
    assert.deepEqual(root.children.map((node) => node.kind === "text" && node.text), ["&'"]);
  });

  test("parseXml() gives namespaced elements their namespace, and default namespaces too", () => {
    const { root: other } = parseXml(`<x xmlns="urn:x"><y/></x>`);
    assert.equal(other.namespace, "urn:x");
    assert.equal((other.children[0] as XmlElement).namespace, "urn:x");

    const { root } = parseXml(`<domain xmlns:ovirt-vm="http://ovirt.org/vm/1.0"><metadata><ovirt-vm:vm/></metadata></domain>`);
    const vm = child(root, "metadata")!.children[0] as XmlElement;
    assert.equal(vm.namespace, "http://ovirt.org/vm/1.0");
    assert.equal(root.namespace, null);
  });

  /** [input, words the message must contain] */
  const MALFORMED: Array<[string, string]> = [
    ["", "no root element"],
    ["   \n", "no root element"],
    ["<domain><devices></domain>", "</domain> does not close <devices> at line 1, column 18"],
    ["<domain>\n  <devices>\n</domain>", "at line 3, column 1"],
    ["<domain>", "<domain> is never closed"],
    ["<domain", "<domain> is not closed with '>'"],
    ["</domain>", "closes nothing"],
    ["<domain/><domain/>", "a second root element"],
    ["<domain/>junk", "text outside the root element"],
    ["junk<domain/>", "text outside the root element"],
    ["<domain a='1' a='2'/>", "has the attribute 'a' twice"],
    ["<domain a='<'/>", "contains '<'"],
    ["<domain a='1/>", "has no closing quote"],
    ["<domain a=1/>", "must be in quotes"],
    ["<ovirt-vm:vm/>", "the prefix 'ovirt-vm' of 'ovirt-vm:vm' is not declared"],
    ["<domain ns0:a='1'/>", "the prefix 'ns0' of 'ns0:a' is not declared"],
    ["<domain>&nbsp;</domain>", "unknown entity '&nbsp;'"],
    ["<domain>a & b</domain>", "'&' must be written as '&amp;'"],
    ["<domain>&#0;</domain>", "not a character XML allows"],
    ["<domain>\u0001</domain>", "control character U+0001"],
    ["<!DOCTYPE domain [<!ENTITY x 'y'>]><domain/>", "DOCTYPE is not allowed"],
    ["<domain><!-- open</domain>", "never closed with '-->'"],
    ["<domain/>\n<?xml version='1.0'?>", "the XML declaration must come first"],
    ["<domain a='1'b='2'/>", "must be separated by white space"],
    ["<?xml version='g='utf-8'?><domain/>", "the XML declaration is malformed"],
    ["<?xml version='2.0'?><domain/>", "the XML declaration is malformed"],
    ["<?xml version='1.8'?><domain/>", "the XML declaration is malformed"],
    ["<?xm%r9l version='1.0'?><domain/>", "has no valid target"],
    ["<domain xmlns:ns0='urn:x'><ns0:/></domain>", "'ns0:' is not a valid qualified name"],
    ["<domain xmlns:a='urn:x'><a:b:c/></domain>", "'a:b:c' is not a valid qualified name"],
    ["<domain :x='1'/>", "':x' is not a valid qualified name"],
    ["<domain xmlns:='urn:x'/>", "'xmlns:' is not a valid qualified name"],
    ["<domain><?pi%x?></domain>", "has no valid target"],
    ["<?xml encoding='utf-8'?><domain/>", "the XML declaration is malformed"],
    ["<domain a/>", "has no '=' and value"],
    ["<domain $/>", "not an attribute"],
    ["<domain><!-- a -- b --></domain>", "'--' is not allowed inside a comment"],
    ["<domain>]]></domain>", "']]>' is not allowed in text"],
    ["<domain><![CDATA[x</domain>", "never closed with ']]>'"],
    ["<domain><!ELEMENT x></domain>", "neither a comment nor CDATA"],
    ["<domain>< x/></domain>", "'<' must start a tag"],
    ["<domain></ domain>", "closing tag is malformed"],
    ["<domain><?pi x</domain>", "never closed with '?>'"],
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
