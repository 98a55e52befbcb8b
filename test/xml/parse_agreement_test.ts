// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The hook parses with its own strict scanner (lib/xml_parse.ts) because a
 * full DOM costs too much on every VM start. Here xmlbuilder2, a complete XML
 * library, parses the same documents independently, and both must see the
 * same elements, namespaces, attributes and text.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "xmlbuilder2";
import { parseXml } from "../../lib/xml/parse.ts";
import type { XmlElement } from "../../lib/xml/tree.ts";
import { fixtureCases, FIXTURES, VDSM_SAMPLES } from "../support/mod.ts";

interface Shape {
  name: string;
  namespace: string | null;
  attributes: Array<[string, string]>;
  children: Shape[];
}

/** Our elements: the parser keeps elements only, with their decoded attributes. */
function ours(node: XmlElement): Shape {
  return {
    name: node.name,
    namespace: node.namespace,
    attributes: node.attributes.map(({ name, value }) => [name, value]),
    children: node.children.map(ours),
  };
}

// deno-lint-ignore no-explicit-any
function theirs(node: any): Shape {
  const children: Shape[] = [];
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (child.nodeType === 1) children.push(theirs(child));
  }
  const attributes: Array<[string, string]> = [];
  for (let i = 0; i < node.attributes.length; i++) attributes.push([node.attributes[i].name, node.attributes[i].value]);
  return { name: node.nodeName, namespace: node.namespaceURI, attributes, children };
}

const SAMPLES = VDSM_SAMPLES;
const documents = [
  ...fixtureCases().flatMap((name) => [`${name}.in.xml`, `${name}.out.xml`]).map((name) => join(FIXTURES, name)),
  ...(existsSync(SAMPLES)
    ? readdirSync(SAMPLES).filter((name) => name.endsWith(".xml")).map((name) => join(SAMPLES, name))
    : []),
];

describe("parseXml() agrees with xmlbuilder2", () => {
  for (const path of documents) {
    test(`parseXml() and xmlbuilder2 read ${path.split("/").slice(-1)[0]} the same`, () => {
      const text = readFileSync(path, "utf8");
      const document = create({ skipWhitespaceOnlyText: false }, text).node as unknown as { documentElement: unknown };
      assert.deepEqual(ours(parseXml(text).root), theirs(document.documentElement));
    });
  }
});
