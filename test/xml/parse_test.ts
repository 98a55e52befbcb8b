// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseXml } from "../../lib/xml/parse.ts";
import { getAttribute, indentBefore, indentBeforeClose } from "../../lib/xml/tree.ts";
import { LimitError, XmlSyntaxError } from "../../lib/errors.ts";
import { MAX_ATTRIBUTES, MAX_DEPTH, MAX_DOMAIN_BYTES, MAX_ELEMENTS } from "../../lib/limits.ts";

describe("parseXml()", () => {
  test("parseXml() records where each element's parts are in the source", () => {
    const text = "<domain>\n  <acpi></acpi>\n  <b x='1'/>\n</domain>";
    const { root } = parseXml(text);
    const [acpi, b] = root.children;
    assert.equal(text.slice(acpi.start, acpi.end), "<acpi></acpi>");
    assert.equal(text.slice(acpi.start, acpi.tagEnd), "<acpi>");
    assert.equal(acpi.selfClosing, false);
    assert.equal(text.slice(b.start, b.end), "<b x='1'/>");
    assert.equal(b.selfClosing, true);
    const [x] = b.attributes;
    assert.equal(text.slice(x.valueStart, x.valueEnd), "1");
    assert.equal(indentBefore(text, b), "\n  ");
    assert.equal(indentBeforeClose(text, root), "\n");
  });

  test("parseXml() decodes entities and character references in attributes", () => {
    const { root } = parseXml(`<d v='&lt;&#65;&#x42;&quot;' w='a\r\nb\tc'/>`);
    assert.equal(getAttribute(root, "v"), `<AB"`);
    assert.equal(getAttribute(root, "w"), "a b c", "XML normalizes a CRLF to one space");
  });

  test("parseXml() gives namespaced elements their namespace, and default namespaces too", () => {
    const { root: other } = parseXml(`<x xmlns="urn:x"><y/></x>`);
    assert.equal(other.namespace, "urn:x");
    assert.equal(other.children[0].namespace, "urn:x");
    const { root } = parseXml(
      `<domain xmlns:ovirt-vm="http://ovirt.org/vm/1.0"><metadata><ovirt-vm:vm/></metadata></domain>`,
    );
    assert.equal(root.children[0].children[0].namespace, "http://ovirt.org/vm/1.0");
    assert.equal(root.namespace, null);
  });

  test("parseXml() accepts the empty comment <!----> and a byte order mark", () => {
    assert.equal(parseXml("<domain><!----></domain>").root.name, "domain");
    assert.equal(parseXml("\ufeff<?xml version='1.0' encoding='utf-8'?>\n<domain/>").root.name, "domain");
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
    ["<domain>\u0001</domain>", "character U+0001 is not allowed"],
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
    // Found by the hostile-input review (issue 8): control characters anywhere, not only in text.
    ["<domain><!-- \u0007 --></domain>", "character U+0007 is not allowed"],
    ["<domain><?pi \u001b?></domain>", "character U+001B is not allowed"],
    ["<domain><![CDATA[\u0000]]></domain>", "character U+0000 is not allowed"],
    ["<domain a='\u0008'/>", "character U+0008 is not allowed"],
    ["<domain>\ud800</domain>", "character U+D800 is not allowed"],
    // White space is XML's four characters, not JavaScript's \s.
    ["<domain\u00a0a='1'/>", "not an attribute"],
    ["<domain a='1'\u2028b='2'/>", "not an attribute"],
    ["\u00a0<domain/>", "text outside the root element"],
    ["<domain/>\ufeff", "text outside the root element"],
    ["<?xml version='1.0' encoding='ISO-8859-1'?><domain/>", "domain XML must be UTF-8"],
    ["<domain><!---></domain>", "never closed with '-->'"],
    ["<domain><!-- a ---></domain>", "'--' is not allowed inside a comment"],
  ];
  for (const [text, words] of MALFORMED) {
    test(`parseXml() refuses ${JSON.stringify(text)} saying "${words}"`, () => {
      assert.throws(() => parseXml(text), (error: Error) => {
        assert.ok(error instanceof XmlSyntaxError, `${error.name}: ${error.message}`);
        assert.ok(error.message.includes(words), `message was: ${error.message}`);
        return true;
      });
    });
  }

  test(`parseXml() takes ${MAX_DEPTH} levels of nesting and refuses one more, as libvirt does`, () => {
    const nested = (depth: number) => "<a>".repeat(depth) + "</a>".repeat(depth);
    assert.equal(parseXml(nested(MAX_DEPTH)).root.name, "a");
    assert.throws(
      () => parseXml(nested(MAX_DEPTH + 1)),
      (error: Error) => error instanceof LimitError && /deeper than 256/.test(error.message),
    );
    assert.throws(() => parseXml(nested(100_000)), LimitError, "100,000 levels: a refusal, not a stack overflow");
  });

  test(`parseXml() refuses more than ${MAX_ELEMENTS} elements and ${MAX_ATTRIBUTES} attributes`, () => {
    assert.throws(
      () => parseXml(`<d>${"<a/>".repeat(MAX_ELEMENTS)}</d>`),
      (error: Error) => error instanceof LimitError && /elements/.test(error.message),
    );
    const attributes = (count: number) => Array.from({ length: count }, (_, i) => ` a${i}='1'`).join("");
    assert.throws(
      () => parseXml(`<d${attributes(MAX_ATTRIBUTES + 1)}/>`),
      (error: Error) => error instanceof LimitError && /attributes/.test(error.message),
    );
  });

  test(`parseXml() refuses text longer than ${MAX_DOMAIN_BYTES} characters`, () => {
    assert.throws(() => parseXml(`<d>${"x".repeat(MAX_DOMAIN_BYTES)}</d>`), LimitError);
  });

  test("parseXml() reads 60,000 attributes on one element in linear time (a budget far below the 18 s it took)", () => {
    const text = `<d${Array.from({ length: 60_000 }, (_, i) => ` a${i}='${i}'`).join("")}/>`;
    const started = performance.now();
    assert.equal(parseXml(text).root.attributes.length, 60_000);
    assert.ok(performance.now() - started < 3000, "well within the budget");
    assert.throws(() => parseXml(text.replace("/>", " a59999='x'/>")), /has the attribute 'a59999' twice/);
  });
});
