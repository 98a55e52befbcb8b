/**
 * A strict XML parser that builds a small tree ({@link XmlElement}) and
 * remembers the exact source text of every node, so that {@link serializeXml}
 * can write untouched nodes back byte for byte.
 *
 * It refuses what libvirt's parser (libxml2) refuses: mismatched or unclosed
 * tags, duplicate attributes, undeclared prefixes, unknown entities, stray
 * `&` and `<`, `--` in comments, text outside the root, and DOCTYPEs.
 *
 * It scans with sticky regular expressions rather than a character-by-
 * character lexer: the hook runs once per VM start, before any JIT has warmed
 * up, and there xmlbuilder2's lexer took 10 ms for a 10 KB domain and over
 * 100 ms for a 600 KB one, most of the hook's cost. The tests parse every
 * output again with xmlbuilder2, independently.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import type { XmlElement } from "./xml_tree.ts";

/** A parsed document together with what is needed to write it back faithfully. */
export interface ParsedXml {
  /** The document element. */
  root: XmlElement;
  /** Everything before the document element, verbatim (declaration, comments, white space). */
  prolog: string;
  /** Everything after the document element, verbatim. */
  epilog: string;
  /** The quote character the input uses for attributes; new attributes use it too. */
  quote: "'" | '"';
  /** How the input ends an empty element, `/>` or ` />`; new elements end the same way. */
  emptyTagEnd: "/>" | " />";
}

const XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace";
const NAME_START = "A-Za-z_:\\u00C0-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD";
const NAME = `[${NAME_START}][${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040]*`;
const START_TAG_NAME = new RegExp(`<(${NAME})`, "y");
const ATTRIBUTE = new RegExp(`(\\s*)(${NAME})(\\s*=\\s*)?`, "y");
const TAG_END = /\s*(\/?>)/y;
const CLOSING_TAG = new RegExp(`</(${NAME})\\s*>`, "y");
const TEXT = /[^<]+/y;
/** Namespaces in XML: at most one colon, with something on each side. */
const QNAME = /^[^:]+(?::[^:]+)?$/;
const PI_TARGET = new RegExp(`^<\\?(${NAME})(?=\\s|\\?>)`);
const XML_DECLARATION =
  /^<\?xml\s+version\s*=\s*(['"])1\.0\1(\s+encoding\s*=\s*(['"])[A-Za-z][A-Za-z0-9._-]*\3)?(\s+standalone\s*=\s*(['"])(yes|no)\5)?\s*\?>$/;

/**
 * Parses an XML document strictly.
 *
 * @param text The XML document.
 * @returns The tree, each node carrying its source text.
 * @throws {SyntaxError} If the text is not well-formed XML; the message gives
 * the line and column.
 * @example
 * ```ts
 * import { parseXml } from "./xml_parse.ts";
 * const { root } = parseXml("<domain type='kvm'><name>vm1</name></domain>");
 * root.attributes; // [["type", "kvm"]]
 * ```
 */
