// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type Request, ResponseReader } from "../../lib/http/response.ts";
import { ServerError } from "../../lib/errors.ts";

const HEAD: Request = { method: "HEAD" };
const GET: Request = { method: "GET", range: "bytes=32768-34815", bodyBytes: 4 };
const feed = (reader: ResponseReader, text: string, chunk = text.length) => {
  let done = false;
  for (let i = 0; i < text.length && !done; i += chunk) {
    done = reader.push(Buffer.from(text.slice(i, i + chunk), "latin1"));
  }
  return done;
};

describe("ResponseReader", () => {
  const ANSWERS = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nAccept-Ranges: bytes\r\n\r\n" +
    "HTTP/1.1 206 Partial Content\r\nContent-Length: 6\r\n\r\nCD001!";

  for (const chunk of [1, 7, 1000]) {
    test(`ResponseReader reads pipelined answers to HEAD and a ranged GET, ${chunk} bytes at a time`, () => {
      const reader = new ResponseReader([HEAD, GET]);
      assert.equal(feed(reader, ANSWERS, chunk), true);
      assert.deepEqual(
        reader.responses.map((r) => [r.status, r.headers.get("accept-ranges") ?? null, Buffer.from(r.body).toString()]),
        [
          [200, "bytes", ""],
          [206, null, "CD00"],
        ],
      );
    });
  }

  test("ResponseReader stops at an answer that decides: a 200 to the ranged GET, without its body", () => {
    const reader = new ResponseReader([HEAD, GET]);
    assert.equal(feed(reader, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\n\r\nAAAAAAAAAA"), true);
    assert.deepEqual(reader.responses.map((r) => [r.status, r.body.length]), [[200, 0], [200, 0]]);
  });

  test("ResponseReader stops at a redirect to HEAD without reading on", () => {
    const reader = new ResponseReader([HEAD, GET]);
    assert.equal(feed(reader, "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n"), true);
    assert.equal(reader.responses.length, 1);
  });

  test("ResponseReader decodes a chunked body, keeping only what it needs", () => {
    const reader = new ResponseReader([GET]);
    assert.equal(
      feed(reader, "HTTP/1.1 206 Partial\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nCD\r\n3;x=1\r\n001\r\n0\r\n\r\n", 3),
      true,
    );
    assert.equal(Buffer.from(reader.responses[0].body).toString(), "CD00");
  });

  test("ResponseReader skips interim answers, a few at most", () => {
    const reader = new ResponseReader([HEAD]);
    assert.equal(feed(reader, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), true);
    assert.equal(reader.responses[0].status, 200);
    assert.throws(() => feed(new ResponseReader([HEAD]), "HTTP/1.1 100 Continue\r\n\r\n".repeat(5)), /interim/);
  });

  test("ResponseReader refuses headers over 16 KiB and answers that are not HTTP/1.x", () => {
    assert.throws(
      () => feed(new ResponseReader([HEAD]), "HTTP/1.1 200 OK\r\n" + "X: y\r\n".repeat(4000), 512),
      (error: Error) => error instanceof ServerError && /16384 bytes/.test(error.message),
    );
    assert.throws(() => feed(new ResponseReader([HEAD]), "SSH-2.0-OpenSSH\r\n\r\n"), /did not answer with HTTP\/1.1/);
  });
});
