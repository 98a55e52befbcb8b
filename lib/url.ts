// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Parses and checks the `httpsisoboot` URL before anything touches the XML.
 *
 * libvirt does not take a URL: it takes a host, a port, a percent-decoded path
 * (`<source name>`, which it percent-encodes again) and a raw `query`, and
 * rebuilds the URL that QEMU's curl driver fetches. This module splits the URL
 * into those parts and refuses any URL that libvirt would rebuild differently,
 * so that QEMU fetches exactly the URL the admin gave.
 *
 * This module is pure: it does no I/O. Error messages never contain the URL's
 * credentials or query values.
 *
 * @module
 */
import { UrlError } from "./errors.ts";
import { editDistance } from "./spelling.ts";

/** The parts of an https ISO URL, as libvirt's `<source>` needs them. */
export interface IsoUrl {
  /** Host for `<host name>`: lower-case DNS name (punycode), IPv4, or IPv6 without brackets. */
  host: string;
  /** Port for `<host port>`: 443 when the URL gives none. */
  port: number;
  /** The percent-decoded path, for `<source name>`. */
  name: string;
  /** The raw query without `?`, for `<source query>`; undefined when there is none. */
  query: string | undefined;
  /** The URL QEMU fetches: scheme, host, explicit port, path and query; no fragment. */
  href: string;
  /** What QEMU asks the server for: the path as libvirt encodes it, and the raw query. */
  requestTarget: string;
  /** `href` with every query value replaced by `***`, safe to log. */
  redacted: string;
}