export function parseXml(text: string): ParsedXml {
  const fail = (message: string, at: number): never => {
    throw new SyntaxError(`${message} at ${lineAndColumn(text, at)}`);
  };

  let root: XmlElement | undefined;
  let rootStart = 0;
  let rootEnd = -1;
  let quote: "'" | '"' | undefined;
  let emptyTagEnd: "/>" | " />" | undefined;
  let parent: XmlElement | null = null;
  const scopes: Array<Map<string, string | null>> = [new Map([["xml", XML_NAMESPACE], ["", null]])];
  let position = 0;

  while (position < text.length) {
    const start = position;
    if (text.charCodeAt(position) !== 0x3c /* < */) {
      TEXT.lastIndex = position;
      TEXT.exec(text);
      position = TEXT.lastIndex;
      const raw = text.slice(start, position);
      if (!parent) {
        if (/\S/.test(raw)) fail("text outside the root element", start + raw.search(/\S/));
        continue;
      }
      if (raw.includes("]]>")) fail("']]>' is not allowed in text", start + raw.indexOf("]]>"));
      const decoded = decodeText(raw.includes("\r") ? raw.replace(/\r\n?/g, "\n") : raw, (m) => fail(m, start));
      parent.children.push({ kind: "text", text: decoded, parent, origin: { raw, text: decoded } });
      continue;
    }

    if (text.startsWith("<!--", position)) {
      const end = text.indexOf("-->", position + 4);
      if (end < 0) fail("a comment is never closed with '-->'", start);
      if (text.slice(position + 4, end).includes("--") || text[end - 1] === "-") fail("'--' is not allowed inside a comment", start);
      position = end + 3;
      if (parent) parent.children.push({ kind: "verbatim", raw: text.slice(start, position), parent });
      continue;
    }

    if (text.startsWith("<![CDATA[", position)) {
      if (!parent) fail("CDATA outside the root element", start);
      const end = text.indexOf("]]>", position);
      if (end < 0) fail("a CDATA section is never closed with ']]>'", start);
      position = end + 3;
      checkCharacters(text.slice(start, position), (m) => fail(m, start));
      parent!.children.push({ kind: "verbatim", raw: text.slice(start, position), parent });
      continue;
    }

    if (text.startsWith("<!DOCTYPE", position)) fail("a DOCTYPE is not allowed in domain XML", start);
    if (text.startsWith("<!", position)) fail("'<!' starts neither a comment nor CDATA", start);

    if (text.startsWith("<?", position)) {
      const end = text.indexOf("?>", position + 2);
      if (end < 0) fail("a processing instruction is never closed with '?>'", start);
      // The target ends at white space or at '?>' (XML 1.0, production PI).
      const target = PI_TARGET.exec(text.slice(start, end + 2))?.[1];
      if (!target) fail("a processing instruction has no valid target", start);
      if (target!.toLowerCase() === "xml" && (start !== 0 || target !== "xml")) {
        fail("the XML declaration must come first", start);
      }
      position = end + 2;
      if (target === "xml" && !XML_DECLARATION.test(text.slice(start, position))) {
        fail("the XML declaration is malformed; write <?xml version='1.0' encoding='UTF-8'?>", start);
      }
      if (parent) parent.children.push({ kind: "verbatim", raw: text.slice(start, position), parent });
      continue;
    }

    if (text.startsWith("</", position)) {
      CLOSING_TAG.lastIndex = position;
      const match = CLOSING_TAG.exec(text);
      if (!match) fail("a closing tag is malformed", start);
      const name = match![1];
      if (!parent) fail(`</${name}> closes nothing`, start);
      if (parent!.name !== name) fail(`</${name}> does not close <${parent!.name}>`, start);
      position = CLOSING_TAG.lastIndex;
      scopes.pop();
      parent = parent!.parent;
      if (!parent) rootEnd = position;
      continue;
    }

    // A start tag.
    START_TAG_NAME.lastIndex = position;
    const nameMatch = START_TAG_NAME.exec(text);
    if (!nameMatch) fail("'<' must start a tag; write a literal '<' as '&lt;'", start);
    const name = nameMatch![1];
    if (!QNAME.test(name)) fail(`'${name}' is not a valid qualified name (prefix:name)`, start);
    if (!parent && root) fail(`a second root element <${name}>`, start);
    position = START_TAG_NAME.lastIndex;

    const attributes: Array<[string, string]> = [];
    let scope = scopes.at(-1)!;
    let selfClosing = false;
    for (;;) {
      TAG_END.lastIndex = position;
      const end = TAG_END.exec(text);
      if (end) {
        selfClosing = end[1] === "/>";
        position = TAG_END.lastIndex;
        break;
      }
      ATTRIBUTE.lastIndex = position;
      const attribute = ATTRIBUTE.exec(text);
      if (!attribute) {
        if (position >= text.length) fail(`<${name}> is not closed with '>'`, start);
        const snippet = text.slice(position, position + 12).replace(/\s+/g, " ").trim();
        fail(`<${name}> has something that is not an attribute at '${snippet}'`, position);
      }
      if (attribute![1] === "") fail(`the attributes of <${name}> must be separated by white space`, position);
      const attributeName = attribute![2];
      if (!QNAME.test(attributeName)) fail(`'${attributeName}' is not a valid qualified name (prefix:name)`, position);
      if (!attribute![3]) fail(`the attribute '${attributeName}' of <${name}> has no '=' and value`, position);
      position = ATTRIBUTE.lastIndex;
      const quoteChar = text[position];
      if (quoteChar !== "'" && quoteChar !== '"') fail(`the value of '${attributeName}' must be in quotes`, position);
      const close = text.indexOf(quoteChar, position + 1);
      if (close < 0) fail(`the value of '${attributeName}' has no closing quote`, position);
      const value = text.slice(position + 1, close);
      if (value.includes("<")) fail(`the value of '${attributeName}' contains '<'`, position);
      quote ??= quoteChar as "'" | '"';
      position = close + 1;
      if (attributes.some(([seen]) => seen === attributeName)) fail(`<${name}> has the attribute '${attributeName}' twice`, start);
      const decoded = decodeText(/[\t\n\r]/.test(value) ? value.replace(/[\t\n\r]/g, " ") : value, (m) => fail(m, start));
      attributes.push([attributeName, decoded]);
      if (attributeName === "xmlns" || attributeName.startsWith("xmlns:")) {
        if (scope === scopes.at(-1)) scope = new Map(scope);
        scope.set(attributeName === "xmlns" ? "" : attributeName.slice(6), decoded || null);
      }
    }
    const raw = text.slice(start, position);
    if (selfClosing) emptyTagEnd ??= raw.endsWith(" />") ? " />" : "/>";

    for (const [attributeName] of attributes) {
      if (attributeName.includes(":") && !attributeName.startsWith("xmlns:")) {
        namespaceOf(attributeName, scope, false, (m) => fail(m, start));
      }
    }
    const element: XmlElement = {
      kind: "element",
      name,
      namespace: namespaceOf(name, scope, true, (m) => fail(m, start)),
      attributes,
      children: [],
      parent,
      origin: { raw, selfClosing },
    };
    if (parent) parent.children.push(element);
    else {
      root = element;
      rootStart = start;
    }
    if (selfClosing) {
      if (!parent) rootEnd = position;
    } else {
      scopes.push(scope);
      parent = element;
    }
  }

  if (parent) fail(`<${parent.name}> is never closed`, text.length);
  if (!root) fail("no root element", text.length);
  return {
    root: root!,
    prolog: text.slice(0, rootStart),
    epilog: text.slice(rootEnd),
    quote: quote ?? "'",
    emptyTagEnd: emptyTagEnd ?? "/>",
  };
}

