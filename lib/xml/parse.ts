// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A strict, bounded XML 1.0 parser for domain XML. It checks the whole
 * document the way libvirt's libxml2 does and builds only elements, each with
 * the offsets of its source text (tree.ts), so that the hook edits a domain
 * by splicing and never rewrites what it does not change.
 *
 * It refuses mismatched or unclosed tags, duplicate attributes, undeclared
 * prefixes, unknown entities, stray `&` and `<`, `--` in comments, characters
 * XML does not allow anywhere (in text, attributes, comments, CDATA and
 * processing instructions), text outside the root, DOCTYPEs, and any
 * encoding but UTF-8. White space is XML's: space, tab, CR and LF only.
 *
 * Bounded: it refuses input beyond MAX_DOMAIN_BYTES, MAX_DEPTH, MAX_ELEMENTS
 * or MAX_ATTRIBUTES (limits.ts), and its cost is linear in the input: one
 * pass with sticky regular expressions, a set per element for duplicate
 * attributes, and namespace lookups bounded by the depth.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { LimitError, XmlSyntaxError } from "../errors.ts";
import { MAX_ATTRIBUTES, MAX_DEPTH, MAX_DOMAIN_BYTES, MAX_ELEMENTS } from "../limits.ts";
import type { XmlAttribute, XmlDocument, XmlElement } from "./tree.ts";

const XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace";
const WS = "[ \\t\\r\\n]";
const NAME_START =
  "A-Za-z_:\\u00C0-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF" +
  "\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD";
const NAME = `[${NAME_START}][${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040]*`;
const START_TAG_NAME = new RegExp(`<(${NAME})`, "y");
const ATTRIBUTE_NAME = new RegExp(`(${WS}*)(${NAME})(${WS}*=${WS}*)?`, "y");
const TAG_END = new RegExp(`${WS}*(/?>)`, "y");
const CLOSING_TAG = new RegExp(`</(${NAME})${WS}*>`, "y");
const TEXT = /[^<]+/y;
const REFERENCE = new RegExp(`&(#x[0-9a-fA-F]+|#[0-9]+|${NAME});`, "y");
/** Namespaces in XML: at most one colon, with something on each side. */
const QNAME = /^[^:]+(?::[^:]+)?$/;
const PI_TARGET = new RegExp(`<\\?(${NAME})(?=${WS}|\\?>)`, "y");
const XML_DECLARATION = new RegExp(
  `^<\\?xml${WS}+version${WS}*=${WS}*(['"])1\\.0\\1(${WS}+encoding${WS}*=${WS}*(['"])([A-Za-z][A-Za-z0-9._-]*)\\3)?` +
    `(${WS}+standalone${WS}*=${WS}*(['"])(yes|no)\\6)?${WS}*\\?>$`,
);
/**
 * Characters XML 1.0 does not allow, and UTF-16 halves (checked for their
 * other half by hand). A plain class, not a look-behind, so the regular
 * expression engine compiles it: it runs over every text and attribute.
 */
// deno-lint-ignore no-control-regex
const SUSPECT_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ud800-\udfff\ufffe\uffff]/g;
const PREDEFINED_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const BOM = "\ufeff";

interface State {
  text: string;
  pos: number;
  /** Where the current text run began: the end of the last markup. */
  lead: number;
  /** Open elements, innermost last, with their namespace declarations. */
  open: Array<{ element: XmlElement; declared: Map<string, string | null> | null }>;
  root?: XmlElement;
  elements: number;
  attributes: number;
  quote?: "'" | '"';
  emptyTagEnd?: "/>" | " />";
}

/**
 * Parses a document strictly.
 *
 * @param text The XML document, decoded from UTF-8.
 * @returns The elements, each with the offsets of its source text.
 * @throws {XmlSyntaxError} If the text is not well-formed XML 1.0; the message gives the line and column.
 * @throws {LimitError} If it is larger or deeper than the limits in limits.ts.
 * @example
 * ```ts
 * import { parseXml } from "./parse.ts";
 * import { assertEquals } from "../_assert.ts";
 * const { root } = parseXml("<domain type='kvm'><name>vm1</name></domain>");
 * assertEquals(root.attributes.map((a) => [a.name, a.value]), [["type", "kvm"]]);
 * assertEquals(root.children[0].name, "name");
 * ```
 */
