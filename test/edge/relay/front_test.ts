// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The relay's front against real TLS servers on loopback, in this process,
 * asked over its Unix socket as nbdkit's curl plugin asks it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import type { TLSSocket } from "node:tls";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { setTimeout as sleep } from "node:timers/promises";
import { type Front, startFront } from "../../../edge/relay/front.ts";
import { parseIsoUrl } from "../../../lib/url.ts";
import type { AllowRule } from "../../../lib/settings.ts";
import { ask, bodies, closers, server } from "../../support/front_peer.ts";
import { RELAY_PARALLEL_GETS, RELAY_READAHEAD_BLOCKS } from "../../../lib/relay/readahead.ts";
import { makeAuthority, makeServerCert, type ServerCert } from "../../support/tls.ts";
import { workDir } from "../../support/mod.ts";

const noOpenssl = spawnSync("sh", ["-c", "command -v openssl"]).status === 0 ? undefined : "openssl is not installed";
const FILE = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));

/** The relay's first request (upstream.ts's PROBE), which answers nbdkit's size question. */
const isProbe = (request: string) => /\r\nrange: bytes=0-34815\b/i.test(request);

/** What a good ISO server says: 206 for any range of FILE, cut at its end. */
function goodAnswer(socket: TLSSocket, request: string): void {
  const [start, end] = /range: bytes=(\d+)-(\d+)/i.exec(request)!.slice(1).map(Number);
  const last = Math.min(end, FILE.length - 1);
  socket.write(
    `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${last}/${FILE.length}\r\n` +
      `Content-Length: ${last - start + 1}\r\nETag: "v1"\r\n\r\n`,
  );
  socket.write(FILE.subarray(start, last + 1));
}

