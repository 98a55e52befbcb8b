// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What the relay's front reads and writes: the requests nbdkit's curl plugin
 * makes of it, and the judgement of each answer from the ISO server. The
 * front passes on only an answer that is exactly what was asked for: a 206
 * for the very range asked, of the file's size and version as first seen.
 * Anything else (a 503, a 200 to a ranged GET, a short or changed file)
 * becomes a cut connection, which curl reports as an error and nbdkit's
 * retry-request filter tries again: wrong bytes never reach the guest.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { RelayError } from "../errors.ts";
import type { Response } from "../http/response.ts";

/** A request nbdkit's curl plugin makes: HEAD for the size, GET of a byte range for data. */
export interface FrontRequest {
  method: "HEAD" | "GET";
  /** The inclusive byte range of a GET. */
  range?: { start: number; end: number };
}

/**
 * What names one version of the file on the server: a strong ETag, or else
 * the Last-Modified date (a weak ETag names no bytes, so it does not count).
 */
export interface Validator {
  header: "etag" | "last-modified";
  value: string;
}

/** What the front knows of the file, from preflight or the first answer. */
export interface FileFacts {
  size?: number;
  validator?: Validator;
}

/** What an answer from the ISO server means for the request it answers. */
export type Verdict =
  | { kind: "redirect"; status: number; location: string }
  | { kind: "whole"; size: number; validator: Validator }
  | { kind: "part"; start: number; end: number; size: number; validator: Validator }
  /** `status` when the server refused with an HTTP status (a 403, a 503), not for what its answer said. */
  | { kind: "refused"; why: string; status?: number };

/**
 * The validator an answer carries: its ETag when that is strong, else its
 * Last-Modified date; undefined when it has neither.
 *
 * @example
 * ```ts
 * import { validatorOf } from "./http.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(validatorOf(new Map([["etag", '"5f-1a"']])), { header: "etag", value: '"5f-1a"' });
 * assertEquals(validatorOf(new Map([["etag", 'W/"5f"']])), undefined);
 * assertEquals(validatorOf(new Map([["etag", 'W/"5f"'], ["last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"]]))?.header, "last-modified");
 * ```
 */
export function validatorOf(headers: Map<string, string>): Validator | undefined {
  const etag = headers.get("etag");
  if (etag !== undefined && /^"[\x21\x23-\x7e]{1,200}"$/.test(etag)) return { header: "etag", value: etag };
  const modified = headers.get("last-modified");
  if (modified !== undefined && modified.length <= 64 && !Number.isNaN(Date.parse(modified))) {
    return { header: "last-modified", value: modified };
  }
  return undefined;
}

/**
 * The If-Range header that makes a server whose file changed answer with
 * the whole new file (a 200, which is refused) instead of a part of it.
 *
 * @example
 * ```ts
 * import { ifRange } from "./http.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(ifRange({ header: "etag", value: '"5f-1a"' }), 'If-Range: "5f-1a"\r\n');
 * ```
 */
export function ifRange(validator: Validator | undefined): string {
  return validator ? `If-Range: ${validator.value}\r\n` : "";
}

/**
 * Reads a request head from nbdkit's curl plugin.
 *
 * @throws {RelayError} For anything but HEAD, or GET with one `bytes=a-b` range.
 * @example
 * ```ts
 * import { parseFrontRequest } from "./http.ts";
 * import { assertEquals } from "../_assert.ts";
 * const request = parseFrontRequest("GET /iso HTTP/1.1\r\nHost: httpsisoboot-relay\r\nRange: bytes=0-1048576");
 * assertEquals(request, { method: "GET", range: { start: 0, end: 1048576 } });
 * ```
 */