/** Characters RFC 3986 lets a path or query carry unencoded, besides `%XX` and non-ASCII. */
const URL_CHARACTER = /[A-Za-z0-9\-._~!$&'()*+,;=:@/?]/;
/** Characters that RFC 3986 says mean the same written raw or percent-encoded. */
const UNRESERVED = /[A-Za-z0-9\-._~]/;
/**
 * Characters libvirt leaves raw when it rebuilds the path (libxml2's
 * xmlSaveUri); it percent-encodes every other byte. Checked with libvirt 9:
 * `virsh domxml-to-native qemu-argv` on a name holding every ASCII character.
 */
const LIBVIRT_RAW_PATH_CHARACTER = /[A-Za-z0-9\-_.!~*'()/;@&=+$,]/;

/**
 * Parses an `httpsisoboot` URL.
 *
 * @param text The URL as the admin wrote it: `https://server[:port]/path[?query][#fragment]`.
 * @returns The parts libvirt needs; the fragment is dropped.
 * @throws {UrlError} If the URL is not one QEMU can fetch as given; the message
 * says what is wrong and how to fix it, and never quotes credentials or query values.
 * @example
 * ```ts
 * import { parseIsoUrl } from "./url.ts";
 * const url = parseIsoUrl("https://isos.example.org/el9/boot%20disk.iso?sig=abc");
 * import { assertEquals } from "./_assert.ts";
 * assertEquals([url.host, url.port, url.name, url.query], ["isos.example.org", 443, "/el9/boot disk.iso", "sig=abc"]);
 * assertEquals(url.redacted, "https://isos.example.org:443/el9/boot%20disk.iso?sig=***");
 * assertEquals(url.requestTarget, "/el9/boot%20disk.iso?sig=abc");
 * ```
 */
export function parseIsoUrl(text: string): IsoUrl {
  if (typeof text !== "string" || text === "") throw new UrlError("the URL is empty");
  refuseWhitespaceAndControls(text);
  const { authority, path, query } = splitUrl(afterScheme(text));
  const { host, port } = parseAuthority(authority);
  if (query !== undefined) checkCharacters(query, "query", null);
  const { name, fetchedPath } = parsePath(path);
  const hostInUrl = host.includes(":") ? `[${host}]` : host;
  const origin = `https://${hostInUrl}:${port}${fetchedPath}`;
  return {
    host,
    port,
    name,
    query,
    href: query === undefined ? origin : `${origin}?${query}`,
    requestTarget: query === undefined ? fetchedPath : `${fetchedPath}?${query}`,
    redacted: query === undefined ? origin : `${origin}?${redactQuery(query)}`,
  };
}

/** What follows `https://`; any other scheme is refused. */
function afterScheme(text: string): string {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(text)?.[1];
  if (!scheme) throw new UrlError(`the URL does not start with https://${missingColon(text)}`);
  if (scheme.toLowerCase() !== "https") {
    const typo = editDistance(scheme.toLowerCase(), "https") <= 2
      ? "; did you mean https://?"
      : "; serve the ISO over https";
    throw new UrlError(`the URL scheme is '${scheme}', but only https is supported${typo}`);
  }
  if (text.slice(scheme.length + 1, scheme.length + 3) !== "//") {
    throw new UrlError("the URL does not start with https:// (two slashes after 'https:')");
  }
  return text.slice(scheme.length + 3);
}

/** A hint for `https//host` or `https/host`: the scheme is there, its colon or a slash is not. */
function missingColon(text: string): string {
  return /^https?\/\/?[^/]/i.test(text) ? " (it starts with 'https/' or 'https//': write 'https://')" : "";
}

/** Authority, path and query (undefined when empty); the fragment is dropped, credentials refused. */
function splitUrl(rest: string): { authority: string; path: string; query: string | undefined } {
  const withoutFragment = rest.split("#")[0];
  const pathStart = withoutFragment.search(/[/?]/);
  const authority = pathStart < 0 ? withoutFragment : withoutFragment.slice(0, pathStart);
  const pathAndQuery = pathStart < 0 ? "" : withoutFragment.slice(pathStart);
  if (authority.includes("@")) {
    throw new UrlError(
      "the URL contains credentials (user:password@), which QEMU would log and pass on; " +
        "use a URL that needs no login, such as a signed URL",
    );
  }
  const questionMark = pathAndQuery.indexOf("?");
  const path = questionMark < 0 ? pathAndQuery : pathAndQuery.slice(0, questionMark);
  const query = questionMark < 0 ? undefined : pathAndQuery.slice(questionMark + 1);
  return { authority, path, query: query === "" ? undefined : query };
}

/** The decoded path for `<source name>`, and the path libvirt will send, which must be the one written. */
function parsePath(path: string): { name: string; fetchedPath: string } {
  if (path === "" || path === "/") {
    throw new UrlError("the URL has no path to an ISO image; give the full path, such as /isos/disk.iso");
  }
  checkCharacters(path, "path", /[?]/);
  if (path.split("/").some((segment) => /^(\.|%2e){1,2}$/i.test(segment))) {
    throw new UrlError(
      "the URL path contains '.' or '..' segments (perhaps encoded as %2e), which curl or the server would remove; " +
        "write the path without them",
    );
  }
  const name = decodePath(path);
  const fetchedPath = encodePathLikeLibvirt(name);
  refuseIfPathChanges(path, fetchedPath);
  return { name, fetchedPath };
}

/**
 * Replaces every value of a query string with `***`, keeping the keys.
 *
 * @param query A query string without the leading `?`.
 * @returns The query with its values hidden: `sig=***&expires=***`.
 * @example
 * ```ts
 * import { redactQuery } from "./url.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(redactQuery("X-Amz-Signature=abc&X-Amz-Expires=60"), "X-Amz-Signature=***&X-Amz-Expires=***");
 * ```
 */
export function redactQuery(query: string): string {
  return query
    .split("&")
    .map((pair) => {
      const equals = pair.indexOf("=");
      return equals < 0 ? "***" : `${pair.slice(0, equals)}=***`;
    })
    .join("&");
}

/**
 * Percent-encodes a decoded path the way libvirt does when it builds the URL
 * for QEMU, byte by byte in UTF-8.
 *
 * @param name A decoded path, as in `<source name>`.
 * @returns The path as it appears in the URL QEMU fetches.
 * @example
 * ```ts
 * import { encodePathLikeLibvirt } from "./url.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(encodePathLikeLibvirt("/isos/a b:c.iso"), "/isos/a%20b%3Ac.iso");
 * ```
 */
export function encodePathLikeLibvirt(name: string): string {
  let out = "";
  for (const char of name) {
    if (LIBVIRT_RAW_PATH_CHARACTER.test(char)) out += char;
    else for (const byte of new TextEncoder().encode(char)) out += percent(byte);
  }
  return out;
}

function refuseWhitespaceAndControls(text: string): void {
  // deno-lint-ignore no-control-regex
  const found = /[\s\u0000-\u001f\u007f-\u009f\u200b\u2060\ufeff]/u.exec(text);
  if (!found) return;
  const char = found[0];
  const code = `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  const what = char === " " ? "a space" : /\s/.test(char) ? "white space" : "a control character";
  throw new UrlError(
    `the URL contains ${what} (${code}) at character ${found.index + 1}; ` +
      "remove it, or percent-encode it if it is part of the file name",
  );
}

function parseAuthority(authority: string): { host: string; port: number } {
  let hostPart = authority;
  let portPart: string | undefined;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) throw new UrlError("the URL's IPv6 address has no closing ']'");
    hostPart = authority.slice(0, close + 1);
    const after = authority.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) {
      throw new UrlError("the URL has text after its IPv6 address; write https://[address]:port/path");
    }
    portPart = after === "" ? undefined : after.slice(1);
  } else {
    const colons = authority.split(":").length - 1;
    if (colons > 1) {
      throw new UrlError("the URL's host looks like an IPv6 address; put it in brackets: https://[2001:db8::1]/path");
    }
    if (colons === 1) [hostPart, portPart] = authority.split(":");
  }
  return { host: parseHost(hostPart), port: parsePort(portPart) };
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return 443;
  if (text === "") throw new UrlError("the URL has ':' but no port after it; remove the ':' or add the port");
  if (!/^[0-9]{1,5}$/.test(text)) throw new UrlError(`the URL's port '${text}' is not a number from 1 to 65535`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw new UrlError(`the URL's port ${port} is not from 1 to 65535`);
  return port;
}

function parseHost(text: string): string {
  if (text === "") throw new UrlError("the URL has no host name");
  if (text.startsWith("[")) return parseIpv6(text.slice(1, -1));
  // deno-lint-ignore no-control-regex
  const ascii = /[^\u0000-\u007f]/.test(text) ? toPunycode(text) : text.toLowerCase();
  // A last label that is a number makes the whole host an IPv4 address to
  // curl and glibc, in decimal, octal or hex and with fewer than four parts:
  // only the plain dotted form is accepted, so the allowlist sees what curl connects to.
  if (/(^|\.)(0x[0-9a-f]*|[0-9]+)\.?$/.test(ascii)) {
    if (ascii !== text.toLowerCase()) {
      throw new UrlError(`the URL's host '${text}' turns into the IP address '${ascii}'; write the address itself`);
    }
    return parseIpv4(text);
  }
  const name = ascii.endsWith(".") ? ascii.slice(0, -1) : ascii;
  const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
  if (name.length > 253 || !name.split(".").every((part) => label.test(part))) {
    throw new UrlError(
      `the URL's host '${text}' is not a valid DNS name, IPv4 address or bracketed IPv6 address`,
    );
  }
  return ascii;
}