const PREDEFINED_ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

/** Replaces entity and character references; anything else after `&` is an error. */
function decodeText(text: string, fail: (message: string) => never): string {
  if (!text.includes("&")) return checkCharacters(text, fail);
  return checkCharacters(
    text.replace(/&([^;&\s]*);?/g, (whole, name: string) => {
      if (!whole.endsWith(";")) fail(`'&' must be written as '&amp;'`);
      if (name in PREDEFINED_ENTITIES) return PREDEFINED_ENTITIES[name];
      const code = /^#x([0-9a-fA-F]+)$/.exec(name)?.[1] ?? /^#([0-9]+)$/.exec(name)?.[1];
      if (code === undefined) fail(`unknown entity '&${name};'`);
      const point = name[1] === "x" ? parseInt(code!, 16) : parseInt(code!, 10);
      const char = point <= 0x10ffff ? String.fromCodePoint(point) : "";
      if (!char || !isXmlChar(char.codePointAt(0)!)) {
        fail(`'&${name};' is not a character XML allows`);
      }
      return char;
    }),
    fail,
  );
}

function checkCharacters(text: string, fail: (message: string) => never): string {
  // deno-lint-ignore no-control-regex
  const bad = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.exec(text);
  if (bad) fail(`control character U+${bad[0].charCodeAt(0).toString(16).padStart(4, "0").toUpperCase()}`);
  return text;
}

function isXmlChar(point: number): boolean {
  return point === 0x9 || point === 0xa || point === 0xd ||
    (point >= 0x20 && point <= 0xd7ff) || (point >= 0xe000 && point <= 0xfffd) ||
    point >= 0x10000;
}

function namespaceOf(
  qualifiedName: string,
  scope: Map<string, string | null>,
  isElement: boolean,
  fail: (message: string) => never,
): string | null {
  const colon = qualifiedName.indexOf(":");
  if (colon < 0) return isElement ? scope.get("") ?? null : null;
  const prefix = qualifiedName.slice(0, colon);
  const namespace = scope.get(prefix);
  if (!namespace) fail(`the prefix '${prefix}' of '${qualifiedName}' is not declared`);
  return namespace!;
}

function lineAndColumn(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split("\n").length;
  const column = index - before.lastIndexOf("\n");
  return `line ${line}, column ${column}`;
}
