/**
 * A strict XML parser that builds an xmlbuilder2 DOM and remembers the exact
 * source text of every node, so that {@link serializeXml} can write untouched
 * nodes back byte for byte.
 *
 * xmlbuilder2's own reader is lenient: it accepts `<a><b></a>`, duplicate
 * attributes, undeclared prefixes and unknown entities, and silently "repairs"
 * them. A hook must refuse such input instead, so this module drives the same
 * lexer (from `@oozcitak/dom`, xmlbuilder2's DOM engine) and checks
 * well-formedness itself.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { create } from "xmlbuilder2";
import { XMLStringLexer } from "@oozcitak/dom/lib/parser/XMLStringLexer.js";
import type {
  ElementToken,
  PIToken,
  CharacterDataToken,
  ClosingTagToken,
} from "@oozcitak/dom/lib/parser/interfaces.js";
import type { Document, Element, Node } from "@oozcitak/dom/lib/dom/interfaces.js";

// Values of @oozcitak/dom's TokenType enum; importing the enum itself would
// pull a CommonJS value export into the hook's start-up path for five numbers.
const TOKEN_EOF = 0;
const TOKEN_DECLARATION = 1;
const TOKEN_DOCTYPE = 2;
const TOKEN_ELEMENT = 3;
const TOKEN_TEXT = 4;
const TOKEN_CDATA = 5;
const TOKEN_PI = 6;
const TOKEN_COMMENT = 7;
const TOKEN_CLOSING_TAG = 8;

const XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NAMESPACE = "http://www.w3.org/2000/xmlns/";

/** The source text a node was parsed from, and what it meant then. */
export interface Origin {
  /** The node's exact text in the input: a start tag, or a run of text. */
  raw: string;
  /** For elements: the attributes as parsed, in order, decoded. */
  attributes?: Array<[string, string]>;
  /** For elements: whether the start tag was `<x/>`. */
  selfClosing?: boolean;
  /** For text: the decoded text as parsed. */
  data?: string;
}

/** A parsed document together with what is needed to write it back faithfully. */
export interface ParsedXml {
  /** The xmlbuilder2 DOM document. */
  document: Document;
  /** The document element. */
  root: Element;
  /** Everything before the document element, verbatim (declaration, comments, white space). */
  prolog: string;
  /** Everything after the document element, verbatim. */
  epilog: string;
  /** The source of each parsed element and text node. */
  origins: WeakMap<Node, Origin>;
  /** The quote character the input uses for attributes; new attributes use it too. */
  quote: "'" | '"';
  /** How the input ends an empty element, `/>` or ` />`; new elements end the same way. */
  emptyTagEnd: "/>" | " />";
}

/**
 * Parses an XML document strictly.
 *
 * @param text The XML document.
 * @returns The DOM and the source of each node.
 * @throws {SyntaxError} If the text is not well-formed XML; the message gives
 * the line and column.
 * @example
 * ```ts
 * import { parseXml } from "./xml_parse.ts";
 * const { root } = parseXml("<domain type='kvm'><name>vm1</name></domain>");
 * root.getAttribute("type"); // "kvm"
 * ```
 */