describe("the relay's front", { skip: noOpenssl }, () => {
  const work = workDir("front");
  let ca: Uint8Array;
  let cert: ServerCert;
  let other: ServerCert;
  const fronts: Front[] = [];
  const logs: string[] = [];

  before(() => {
    const authority = makeAuthority(work, "front test CA");
    ca = readFileSync(authority.cert);
    cert = makeServerCert(work, "good", authority);
    other = makeServerCert(work, "rogue", makeAuthority(work, "rogue CA"));
  });
  after(async () => {
    for (const front of fronts) await front.close();
    for (const close of closers) close();
  });

  async function frontFor(port: number, name: string, allow: AllowRule[] = [{ host: "localhost" }]): Promise<string> {
    const path = join(work, `${name}.sock`);
    fronts.push(
      await startFront(path, {
        url: parseIsoUrl(`https://localhost:${port}/data.iso?sig=TOPSECRET`),
        allow,
        settingsFile: "/etc/vdsm/httpsisoboot.conf",
        timeoutMs: 1000,
        ca,
        log: (line) => logs.push(line),
      }),
    );
    return path;
  }

  test("the front passes on the size and the parts asked for, byte for byte, from one GET of the whole block over one kept TLS connection", async () => {
    const iso = await server(cert, goodAnswer);
    const path = await frontFor(iso.port, "good");
    const { raw, cut } = await ask(path, [
      "HEAD /iso HTTP/1.1",
      "GET /iso HTTP/1.1\r\nRange: bytes=100-299",
      "GET /iso HTTP/1.1\r\nRange: bytes=4000-4096",
    ]);
    assert.equal(cut, false, "curl's connection stays open");
    const text = raw.toString("latin1");
    assert.match(text, /^HTTP\/1\.1 200 OK\r\nContent-Length: 4096\r\nAccept-Ranges: bytes\r\n\r\n/);
    assert.ok(
      raw.includes(
        Buffer.concat([
          Buffer.from("Content-Range: bytes 100-299/4096\r\nContent-Length: 200\r\nAccept-Ranges: bytes\r\n\r\n"),
          FILE.subarray(100, 300),
        ]),
      ),
    );
    assert.ok(
      raw.includes(
        Buffer.concat([
          Buffer.from("bytes 4000-4095/4096\r\nContent-Length: 96\r\nAccept-Ranges: bytes\r\n\r\n"),
          FILE.subarray(4000),
        ]),
      ),
      "the last part cut at the file's end",
    );
    assert.equal(iso.seen.connections, 1);
    assert.deepEqual(iso.seen.requests, [
      "GET /data.iso?sig=TOPSECRET HTTP/1.1 bytes=0-34815",
      "GET /data.iso?sig=TOPSECRET HTTP/1.1 bytes=0-4095",
    ]);
  });

  test("the front serves each block from one GET, fetches nothing ahead of reads out of order, and reuses a connection idle for longer than the timeout", async () => {
    const big = Buffer.from(Array.from({ length: (5 << 20) / 2 }, (_, i) => i % 253));
    const iso = await server(cert, (socket, request) => {
      const [start, end] = /range: bytes=(\d+)-(\d+)/i.exec(request)!.slice(1).map(Number);
      socket.write(
        `HTTP/1.1 206 P\r\nETag: "big"\r\nContent-Range: bytes ${start}-${end}/${big.length}\r\nContent-Length: ${
          end - start + 1
        }\r\n\r\n`,
      );
      socket.write(big.subarray(start, end + 1));
    });
    const path = await frontFor(iso.port, "blocks");
    logs.length = 0;
    const reads = ["0-65536", "65536-131072", "2097152-2162688", "1048000-1049000"];
    for (const range of reads) {
      await sleep(1200); // past the front's 1 s timeout: the kept connection lies idle that long
      const [start, end] = range.split("-").map(Number);
      const { raw } = await ask(path, [`GET /iso HTTP/1.1\r\nRange: bytes=${range}`]);
      assert.ok(
        raw.includes(big.subarray(start, end + 1)),
        `${range}: ${raw.length} bytes: ${raw.subarray(0, 200).toString("latin1")}`,
      );
    }
    assert.deepEqual(iso.seen.requests.slice(1), [
      "GET /data.iso?sig=TOPSECRET HTTP/1.1 bytes=0-1048575",
      "GET /data.iso?sig=TOPSECRET HTTP/1.1 bytes=2097152-2621439",
      "GET /data.iso?sig=TOPSECRET HTTP/1.1 bytes=1048576-2097151",
    ], "each block once, and a read across two blocks takes both");
    assert.equal(iso.seen.connections, 1, "one connection, kept through the idle time");
    assert.deepEqual(logs, [], "no request failed (an idle connection used to time out and fail the next one)");
  });

  /** A 16 MiB file served with a strong ETag, counting GETs and the connections with a GET in flight at once. */
  async function bigServer() {
    const big = Buffer.from(Array.from({ length: 16 << 20 }, (_, i) => (i * 7) % 251));
    const stats = { gets: [] as string[], inFlight: 0, mostInFlight: 0 };
    const iso = await server(cert, (socket, request) => {
      const [start, end] = /range: bytes=(\d+)-(\d+)/i.exec(request)!.slice(1).map(Number);
      if (isProbe(request)) {
        return void socket.write(
          `HTTP/1.1 206 P\r\nETag: "big"\r\nContent-Range: bytes 0-${end}/${big.length}\r\nContent-Length: ${
            end + 1
          }\r\n\r\n${big.subarray(0, end + 1).toString("latin1")}`,
          "latin1",
        );
      }
      stats.gets.push(`${start >> 20}`);
      stats.inFlight++;
      stats.mostInFlight = Math.max(stats.mostInFlight, stats.inFlight);
      // 200 ms of round trip, so that GETs in parallel meet in flight even on two busy cores.
      setTimeout(() => {
        socket.write(
          `HTTP/1.1 206 P\r\nETag: "big"\r\nContent-Range: bytes ${start}-${end}/${big.length}\r\nContent-Length: ${
            end - start + 1
          }\r\n\r\n`,
        );
        socket.write(big.subarray(start, end + 1), () => stats.inFlight--);
      }, 200);
    });
    return { iso, big, stats };
  }

  /** Reads the first 64 KiB of block `index`: a read here and there, not in order. */
  const readBlock = async (path: string, big: Buffer, index: number) => {
    const start = index << 20;
    const { raw } = await ask(path, [`GET /iso HTTP/1.1\r\nRange: bytes=${start}-${start + 65535}`]);
    assert.ok(raw.includes(big.subarray(start, start + 65536)), `block ${index}`);
  };

  /** Reads all of block `index`, as nbdkit asks for it: sixteen 64 KiB reads in order on one connection. */
  const readWholeBlock = async (path: string, big: Buffer, index: number) => {
    const start = index << 20;
    const pieces = Array.from({ length: 16 }, (_, i) => start + i * 65536);
    const { raw } = await ask(path, pieces.map((at) => `GET /iso HTTP/1.1\r\nRange: bytes=${at}-${at + 65535}`));
    assert.ok(bodies(raw).equals(big.subarray(start, start + (1 << 20))), `block ${index}`);
  };

  test("reads in order make the front fetch ahead, up to 8 blocks, in parallel, each block once", async () => {
    const { iso, big, stats } = await bigServer();
    const path = await frontFor(iso.port, "ahead");
    for (const index of [0, 1, 2, 3, 4]) await readWholeBlock(path, big, index);
    for (let waited = 0; stats.gets.length < 13 && waited < 20_000; waited += 20) await sleep(20);
    await sleep(200);
    assert.deepEqual(
      stats.gets.map(Number).sort((a, b) => a - b),
      Array.from({ length: 13 }, (_, i) => i),
      "blocks 0 to 4 read, 5 to 12 ahead, each once",
    );
    // The block the guest waits for, and the read-ahead's 8 after it.
    const most = Math.min(RELAY_READAHEAD_BLOCKS + 1, RELAY_PARALLEL_GETS);
    assert.ok(
      stats.mostInFlight > 1 && stats.mostInFlight <= most,
      `${stats.mostInFlight} GETs at once, at most ${most}`,
    );
    // On to the file's end: a block fetched ahead is never dropped before the guest has read it.
    for (let index = 5; index < 16; index++) await readWholeBlock(path, big, index);
    await sleep(300);
    assert.deepEqual(
      stats.gets.map(Number).sort((a, b) => a - b),
      Array.from({ length: 16 }, (_, i) => i),
      "each block once",
    );
  });

  test("a block's buffer is reused only once the answers that point into it are written: a reader that stalls still gets its own bytes", async () => {
    const { iso, big } = await bigServer();
    const path = await frontFor(iso.port, "stalled");
    const front = fronts.at(-1)!;
    // A reader that asks for all of block 0 and reads none of it: the front's write of it waits on the socket.
    const stalled = connect({ path });
    try {
      stalled.pause();
      stalled.write(`GET /iso HTTP/1.1\r\nRange: bytes=0-${(1 << 20) - 1}\r\nHost: httpsisoboot-relay\r\n\r\n`);
      // The front counts a part served as it hands it to the socket: from then on the write is pending.
      for (let waited = 0; front.stats().served < 1 << 20 && waited < 10_000; waited += 20) await sleep(20);
      assert.equal(front.stats().served, 1 << 20, "the stalled reader's answer is being written");
      // Meanwhile the guest reads on: block 0 is dropped from memory, and the buffers of later blocks go round.
      for (let index = 1; index < 16; index++) await readBlock(path, big, index);
      const chunks: Buffer[] = [];
      let have = 0;
      const raw = await new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the stalled reader's answer never came whole")), 10_000);
        stalled.on("data", (chunk: Buffer) => {
          chunks.push(chunk);
          have += chunk.length;
          if (have < (1 << 20) + 64) return;
          const raw = Buffer.concat(chunks);
          const head = raw.indexOf("\r\n\r\n");
          if (head >= 0 && raw.length >= head + 4 + (1 << 20)) {
            clearTimeout(timer);
            resolve(raw.subarray(head + 4, head + 4 + (1 << 20)));
          }
        });
        stalled.resume();
      });
      assert.ok(raw.equals(big.subarray(0, 1 << 20)), "block 0 as the server sent it, not another block's bytes");
    } finally {
      // Left open, it would hold the front's close in the suite's after() (a server closes once its connections have).
      stalled.destroy();
    }
  });

  test("random reads fetch nothing ahead: one GET for each block read, adjacent blocks too", async () => {
    const { iso, big, stats } = await bigServer();
    const path = await frontFor(iso.port, "random");
    for (const index of [5, 1, 9, 3, 4, 12, 13, 14]) await readBlock(path, big, index);
    await sleep(300);
    assert.deepEqual(stats.gets, ["5", "1", "9", "3", "4", "12", "13", "14"]);
  });

  test("the front answers a part once its bytes have come, and a block cut short fails only the parts that never came", async () => {
    let gets = 0;
    const iso = await server(cert, (socket, request) => {
      if (isProbe(request) || ++gets > 1) return goodAnswer(socket, request);
      socket.write(
        `HTTP/1.1 206 P\r\nETag: "v1"\r\nContent-Range: bytes 0-4095/${FILE.length}\r\nContent-Length: 4096\r\n\r\n`,
      );
      socket.write(FILE.subarray(0, 1000));
      setTimeout(() => socket.destroy(), 300); // the rest never comes
    });
    const path = await frontFor(iso.port, "arriving");
    await ask(path, ["HEAD /iso HTTP/1.1"]);
    logs.length = 0;
    const [early, late] = await Promise.all([
      ask(path, ["GET /iso HTTP/1.1\r\nRange: bytes=0-9"]),
      ask(path, ["GET /iso HTTP/1.1\r\nRange: bytes=2000-2009"]),
    ]);
    assert.equal(early.cut, false, "bytes 0-9 came before the cut");
    assert.ok(early.raw.includes(FILE.subarray(0, 10)));
    assert.equal(late.cut, true, "bytes 2000-2009 never came");
    assert.match(logs.join("\n"), /cut the answer short: 1000 of 4096 bytes; nbdkit will retry/);
    const retried = await ask(path, ["GET /iso HTTP/1.1\r\nRange: bytes=2000-2009"]);
    assert.ok(retried.raw.includes(FILE.subarray(2000, 2010)), "nbdkit's retry makes a new GET of the block");
    assert.deepEqual(iso.seen.requests.slice(1), [
      "GET /data.iso?sig=TOPSECRET HTTP/1.1 bytes=0-4095",
      "GET /data.iso?sig=TOPSECRET HTTP/1.1 bytes=0-4095",
    ], "one GET for both parts, and one for the retry");
  });

  /** [what, the server's answer to the GET, the words of the front's line] */
  const CUTS: Array<[string, (socket: TLSSocket, request: string) => void, RegExp]> = [
    ["a 503", (socket) => socket.write("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"), /HTTP 503 to a ranged GET/],
    [
      "a 200 with the whole file",
      (socket) => socket.write(`HTTP/1.1 200 OK\r\nETag: "v1"\r\nContent-Length: ${FILE.length}\r\n\r\n`),
      /ignored the byte range/,
    ],
    [
      "a part of another file",
      (socket) =>
        socket.write('HTTP/1.1 206 P\r\nETag: "v1"\r\nContent-Range: bytes 0-98/99\r\nContent-Length: 99\r\n\r\n'),
      /the ISO changed on the server: 99 bytes, not 4096/,
    ],
    [
      "another part than asked",
      (socket) =>
        socket.write(
          `HTTP/1.1 206 P\r\nETag: "v1"\r\nContent-Range: bytes 0-9/${FILE.length}\r\nContent-Length: 10\r\n\r\n0123456789`,
        ),
      /the server sent bytes 0-9 for 0-4095/,
    ],
    ["a body cut short", (socket) => {
      socket.write(
        `HTTP/1.1 206 P\r\nETag: "v1"\r\nContent-Range: bytes 0-4095/${FILE.length}\r\nContent-Length: 4096\r\n\r\n01234`,
      );
      socket.end();
    }, /cut the answer short: 5 of 4096 bytes/],
    ["silence", () => {}, /sent nothing for 1 s \(timeout\)/],
    [
      "endless headers",
      (socket) => socket.write(`HTTP/1.1 206 P\r\nETag: "v1"\r\n${"X-Pad: y\r\n".repeat(3000)}`),
      /more than 16384 bytes of headers/,
    ],
  ];
  for (const [what, misbehave, words] of CUTS) {
    test(`the front cuts curl's connection on ${what}, and says why without the query`, async () => {
      const iso = await server(
        cert,
        (socket, request) => isProbe(request) ? goodAnswer(socket, request) : misbehave(socket, request),
      );
      const path = await frontFor(iso.port, `cut-${CUTS.findIndex(([name]) => name === what)}`);
      logs.length = 0;
      const { raw, cut } = await ask(path, ["HEAD /iso HTTP/1.1", "GET /iso HTTP/1.1\r\nRange: bytes=0-9"]);
      assert.equal(cut, true);
      assert.doesNotMatch(
        raw.toString("latin1"),
        /HTTP\/1\.1 206/,
        "nothing of the part reached curl: it sees an error",
      );
      assert.match(logs.join("\n"), words);
      assert.match(logs.join("\n"), /; nbdkit will retry$/m);
      assert.ok(!logs.join("\n").includes("TOPSECRET"));
    });
  }

  test("the front refuses a part that does not carry the ETag its first answer had, so other bytes never reach curl", async () => {
    const other = Buffer.alloc(FILE.length, 0x58);
    const iso = await server(cert, (socket, request) => {
      if (isProbe(request)) return goodAnswer(socket, request);
      const [start, end] = /range: bytes=(\d+)-(\d+)/i.exec(request)!.slice(1).map(Number);
      const last = Math.min(end, FILE.length - 1);
      socket.write(
        `HTTP/1.1 206 Partial\r\nContent-Range: bytes ${start}-${last}/${FILE.length}\r\nContent-Length: ${
          last - start + 1
        }\r\n\r\n`,
      );
      socket.write(other.subarray(start, last + 1));
    });
    const path = await frontFor(iso.port, "no-etag-later");
    logs.length = 0;
    const { raw, cut } = await ask(path, ["HEAD /iso HTTP/1.1", "GET /iso HTTP/1.1\r\nRange: bytes=0-9"]);
    assert.equal(cut, true);
    assert.ok(!raw.includes(other.subarray(0, 10)), "not a byte of the other file reached curl");
    assert.match(logs.join("\n"), /carries no ETag; the relay cannot tell it is the same file/);
  });

  test("the front asks with If-Range, so a server whose file changed answers 200, which is refused", async () => {
    const iso = await server(cert, goodAnswer);
    const path = await frontFor(iso.port, "if-range");
    await ask(path, ["HEAD /iso HTTP/1.1", "GET /iso HTTP/1.1\r\nRange: bytes=0-9"]);
    assert.deepEqual(iso.seen.ifRange, ['"v1"']);
  });

  test("the front reads nothing from a kept connection with no request in flight: a server that streams junk there is dropped", async () => {
    let streamed = 0;
    let closedAfter = -1;
    const iso = await server(cert, (socket, request) => {
      goodAnswer(socket, request);
      if (!isProbe(request)) return;
      const began = Date.now();
      socket.once("close", () => (closedAfter = Date.now() - began));
      const junk = Buffer.alloc(1 << 20, 0x4a);
      const pump = () => {
        while (!socket.destroyed && streamed < (256 << 20) && socket.write(junk)) streamed += junk.length;
        if (!socket.destroyed && streamed < (256 << 20)) socket.once("drain", pump);
      };
      setTimeout(pump, 50);
    });
    const path = await frontFor(iso.port, "junk");
    await ask(path, ["HEAD /iso HTTP/1.1"]);
    const until = Date.now() + 5000;
    while (closedAfter < 0 && Date.now() < until) await sleep(20);
    assert.ok(closedAfter >= 0 && closedAfter < 2000, `the front dropped the connection (after ${closedAfter} ms)`);
    assert.ok(streamed < (64 << 20), `the server got rid of ${streamed >> 20} MiB before it was cut off`);
    const { raw } = await ask(path, ["GET /iso HTTP/1.1\r\nRange: bytes=0-9"]);
    assert.ok(raw.includes(FILE.subarray(0, 10)), "the next request gets a new connection");
  });

  test("the front gives up on a block the server trickles, one byte at a time, within the timeout", async () => {
    const iso = await server(cert, (socket, request) => {
      if (isProbe(request)) return goodAnswer(socket, request);
      socket.write(
        `HTTP/1.1 206 P\r\nETag: "v1"\r\nContent-Range: bytes 0-4095/${FILE.length}\r\nContent-Length: 4096\r\n\r\n`,
      );
      let at = 0;
      const timer = setInterval(
        () => socket.destroyed ? clearInterval(timer) : socket.write(FILE.subarray(at, ++at)),
        200,
      );
      socket.on("close", () => clearInterval(timer));
    });
    const path = await frontFor(iso.port, "trickle");
    logs.length = 0;
    const began = Date.now();
    const { cut } = await ask(path, ["HEAD /iso HTTP/1.1", "GET /iso HTTP/1.1\r\nRange: bytes=100-109"]);
    assert.equal(cut, true);
    assert.ok(Date.now() - began < 4000, `cut after ${Date.now() - began} ms`);
    assert.match(logs.join("\n"), /did not send the whole answer within 1 s \(timeout\)/);
    // nbdkit's retry of the block, while its retries last: failed at once, the slow server not asked again.
    const gets = iso.seen.requests.length;
    const retried = Date.now();
    assert.equal((await ask(path, ["GET /iso HTTP/1.1\r\nRange: bytes=100-109"])).cut, true);
    assert.ok(Date.now() - retried < 500, `the retry failed after ${Date.now() - retried} ms`);
    assert.equal(iso.seen.requests.length, gets, "no GET for the retry");
  });

  test("the front follows a redirect to an allowed server, and never asks one that 'allow' does not name", async () => {
    const target = await server(cert, goodAnswer);
    const redirecting = await server(
      cert,
      (socket) =>
        socket.write(
          `HTTP/1.1 302 Found\r\nLocation: https://localhost:${target.port}/real.iso\r\nContent-Length: 0\r\n\r\n`,
        ),
    );
    const allowed = await frontFor(redirecting.port, "redirect-ok");
    assert.ok((await ask(allowed, ["GET /iso HTTP/1.1\r\nRange: bytes=0-9"])).raw.includes(FILE.subarray(0, 10)));
    assert.deepEqual(target.seen.requests, [
      "GET /real.iso HTTP/1.1 bytes=0-34815",
      "GET /real.iso HTTP/1.1 bytes=0-4095",
    ]);
    assert.equal(redirecting.seen.requests.length, 1, "one redirect, then the target asked directly");
    const strict = await frontFor(redirecting.port, "redirect-refused", [{
      host: "localhost",
      port: redirecting.port,
    }]);
    logs.length = 0;
    const { cut } = await ask(strict, ["GET /iso HTTP/1.1\r\nRange: bytes=0-9"]);
    assert.equal(cut, true);
    assert.equal(target.seen.requests.length, 2, "the server 'allow' does not name was not asked");
    assert.match(
      logs.join("\n"),
      /redirects \(HTTP 302\) to a server that the 'allow' setting of \/etc\/vdsm\/httpsisoboot\.conf does not name/,
    );
  });

  test("the front refuses a server whose certificate this host does not trust", async () => {
    const rogue = await server(other, goodAnswer);
    const path = await frontFor(rogue.port, "rogue");
    logs.length = 0;
    const { cut } = await ask(path, ["HEAD /iso HTTP/1.1"]);
    assert.equal(cut, true);
    assert.deepEqual(rogue.seen.requests, [], "not a byte of the request was sent");
    assert.match(logs.join("\n"), /is not trusted by this host \(issuer CN=rogue CA\)/);
  });

  test("the front replaces a kept connection the server has closed, without failing the request, and asks once a block", async () => {
    const iso = await server(cert, (socket, request) => {
      goodAnswer(socket, request);
      socket.end(); // no keep-alive, though the answer did not say so
    });
    const path = await frontFor(iso.port, "stale");
    const first = await ask(path, ["GET /iso HTTP/1.1\r\nRange: bytes=0-9"]);
    const asked = iso.seen.requests.length;
    const second = await ask(path, ["GET /iso HTTP/1.1\r\nRange: bytes=10-19"]);
    assert.ok(first.raw.includes(FILE.subarray(0, 10)) && second.raw.includes(FILE.subarray(10, 20)));
    assert.equal(
      iso.seen.connections,
      2,
      "the GET after the probe found its kept connection closed, and took a new one",
    );
    assert.equal(iso.seen.requests.length, asked, "the second part came from the block already read");
  });
});