export function parseXml(text: string): XmlDocument {
  if (text.length > MAX_DOMAIN_BYTES) {
    throw new LimitError(`the XML is larger than ${MAX_DOMAIN_BYTES} bytes, the most libvirt accepts`);
  }
  const state: State = { text, pos: 0, lead: 0, open: [], elements: 0, attributes: 0 };
  if (text.startsWith(BOM)) state.pos = state.lead = 1;
  while (state.pos < text.length) readNext(state);
  if (state.open.length > 0) fail(state, `<${state.open.at(-1)!.element.name}> is never closed`, text.length);
  if (!state.root) fail(state, "no root element", text.length);
  return { text, root: state.root!, quote: state.quote ?? "'", emptyTagEnd: state.emptyTagEnd ?? "/>" };
}

function readNext(state: State): void {
  const { text, pos } = state;
  if (text.charCodeAt(pos) !== 0x3c /* < */) return readText(state);
  if (text.startsWith("<!--", pos)) return readComment(state);
  if (text.startsWith("<![CDATA[", pos)) return readCdata(state);
  if (text.startsWith("<!DOCTYPE", pos)) fail(state, "a DOCTYPE is not allowed in domain XML", pos);
  if (text.startsWith("<!", pos)) fail(state, "'<!' starts neither a comment nor CDATA", pos);
  if (text.startsWith("<?", pos)) return readProcessingInstruction(state);
  if (text.startsWith("</", pos)) return readEndTag(state);
  readStartTag(state);
}

function readText(state: State): void {
  const start = state.pos;
  TEXT.lastIndex = start;
  TEXT.exec(state.text);
  state.pos = TEXT.lastIndex;
  const raw = state.text.slice(start, state.pos);
  if (state.open.length === 0) {
    const junk = raw.search(/[^ \t\r\n]/);
    if (junk >= 0) fail(state, "text outside the root element", start + junk);
    return;
  }
  const cdataEnd = raw.indexOf("]]>");
  if (cdataEnd >= 0) fail(state, "']]>' is not allowed in text", start + cdataEnd);
  checkCharacters(state, raw, start);
  if (raw.includes("&")) checkReferences(state, raw, start);
}

function readComment(state: State): void {
  const start = state.pos;
  const end = state.text.indexOf("-->", start + 4);
  if (end < 0) fail(state, "a comment is never closed with '-->'", start);
  const body = state.text.slice(start + 4, end);
  if (body.includes("--") || body.endsWith("-")) fail(state, "'--' is not allowed inside a comment", start);
  checkCharacters(state, body, start + 4);
  endMarkup(state, end + 3);
}

function readCdata(state: State): void {
  const start = state.pos;
  if (state.open.length === 0) fail(state, "CDATA outside the root element", start);
  const end = state.text.indexOf("]]>", start);
  if (end < 0) fail(state, "a CDATA section is never closed with ']]>'", start);
  checkCharacters(state, state.text.slice(start + 9, end), start + 9);
  endMarkup(state, end + 3);
}

function readProcessingInstruction(state: State): void {
  const { text } = state;
  const start = state.pos;
  const end = text.indexOf("?>", start + 2);
  if (end < 0) fail(state, "a processing instruction is never closed with '?>'", start);
  PI_TARGET.lastIndex = start;
  const target = PI_TARGET.exec(text)?.[1];
  if (!target || PI_TARGET.lastIndex > end + 2) fail(state, "a processing instruction has no valid target", start);
  const documentStart = text.startsWith(BOM) ? 1 : 0;
  if (target!.toLowerCase() === "xml") {
    if (start !== documentStart || target !== "xml") fail(state, "the XML declaration must come first", start);
    checkDeclaration(state, text.slice(start, end + 2), start);
  }
  checkCharacters(state, text.slice(start, end), start);
  endMarkup(state, end + 2);
}

function checkDeclaration(state: State, declaration: string, at: number): void {
  const match = XML_DECLARATION.exec(declaration);
  if (!match) fail(state, "the XML declaration is malformed; write <?xml version='1.0' encoding='UTF-8'?>", at);
  const encoding = match![4];
  if (encoding !== undefined && !/^utf-?8$/i.test(encoding)) {
    fail(state, `the XML declares encoding '${encoding}'; domain XML must be UTF-8, as libvirt writes it`, at);
  }
}

