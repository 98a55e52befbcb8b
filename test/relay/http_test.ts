// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type FileFacts, frontAnswer, judgeAnswer, keepsAlive, parseFrontRequest } from "../../lib/relay/http.ts";
import { RelayError } from "../../lib/errors.ts";

const answer = (status: number, headers: Record<string, string | undefined> = {}) => ({
  status,
  headers: new Map(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined)),
  body: new Uint8Array(),
});
const HEAD = { method: "HEAD" as const };
const GET = { method: "GET" as const, range: { start: 1048576, end: 2097152 } };
const TAG = { etag: '"a1"' };
const MODIFIED = "Tue, 01 Dec 2026 10:00:00 GMT";
const PART: Record<string, string | undefined> = {
  "content-range": "bytes 1048576-2097152/37042176",
  "content-length": "1048577",
  ...TAG,
};
const etag = (value: string) => ({ header: "etag" as const, value });

describe("parseFrontRequest()", () => {
  test("parseFrontRequest() reads curl's HEAD and its GET of one range", () => {
    assert.deepEqual(parseFrontRequest("HEAD /iso HTTP/1.1\r\nHost: httpsisoboot-relay\r\nAccept: */*"), HEAD);
    assert.deepEqual(parseFrontRequest("GET /iso HTTP/1.1\r\nRange: bytes=1048576-2097152"), GET);
  });

  for (
    const head of [
      "POST /iso HTTP/1.1",
      "GET /iso HTTP/1.1",
      "GET /iso HTTP/1.1\r\nRange: bytes=5-",
      "GET /iso HTTP/1.1\r\nRange: bytes=0-1,5-9",
      "GET /iso HTTP/1.1\r\nRange: bytes=9-5",
      "GET /iso HTTP/2",
    ]
  ) {
    test(`parseFrontRequest() refuses ${JSON.stringify(head)}`, () => {
      assert.throws(() => parseFrontRequest(head), RelayError);
    });
  }
});

describe("judgeAnswer()", () => {
  /** [what, request, answer, what is known, the verdict's kind, words of why] */
  const CASES: Array<[string, typeof HEAD | typeof GET, ReturnType<typeof answer>, FileFacts, string, RegExp?]> = [
    ["a good HEAD", HEAD, answer(200, { "content-length": "37042176", "accept-ranges": "bytes", ...TAG }), {}, "whole"],
    [
      "a HEAD with only a weak ETag",
      HEAD,
      answer(200, { "content-length": "37042176", "accept-ranges": "bytes", etag: 'W/"a1"' }),
      {},
      "refused",
      /no strong ETag or Last-Modified/,
    ],
    [
      "a HEAD with a Last-Modified date",
      HEAD,
      answer(200, { "content-length": "37042176", "accept-ranges": "bytes", "last-modified": MODIFIED }),
      {},
      "whole",
    ],
    ["a HEAD without ranges", HEAD, answer(200, { "content-length": "9", ...TAG }), {}, "refused", /no byte ranges/],
    ["a HEAD without a size", HEAD, answer(200, { "accept-ranges": "bytes", ...TAG }), {}, "refused", /no file size/],
    [
      "a HEAD of another size",
      HEAD,
      answer(200, { "content-length": "9", "accept-ranges": "bytes", ...TAG }),
      { size: 8 },
      "refused",
      /changed on the server: 9 bytes, not 8/,
    ],
    ["a 404 to HEAD", HEAD, answer(404), {}, "refused", /HTTP 404 to HEAD/],
    ["a redirect", GET, answer(302, { location: "https://b.example/x.iso" }), {}, "redirect"],
    ["a redirect without a Location", GET, answer(302), {}, "refused", /HTTP 302/],
    ["the part asked for", GET, answer(206, PART), {}, "part"],
    ["a 503", GET, answer(503), {}, "refused", /HTTP 503 to a ranged GET/],
    [
      "a 200 to a ranged GET",
      GET,
      answer(200, { "content-length": "37042176", ...TAG }),
      {},
      "refused",
      /ignored the byte range/,
    ],
    [
      "another range",
      GET,
      answer(206, { ...PART, "content-range": "bytes 0-1048576/37042176" }),
      {},
      "refused",
      /sent bytes 0-1048576 for 1048576-2097152/,
    ],
    ["a part of another size of file", GET, answer(206, PART), { size: 99 }, "refused", /37042176 bytes, not 99/],
    [
      "another ETag",
      GET,
      answer(206, PART),
      { size: 37042176, validator: etag('"a0"') },
      "refused",
      /its ETag differs/,
    ],
    [
      "a part without the ETag the HEAD had",
      GET,
      answer(206, { ...PART, etag: undefined }),
      { size: 37042176, validator: etag('"a1"') },
      "refused",
      /carries no ETag; the relay cannot tell it is the same file/,
    ],
    [
      "a part with another Last-Modified date",
      GET,
      answer(206, { ...PART, "last-modified": "Wed, 02 Dec 2026 10:00:00 GMT" }),
      { validator: { header: "last-modified", value: MODIFIED } },
      "refused",
      /its Last-Modified differs/,
    ],
    [
      "a part that has both, of the known Last-Modified",
      GET,
      answer(206, { ...PART, "last-modified": MODIFIED }),
      { validator: { header: "last-modified", value: MODIFIED } },
      "part",
    ],
    ["a chunked part", GET, answer(206, { ...PART, "transfer-encoding": "chunked" }), {}, "refused", /chunked/],
    [
      "a part whose length is not its range's",
      GET,
      answer(206, { ...PART, "content-length": "5" }),
      {},
      "refused",
      /Content-Length/,
    ],
    [
      "multipart ranges",
      GET,
      answer(206, { "content-type": "multipart/byteranges; boundary=x", ...TAG }),
      {},
      "refused",
      /single Content-Range/,
    ],
  ];
  for (const [what, request, response, facts, kind, why] of CASES) {
    test(`judgeAnswer() takes ${what} as ${kind}`, () => {
      const verdict = judgeAnswer(request, response, facts);
      assert.equal(verdict.kind, kind, JSON.stringify(verdict));
      if (why) assert.match((verdict as { why: string }).why, why);
    });
  }

  test("judgeAnswer() cuts the last range at the file's end, as the server does", () => {
    const last = { method: "GET" as const, range: { start: 36700160, end: 37748736 } };
    const verdict = judgeAnswer(
      last,
      answer(206, { "content-range": "bytes 36700160-37042175/37042176", "content-length": "342016", ...TAG }),
      {},
    );
    assert.deepEqual(verdict, {
      kind: "part",
      start: 36700160,
      end: 37042175,
      size: 37042176,
      validator: etag('"a1"'),
    });
  });
});

describe("frontAnswer() and keepsAlive()", () => {
  test("frontAnswer() tells curl the size, and the part with its range", () => {
    assert.equal(
      frontAnswer({ kind: "whole", size: 9 }),
      "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nAccept-Ranges: bytes\r\n\r\n",
    );
    assert.equal(
      frontAnswer({ kind: "part", start: 2, end: 4, size: 9 }),
      "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-4/9\r\nContent-Length: 3\r\nAccept-Ranges: bytes\r\n\r\n",
    );
  });

  test("keepsAlive() is false only when the server says close", () => {
    assert.equal(keepsAlive(answer(206, PART)), true);
    assert.equal(keepsAlive(answer(206, { connection: "close" })), false);
  });
});