export function parseFrontRequest(head: string): FrontRequest {
  const [line, ...headers] = head.split("\r\n");
  const method = /^(GET|HEAD) \S+ HTTP\/1\.[01]$/.exec(line)?.[1] as FrontRequest["method"] | undefined;
  if (!method) throw new RelayError("the relay's front takes only HEAD and GET");
  if (method === "HEAD") return { method };
  const range = headers.find((header) => /^range:/i.test(header));
  const match = /^range:\s*bytes=([0-9]{1,16})-([0-9]{1,16})\s*$/i.exec(range ?? "");
  if (!match || Number(match[1]) > Number(match[2])) {
    throw new RelayError("the relay's front serves a GET of one byte range only");
  }
  return { method, range: { start: Number(match[1]), end: Number(match[2]) } };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Judges the server's answer to a request.
 *
 * @param request What nbdkit asked.
 * @param answer The server's status and headers.
 * @param facts What earlier answers said of the file.
 * @example
 * ```ts
 * import { judgeAnswer } from "./http.ts";
 * import { assertEquals } from "../_assert.ts";
 * const answer = (status: number, headers: Record<string, string>) => ({ status, headers: new Map(Object.entries(headers)), body: new Uint8Array() });
 * const get = { method: "GET" as const, range: { start: 0, end: 9 } };
 * const part = { "content-range": "bytes 0-9/100", "content-length": "10", etag: '"v1"' };
 * assertEquals(judgeAnswer(get, answer(503, {}), {}).kind, "refused");
 * assertEquals(judgeAnswer(get, answer(200, { "content-length": "100", etag: '"v1"' }), {}).kind, "refused");
 * assertEquals(judgeAnswer(get, answer(206, part), {}).kind, "part");
 * const known = { validator: { header: "etag" as const, value: '"v1"' } };
 * assertEquals(judgeAnswer(get, answer(206, { "content-range": "bytes 0-9/100", "content-length": "10" }), known).kind, "refused");
 * ```
 */
export function judgeAnswer(request: FrontRequest, answer: Response, facts: FileFacts): Verdict {
  const { status, headers } = answer;
  const location = headers.get("location");
  if (REDIRECTS.has(status) && location) return { kind: "redirect", status, location };
  if (status !== 200 && status !== 206) {
    return {
      kind: "refused",
      why: `HTTP ${status} to ${request.method === "HEAD" ? "HEAD" : "a ranged GET"}`,
      status,
    };
  }
  const version = checkValidator(headers, facts);
  if (typeof version === "string") return { kind: "refused", why: version };
  return request.method === "HEAD" ? judgeWhole(answer, facts, version) : judgePart(request, answer, facts, version);
}

/**
 * The answer's validator, which must be the one known: the same header with
 * the same value; or why not. Without one known, the answer must bring one.
 */
function checkValidator(headers: Map<string, string>, facts: FileFacts): Validator | string {
  const known = facts.validator;
  if (known === undefined) {
    return validatorOf(headers) ??
      "the server sends no strong ETag or Last-Modified, so the relay cannot prove every part is of the same file";
  }
  const name = known.header === "etag" ? "ETag" : "Last-Modified";
  const value = headers.get(known.header);
  if (value === undefined) return `the answer carries no ${name}; the relay cannot tell it is the same file`;
  if (value !== known.value) return `the ISO changed on the server since the relay started (its ${name} differs)`;
  return known;
}

function judgeWhole(answer: Response, facts: FileFacts, version: Validator): Verdict {
  if (answer.status !== 200) return { kind: "refused", why: `HTTP ${answer.status} to HEAD` };
  const size = wholeNumber(answer.headers.get("content-length"));
  if (size === undefined || size === 0) {
    return { kind: "refused", why: "no file size (Content-Length) in the HEAD answer" };
  }
  if (!/\bbytes\b/.test(answer.headers.get("accept-ranges") ?? "")) {
    return { kind: "refused", why: "no byte ranges (Accept-Ranges: bytes)" };
  }
  if (facts.size !== undefined && size !== facts.size) {
    return { kind: "refused", why: `the ISO changed on the server: ${size} bytes, not ${facts.size}` };
  }
  return { kind: "whole", size, validator: version };
}

function judgePart(
  request: FrontRequest,
  answer: Response,
  facts: FileFacts,
  version: Validator,
): Verdict {
  const { status, headers } = answer;
  if (status === 200) return { kind: "refused", why: "the server ignored the byte range (200, not 206)" };
  const match = /^bytes ([0-9]{1,16})-([0-9]{1,16})\/([0-9]{1,16})$/.exec(headers.get("content-range") ?? "");
  if (!match) return { kind: "refused", why: "a 206 without a single Content-Range" };
  const [start, end, size] = match.slice(1).map(Number);
  const asked = request.range!;
  if (facts.size !== undefined && size !== facts.size) {
    return { kind: "refused", why: `the ISO changed on the server: ${size} bytes, not ${facts.size}` };
  }
  if (start !== asked.start || end !== Math.min(asked.end, size - 1)) {
    return { kind: "refused", why: `the server sent bytes ${start}-${end} for ${asked.start}-${asked.end}` };
  }
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    return { kind: "refused", why: "a chunked 206; the relay needs its length" };
  }
  if (wholeNumber(headers.get("content-length")) !== end - start + 1) {
    return { kind: "refused", why: "a 206 whose Content-Length is not its range's" };
  }
  return { kind: "part", start, end, size, validator: version };
}

/** Whether the server will keep the connection open after this answer. */
export function keepsAlive(answer: Response): boolean {
  return !/\bclose\b/i.test(answer.headers.get("connection") ?? "");
}

/**
 * The answer the front gives nbdkit for a verdict the server passed.
 *
 * @example
 * ```ts
 * import { frontAnswer } from "./http.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(frontAnswer({ kind: "part", start: 0, end: 9, size: 100 }).split("\r\n")[0], "HTTP/1.1 206 Partial Content");
 * ```
 */
export function frontAnswer(
  verdict: { kind: "whole"; size: number } | { kind: "part"; start: number; end: number; size: number },
): string {
  if (verdict.kind === "whole") {
    return `HTTP/1.1 200 OK\r\nContent-Length: ${verdict.size}\r\nAccept-Ranges: bytes\r\n\r\n`;
  }
  return `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${verdict.start}-${verdict.end}/${verdict.size}\r\n` +
    `Content-Length: ${verdict.end - verdict.start + 1}\r\nAccept-Ranges: bytes\r\n\r\n`;
}

function wholeNumber(text: string | undefined): number | undefined {
  return text !== undefined && /^[0-9]{1,16}$/.test(text) ? Number(text) : undefined;
}