/**
 * An internationalized host name in punycode. Only letters, digits, marks,
 * dots and hyphens may be in it: anything else (`\`, `%`, …) would make the
 * URL parser end or change the host, and the URL would name another server.
 */
function toPunycode(text: string): string {
  if (!/^[\p{L}\p{N}\p{M}.\-\u3002\uff0e\uff61]+$/u.test(text)) {
    throw new UrlError(`the URL's host '${text}' has characters a host name cannot have; check the URL`);
  }
  try {
    return new URL(`https://${text}/`).hostname;
  } catch {
    throw new UrlError(`the URL's host '${text}' is not a valid internationalized domain name`);
  }
}

function parseIpv4(text: string): string {
  const parts = text.split(".");
  const valid = parts.length === 4 &&
    parts.every((part) => /^(0|[1-9][0-9]{0,2})$/.test(part) && Number(part) <= 255);
  if (!valid) {
    throw new UrlError(
      `the URL's host '${text}' is not a valid IPv4 address; write four numbers 0-255, such as 192.0.2.10`,
    );
  }
  return text;
}

function parseIpv6(text: string): string {
  if (text.includes("%")) {
    throw new UrlError("the URL's IPv6 address has a zone (%); use a global or unique-local address");
  }
  let valid = /^[0-9A-Fa-f:.]+$/.test(text);
  if (valid) {
    try {
      new URL(`https://[${text}]/`);
    } catch {
      valid = false;
    }
  }
  if (!valid) throw new UrlError(`the URL's host '[${text}]' is not a valid IPv6 address`);
  return text.toLowerCase();
}