export function parseXml(text: string): ParsedXml {
  const document = create().node as unknown as Document;
  const origins = new WeakMap<Node, Origin>();
  const lexer = new XMLStringLexer(text, { skipWhitespaceOnlyText: false });
  const position = () => (lexer as unknown as { _index: number })._index;
  const fail = (message: string, at: number): never => {
    throw new SyntaxError(`${message} at ${lineAndColumn(text, at)}`);
  };

  let root: Element | undefined;
  let rootStart = 0;
  let rootEnd = -1;
  let quote: "'" | '"' | undefined;
  let emptyTagEnd: "/>" | " />" | undefined;
  const open: Array<{ element: Element; scope: Map<string, string | null> }> = [];
  let scope = new Map<string, string | null>([["xml", XML_NAMESPACE], ["", null]]);

  for (;;) {
    const start = position();
    let token;
    try {
      token = lexer.nextToken();
    } catch (error) {
      const reason = String((error as Error).message).split("\n")[0];
      return fail(reason.replace(/\.$/, ""), start);
    }
    const raw = text.slice(start, position());
    const parent = open.at(-1)?.element;

    switch (token.type) {
      case TOKEN_EOF:
        if (parent) fail(`<${parent.nodeName}> is never closed`, text.length);
        if (!root) fail("no root element", text.length);
        return {
          document,
          root: root!,
          prolog: text.slice(0, rootStart),
          epilog: text.slice(rootEnd),
          origins,
          quote: quote ?? "'",
          emptyTagEnd: emptyTagEnd ?? "/>",
        };

      case TOKEN_DECLARATION:
        if (start !== 0) fail("the XML declaration must come first", start);
        break;

      case TOKEN_DOCTYPE:
        fail("a DOCTYPE is not allowed in domain XML", start);
        break;

      case TOKEN_TEXT: {
        const data = (token as CharacterDataToken).data;
        if (!parent) {
          if (/\S/.test(data)) fail("text outside the root element", start);
          break;
        }
        const decoded = decodeText(data.replace(/\r\n?/g, "\n"), (m) => fail(m, start));
        const node = document.createTextNode(decoded);
        origins.set(node, { raw, data: decoded });
        parent.appendChild(node);
        break;
      }

      case TOKEN_CDATA:
        if (!parent) fail("CDATA outside the root element", start);
        parent!.appendChild(document.createCDATASection((token as CharacterDataToken).data));
        break;

      case TOKEN_COMMENT:
        if (parent) parent.appendChild(document.createComment((token as CharacterDataToken).data));
        break;

      case TOKEN_PI:
        if (parent) {
          const pi = token as PIToken;
          parent.appendChild(document.createProcessingInstruction(pi.target, pi.data));
        }
        break;

      case TOKEN_ELEMENT: {
        const tag = token as ElementToken;
        if (!parent && root) fail(`a second root element <${tag.name}>`, start);
        quote ??= /=\s*(['"])/.exec(raw)?.[1] as "'" | '"' | undefined;
        if (tag.selfClosing) emptyTagEnd ??= raw.endsWith(" />") ? " />" : "/>";
        const attributes: Array<[string, string]> = [];
        const seen = new Set<string>();
        const elementScope = new Map(scope);
        for (const [name, value] of tag.attributes) {
          if (seen.has(name)) fail(`<${tag.name}> has the attribute '${name}' twice`, start);
          seen.add(name);
          if (value.includes("<")) fail(`the value of '${name}' contains '<'`, start);
          const decoded = decodeText(value.replace(/[\t\n\r]/g, " "), (m) => fail(m, start));
          attributes.push([name, decoded]);
          if (name === "xmlns") elementScope.set("", decoded || null);
          else if (name.startsWith("xmlns:")) elementScope.set(name.slice(6), decoded);
        }
        const element = document.createElementNS(
          namespaceOf(tag.name, elementScope, true, (m) => fail(m, start)),
          tag.name,
        );
        for (const [name, value] of attributes) {
          const namespace = name === "xmlns" || name.startsWith("xmlns:")
            ? XMLNS_NAMESPACE
            : namespaceOf(name, elementScope, false, (m) => fail(m, start));
          element.setAttributeNS(namespace, name, value);
        }
        origins.set(element, { raw, attributes, selfClosing: tag.selfClosing });
        if (parent) parent.appendChild(element);
        else {
          document.appendChild(element);
          root = element;
          rootStart = start;
        }
        if (tag.selfClosing) {
          if (!parent) rootEnd = position();
        } else {
          open.push({ element, scope });
          scope = elementScope;
        }
        break;
      }

      case TOKEN_CLOSING_TAG: {
        const name = (token as ClosingTagToken).name;
        const top = open.pop();
        if (!top) fail(`</${name}> closes nothing`, start);
        if (top!.element.nodeName !== name) {
          fail(`</${name}> does not close <${top!.element.nodeName}>`, start);
        }
        scope = top!.scope;
        if (open.length === 0) rootEnd = position();
        break;
      }
    }
  }
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
  if (bad) fail(`control character U+${bad[0].charCodeAt(0).toString(16).padStart(4, "0")}`);
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