function readEndTag(state: State): void {
  const start = state.pos;
  CLOSING_TAG.lastIndex = start;
  const match = CLOSING_TAG.exec(state.text);
  if (!match) fail(state, "a closing tag is malformed", start);
  const name = match![1];
  const current = state.open.at(-1)?.element;
  if (!current) fail(state, `</${name}> closes nothing`, start);
  if (current!.name !== name) fail(state, `</${name}> does not close <${current!.name}>`, start);
  current!.closeStart = start;
  current!.closeLeadStart = state.lead;
  current!.end = CLOSING_TAG.lastIndex;
  state.open.pop();
  endMarkup(state, CLOSING_TAG.lastIndex);
}

function readStartTag(state: State): void {
  const start = state.pos;
  START_TAG_NAME.lastIndex = start;
  const name = START_TAG_NAME.exec(state.text)?.[1];
  if (name === undefined) fail(state, "'<' must start a tag; write a literal '<' as '&lt;'", start);
  if (!QNAME.test(name!)) fail(state, `'${name}' is not a valid qualified name (prefix:name)`, start);
  if (state.open.length === 0 && state.root) fail(state, `a second root element <${name}>`, start);
  if (state.open.length >= MAX_DEPTH) {
    throw new LimitError(`the XML nests elements deeper than ${MAX_DEPTH} levels, the most libvirt accepts`);
  }
  if (++state.elements > MAX_ELEMENTS) throw new LimitError(`the XML has more than ${MAX_ELEMENTS} elements`);
  state.pos = START_TAG_NAME.lastIndex;
  const attributes = readAttributes(state, name!, start);
  const selfClosing = state.text[state.pos - 2] === "/";
  if (selfClosing) state.emptyTagEnd ??= state.text[state.pos - 3] === " " ? " />" : "/>";
  openElement(state, name!, attributes, start, selfClosing);
}

function openElement(
  state: State,
  name: string,
  attributes: XmlAttribute[],
  start: number,
  selfClosing: boolean,
): void {
  const declared = declarations(attributes);
  for (const attribute of attributes) {
    if (attribute.name.includes(":") && !attribute.name.startsWith("xmlns:")) {
      resolve(state, declared, attribute.name, false, start);
    }
  }
  const element: XmlElement = {
    name,
    namespace: resolve(state, declared, name, true, start),
    attributes,
    parent: state.open.at(-1)?.element ?? null,
    children: [],
    start,
    tagEnd: state.pos,
    selfClosing,
    closeStart: state.pos,
    end: state.pos,
    leadStart: state.lead,
    closeLeadStart: state.pos,
  };
  if (element.parent) element.parent.children.push(element);
  else state.root = element;
  if (!selfClosing) state.open.push({ element, declared });
  endMarkup(state, state.pos);
}

function readAttributes(state: State, name: string, start: number): XmlAttribute[] {
  const attributes: XmlAttribute[] = [];
  const seen = new Set<string>();
  for (;;) {
    TAG_END.lastIndex = state.pos;
    if (TAG_END.exec(state.text)) {
      state.pos = TAG_END.lastIndex;
      return attributes;
    }
    const attribute = readAttribute(state, name);
    if (seen.has(attribute.name)) fail(state, `<${name}> has the attribute '${attribute.name}' twice`, start);
    seen.add(attribute.name);
    if (++state.attributes > MAX_ATTRIBUTES) throw new LimitError(`the XML has more than ${MAX_ATTRIBUTES} attributes`);
    attributes.push(attribute);
  }
}

function readAttribute(state: State, element: string): XmlAttribute {
  const { text } = state;
  const at = state.pos;
  ATTRIBUTE_NAME.lastIndex = at;
  const match = ATTRIBUTE_NAME.exec(text);
  if (!match) {
    if (at >= text.length) fail(state, `<${element}> is not closed with '>'`, at);
    const snippet = text.slice(at, at + 12).replace(/[ \t\r\n]+/g, " ").trim();
    fail(state, `<${element}> has something that is not an attribute at '${snippet}'`, at);
  }
  const [, space, name, equals] = match!;
  if (space === "") fail(state, `the attributes of <${element}> must be separated by white space`, at);
  if (!QNAME.test(name)) fail(state, `'${name}' is not a valid qualified name (prefix:name)`, at);
  if (!equals) fail(state, `the attribute '${name}' of <${element}> has no '=' and value`, at);
  const open = ATTRIBUTE_NAME.lastIndex;
  const quote = text[open];
  if (quote !== "'" && quote !== '"') fail(state, `the value of '${name}' must be in quotes`, open);
  const close = text.indexOf(quote, open + 1);
  if (close < 0) fail(state, `the value of '${name}' has no closing quote`, open);
  const raw = text.slice(open + 1, close);
  if (raw.includes("<")) fail(state, `the value of '${name}' contains '<'`, open);
  checkCharacters(state, raw, open + 1);
  state.quote ??= quote as "'" | '"';
  state.pos = close + 1;
  return { name, value: decodeAttribute(state, raw, open + 1), valueStart: open + 1, valueEnd: close };
}

