// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What an HTTP/1.1 client says and hears, without the network: a request's
 * head as QEMU's curl would send it, an answer's status line and headers,
 * and a reader of pipelined answers that keeps at most MAX_HEADER_BYTES of
 * headers and no more body than asked for. The client that sends and reads
 * them over TLS, for preflight and the relay's front alike, is
 * edge/http/client.ts.
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { Buffer } from "node:buffer";

import { ServerError } from "../errors.ts";
import { MAX_HEADER_BYTES } from "../limits.ts";
import type { IsoUrl } from "../url.ts";

/** Interim (1xx) answers tolerated before the real one. */
const MAX_INTERIM_ANSWERS = 4;

/** One request: HEAD, or a GET of a byte range whose first `bodyBytes` are kept. */
export interface Request {
  method: "HEAD" | "GET";
  range?: string;
  /** How much of the body to keep; the rest is never read. */
  bodyBytes?: number;
}

/** One answer: the status, the headers (lower-case names) and the body bytes kept. */
export interface Response {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

/**
 * The head of a request for the URL, as QEMU's curl would send it: the path
 * as libvirt encodes it and the raw query (IsoUrl.requestTarget).
 *
 * @example
 * ```ts
 * import { requestHead } from "./response.ts";

 * import { parseIsoUrl } from "../url.ts";

 * import { assertEquals } from "../_assert.ts";

 * const head = requestHead(parseIsoUrl("https://i.example/a.iso?s=1"), { method: "HEAD" }, { agent: "a", keepAlive: false });
 * assertEquals(head.split("\r\n").slice(0, 2), ["HEAD /a.iso?s=1 HTTP/1.1", "Host: i.example:443"]);
 * ```
 */
export function requestHead(
  url: IsoUrl,
  { method, range }: Pick<Request, "method" | "range">,
  options: { agent: string; keepAlive: boolean; extra?: string },
): string {
  const host = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
  return `${method} ${url.requestTarget} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: ${options.agent}\r\n` +
    `${range ? `Range: ${range}\r\n` : ""}${options.extra ?? ""}Accept: */*\r\nConnection: ${
      options.keepAlive ? "keep-alive" : "close"
    }\r\n\r\n`;
}

/**
 * Reads pipelined answers from a byte stream, one request at a time, keeping
 * at most MAX_HEADER_BYTES of headers and `bodyBytes` of body.
 */
export class ResponseReader {
  readonly responses: Response[] = [];
  private pending: Uint8Array = new Uint8Array();
  private current?: Response & { need: number; chunked: boolean; remaining: number };
  private scanned = 0;
  private interim = 0;

  constructor(private readonly requests: Request[]) {}

  /** Takes more bytes; returns true once every answer needed is in (or one decided the question). */
  push(chunk: Uint8Array): boolean {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (;;) {
      if (this.responses.length === this.requests.length) return true;
      const before = this.responses.length;
      if (!(this.current ? this.readBody() : this.readHead())) return false;
      if (this.responses.length === before) continue;
      const status = this.responses[before].status;
      if (this.requests[before].method === "HEAD" ? status !== 200 : status !== 206) return true;
    }
  }

  private readHead(): boolean {
    const end = Buffer.from(this.pending.buffer, this.pending.byteOffset, this.pending.length)
      .indexOf("\r\n\r\n", Math.max(0, this.scanned - 3));
    if (end < 0 ? this.pending.length > MAX_HEADER_BYTES : end > MAX_HEADER_BYTES) {
      throw new ServerError(
        `the ISO server sent more than ${MAX_HEADER_BYTES} bytes of HTTP headers; check the server`,
      );
    }
    if (end < 0) {
      this.scanned = this.pending.length;
      return false;
    }
    const head = new TextDecoder("latin1").decode(this.pending.subarray(0, end));
    this.pending = this.pending.subarray(end + 4);
    this.scanned = 0;
    const response = parseResponseHead(head);
    if (response.status < 200) {
      // An interim answer (100 Continue): read on, a few times at most.
      if (++this.interim > MAX_INTERIM_ANSWERS) {
        throw new ServerError("the ISO server keeps sending interim (1xx) answers; check the server");
      }
      return true;
    }
    const request = this.requests[this.responses.length];
    const length = Number(response.headers.get("content-length") ?? "NaN");
    const chunked = /\bchunked\b/i.test(response.headers.get("transfer-encoding") ?? "");
    const wanted = request.method === "HEAD" || response.status !== 206 ? 0 : request.bodyBytes ?? 0;
    const need = Math.min(wanted, Number.isSafeInteger(length) && !chunked ? length : wanted);
    if (need === 0) this.responses.push(response);
    else this.current = { ...response, need, chunked, remaining: 0 };
    return true;
  }

  /** Keeps body bytes until `need` are in; chunked bodies are decoded as they come. */
  private readBody(): boolean {
    const current = this.current!;
    const parts: Uint8Array[] = [current.body];
    let have = current.body.length;
    while (have < current.need && this.pending.length > 0) {
      if (current.chunked && current.remaining === 0) {
        const line = this.chunkSize();
        if (line === undefined) break;
        if (line === 0) break;
        current.remaining = line;
        continue;
      }
      const take = Math.min(current.need - have, this.pending.length, current.chunked ? current.remaining : Infinity);
      parts.push(this.pending.subarray(0, take));
      this.pending = this.pending.subarray(take);
      have += take;
      if (current.chunked) current.remaining -= take;
    }
    current.body = Buffer.concat(parts);
    if (have < current.need) return false;
    this.responses.push({ status: current.status, headers: current.headers, body: current.body });
    this.current = undefined;
    return true;
  }

  /** The next chunk's size, skipping the CRLF that ends the previous chunk; undefined until its line is in. */
  private chunkSize(): number | undefined {
    const text = new TextDecoder("latin1").decode(this.pending.subarray(0, 64));
    const match = /^(?:\r\n)?([0-9a-fA-F]{1,8})[^\r\n]*\r\n/.exec(text);
    if (!match) {
      if (this.pending.length >= 64) throw new ServerError("the ISO server sent a malformed chunked body");
      return undefined;
    }
    this.pending = this.pending.subarray(match[0].length);
    return parseInt(match[1], 16);
  }
}

/**
 * An answer's status line and headers (names in lower case).
 *
 * @throws {ServerError} If it is not HTTP/1.x.
 * @example
 * ```ts
 * import { parseResponseHead } from "./response.ts";

 * import { assertEquals } from "../_assert.ts";

 * const head = parseResponseHead("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-1/9");
 * assertEquals([head.status, head.headers.get("content-range")], [206, "bytes 0-1/9"]);
 * ```
 */
export function parseResponseHead(head: string): Response {
  const [statusLine, ...lines] = head.split("\r\n");
  const status = Number(/^HTTP\/1\.[01] ([1-5][0-9]{2})(?: |$)/.exec(statusLine)?.[1]);
  if (!status) {
    throw new ServerError("the ISO server did not answer with HTTP/1.1; check that the URL names an https web server");
  }
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status, headers, body: new Uint8Array() };
}