function checkCharacters(text: string, part: string, alsoRefused: RegExp | null): void {
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "%") {
      if (!/^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
        throw new UrlError(
          `the URL ${part} has a '%' that is not followed by two hex digits; write a literal '%' as %25`,
        );
      }
      continue;
    }
    if (char.charCodeAt(0) > 0x7f) continue;
    if (!URL_CHARACTER.test(char) || alsoRefused?.test(char)) {
      throw new UrlError(`the URL ${part} contains '${char}'; percent-encode it as ${percent(char.charCodeAt(0))}`);
    }
  }
}

function decodePath(path: string): string {
  let name: string;
  try {
    name = decodeURIComponent(path);
  } catch {
    throw new UrlError("the URL path has percent-encoded bytes that are not UTF-8; libvirt can only pass UTF-8 names");
  }
  // deno-lint-ignore no-control-regex
  const control = /[\u0000-\u001f\u007f]/.exec(name);
  if (control) {
    throw new UrlError(
      `the URL path decodes to a control character (${percent(control[0].charCodeAt(0))}), which libvirt cannot carry`,
    );
  }
  return name;
}

/**
 * Compares the path the admin wrote with the one libvirt will send, octet by
 * octet: both must carry each octet the same way (raw or encoded), except
 * unreserved characters, which RFC 3986 treats as equal either way.
 */
function refuseIfPathChanges(written: string, fetched: string): void {
  const a = octets(written);
  const b = octets(fetched);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (
      a[i]?.byte === b[i]?.byte && (a[i].encoded === b[i].encoded || UNRESERVED.test(String.fromCharCode(a[i].byte)))
    ) {
      continue;
    }
    const char = String.fromCharCode(a[i].byte);
    if (a[i].byte === 0x2f) {
      throw new UrlError(
        "the URL path contains %2F (an encoded '/'), which libvirt passes to QEMU as '/'; serve the ISO at a path without %2F",
      );
    }
    const writtenAs = a[i].encoded ? percent(a[i].byte) : `'${char}'`;
    const sentAs = b[i].encoded ? percent(b[i].byte) : `'${char}'`;
    throw new UrlError(
      `the URL path has ${writtenAs}, which libvirt sends to QEMU as ${sentAs}, so the server would see a different URL; write it as ${sentAs}`,
    );
  }
}

function octets(path: string): Array<{ byte: number; encoded: boolean }> {
  const out: Array<{ byte: number; encoded: boolean }> = [];
  for (let i = 0; i < path.length; i++) {
    if (path[i] === "%") {
      out.push({ byte: parseInt(path.slice(i + 1, i + 3), 16), encoded: true });
      i += 2;
    } else {
      const char = path.codePointAt(i)!;
      if (char > 0x7f) {
        const bytes = new TextEncoder().encode(String.fromCodePoint(char));
        for (const byte of bytes) out.push({ byte, encoded: true });
        if (char > 0xffff) i++;
      } else out.push({ byte: char, encoded: false });
    }
  }
  return out;
}

function percent(byte: number): string {
  return `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
}
