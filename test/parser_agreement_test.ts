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
import { parseXml } from "../lib/xml_parse.ts";
import type { XmlElement } from "../lib/xml_tree.ts";
import { fixtureCases, FIXTURES, ROOT } from "./support.ts";

interface Shape {
  name: string;
  namespace: string | null;
  attributes: Array<[string, string]>;
  children: Array<Shape | string>;
}

/** Our tree, with adjacent text and CDATA merged the way a DOM reads them. */
function ours(node: XmlElement): Shape {
  const children: Array<Shape | string> = [];
  for (const child of node.children) {
    const value = child.kind === "element" ? ours(child)
      : child.kind === "text" ? child.text
      : child.raw.startsWith("<![CDATA[") ? child.raw.slice(9, -3) : undefined;
    if (value === undefined) continue;
    if (typeof value === "string" && typeof children.at(-1) === "string") children.push(children.pop() + value);
    else children.push(value);
  }
  return { name: node.name, namespace: node.namespace, attributes: node.attributes, children };
}

// deno-lint-ignore no-explicit-any
function theirs(node: any): Shape {
  const children: Array<Shape | string> = [];
  for (let child = node.firstChild; child; child = child.nextSibling) {
    const value = child.nodeType === 1 ? theirs(child) : child.nodeType === 3 || child.nodeType === 4 ? child.data : undefined;
    if (value === undefined) continue;
    if (typeof value === "string" && typeof children.at(-1) === "string") children.push(children.pop() + value);
    else children.push(value);
  }
  const attributes: Array<[string, string]> = [];
  for (let i = 0; i < node.attributes.length; i++) attributes.push([node.attributes[i].name, node.attributes[i].value]);
  return { name: node.nodeName, namespace: node.namespaceURI, attributes, children };
}

const SAMPLES = join(ROOT, "..", "shared", "reference", "vdsm-samples");
const documents = [
  ...fixtureCases().flatMap((name) => [`${name}.in.xml`, `${name}.out.xml`]).map((name) => join(FIXTURES, name)),
  ...(existsSync(SAMPLES) ? readdirSync(SAMPLES).filter((name) => name.endsWith(".xml")).map((name) => join(SAMPLES, name)) : []),
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