/** XML's attribute-value normalization: line ends, then white space to spaces, then references. */
function decodeAttribute(state: State, raw: string, at: number): string {
  const spaced = /[\t\n\r]/.test(raw) ? raw.replace(/\r\n?/g, "\n").replace(/[\t\n]/g, " ") : raw;
  if (!raw.includes("&")) return spaced;
  checkReferences(state, raw, at);
  return spaced.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[^;]+);/g, (_, ref: string) => referenceValue(ref)!);
}

function declarations(attributes: XmlAttribute[]): Map<string, string | null> | null {
  let declared: Map<string, string | null> | null = null;
  for (const { name, value } of attributes) {
    if (name !== "xmlns" && !name.startsWith("xmlns:")) continue;
    declared ??= new Map();
    declared.set(name === "xmlns" ? "" : name.slice(6), value || null);
  }
  return declared;
}

/**
 * The namespace of a qualified name: the declarations of the element being
 * opened (`own`) first, then those of the open elements (at most MAX_DEPTH).
 */
function resolve(
  state: State,
  own: Map<string, string | null> | null,
  qualifiedName: string,
  isElement: boolean,
  at: number,
): string | null {
  const colon = qualifiedName.indexOf(":");
  if (colon < 0 && !isElement) return null;
  const prefix = colon < 0 ? "" : qualifiedName.slice(0, colon);
  if (prefix === "xml") return XML_NAMESPACE;
  for (let i = state.open.length; i >= 0; i--) {
    const declared = i === state.open.length ? own : state.open[i].declared;
    if (declared?.has(prefix)) {
      const namespace = declared.get(prefix)!;
      if (namespace === null && prefix !== "") break;
      return namespace;
    }
  }
  if (prefix !== "") fail(state, `the prefix '${prefix}' of '${qualifiedName}' is not declared`, at);
  return null;
}

/** Checks every `&` starts a reference XML knows, to a character XML allows. */
function checkReferences(state: State, raw: string, at: number): void {
  for (let amp = raw.indexOf("&"); amp >= 0; amp = raw.indexOf("&", amp + 1)) {
    REFERENCE.lastIndex = amp;
    const match = REFERENCE.exec(raw);
    if (!match) fail(state, "'&' must be written as '&amp;'", at + amp);
    const value = referenceValue(match![1]);
    if (value === undefined) fail(state, `unknown entity '&${match![1]};'`, at + amp);
    if (value === "") fail(state, `'&${match![1]};' is not a character XML allows`, at + amp);
  }
}

/** What a reference stands for: undefined for an unknown entity, "" for a character XML does not allow. */
function referenceValue(ref: string): string | undefined {
  if (ref[0] !== "#") return PREDEFINED_ENTITIES[ref];
  const point = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
  return isXmlChar(point) ? String.fromCodePoint(point) : "";
}

function isXmlChar(point: number): boolean {
  return point === 0x9 || point === 0xa || point === 0xd ||
    (point >= 0x20 && point <= 0xd7ff) || (point >= 0xe000 && point <= 0xfffd) ||
    (point >= 0x10000 && point <= 0x10ffff);
}

function checkCharacters(state: State, raw: string, at: number): void {
  SUSPECT_CHAR.lastIndex = 0;
  for (let found = SUSPECT_CHAR.exec(raw); found; found = SUSPECT_CHAR.exec(raw)) {
    const index = found.index;
    const code = raw.charCodeAt(index);
    if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(raw.charCodeAt(index + 1))) {
      SUSPECT_CHAR.lastIndex = index + 2; // a whole pair: a character beyond U+FFFF
      continue;
    }
    fail(state, `character U+${code.toString(16).padStart(4, "0").toUpperCase()} is not allowed in XML`, at + index);
  }
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function endMarkup(state: State, end: number): void {
  state.pos = end;
  state.lead = end;
}

function fail(state: State, message: string, at: number): never {
  const before = state.text.slice(0, at);
  const line = before.split("\n").length;
  throw new XmlSyntaxError(message, line, at - before.lastIndexOf("\n"));
}
