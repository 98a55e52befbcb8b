// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * ISO URLs as admins paste them, read through the relay's front against
 * servers this test starts: a mirror manager (real nginx: a 302 per request
 * to one of two mirrors, each with its own ETag for the same file, sending
 * nothing to a mirror that lost the file), and a redirect to a target signed
 * for a moment (as GitHub's release assets are), which expires while the
 * guest reads.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { TLSSocket } from "node:tls";
import { type Front, startFront } from "../../edge/relay/front.ts";
import { RELAY_BLOCK_BYTES, RELAY_PROOF_EVERY_BYTES } from "../../lib/limits.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { ask, bodies, closers, file, isoAnswer, server, wholeFile } from "../support/front_peer.ts";
import { freePort, type Nginx, startNginx } from "../support/nginx.ts";
import { makeAuthority, makeServerCert, type ServerCert } from "../support/tls.ts";
import { tempDir } from "../support/mod.ts";

const missing = ["nginx", "openssl"].find((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
const skip = missing && `${missing} is not installed; npm test installs it as root`;

const MiB = RELAY_BLOCK_BYTES;

describe("ISO URLs as admins paste them", { skip }, () => {
  // Removed in after(), once nginx has stopped: workDir()'s own after() would run first, and nginx could not be
  // found by its pid file to be stopped.
  const work = tempDir("sources");
  const fronts: Front[] = [];
  let ca: Uint8Array;
  let cert: ServerCert;
  let nginx: Nginx | undefined;

  before(() => {
    const authority = makeAuthority(work, "sources test CA");
    ca = readFileSync(authority.cert);
    cert = makeServerCert(work, "localhost", authority);
  });
  after(async () => {
    for (const front of fronts) await front.close();
    nginx?.stop();
    for (const close of closers) close();
    rmSync(work, { recursive: true, force: true });
  });

  async function frontFor(url: string, name: string, log: string[], extra: Record<string, unknown> = {}) {
    const path = join(work, `${name}.sock`);
    fronts.push(
      await startFront(path, {
        url: parseIsoUrl(url),
        allow: [{ host: "localhost" }],
        settingsFile: "/etc/vdsm/httpsisoboot.conf",
        timeoutMs: 10_000,
        ca,
        log: (line) => log.push(line),
        ...extra,
      }),
    );
    return path;
  }

  /** The access log's lines of one port: `port status method uri "range" bytes connection`. */
  const linesOf = (port: number) =>
    readFileSync(nginx!.accessLog, "utf8").split("\n").filter((line) => line.startsWith(`${port} `));

  test("through a mirror manager, a relay follows one redirect, sticks to its mirror, and when that mirror loses the file takes the other only once its bytes prove it the same file", async () => {
    const data = file(12 * MiB + 4321, 5);
    const [manager, mirrorA, mirrorB] = [await freePort(), await freePort(), await freePort()];
    const roots = { [mirrorA]: join(work, "mirror-a"), [mirrorB]: join(work, "mirror-b") };
    for (const [port, root] of Object.entries(roots)) {
      mkdirSync(root, { recursive: true });
      writeFileSync(join(root, "data.iso"), data);
      // nginx's ETag is mtime-size: each mirror names the same file with an ETag of its own.
      const when = new Date(Date.UTC(2026, 0, 1, 0, 0, Number(port) % 60));
      utimesSync(join(root, "data.iso"), when, when);
    }
    // Picks a mirror at random per request, and only mirrors that have the file, as mirrorbits does.
    const managed = `
      location / {
        set $mirror $picked;
        if (!-f ${roots[mirrorA]}/data.iso) { set $mirror ${mirrorB}; }
        if (!-f ${roots[mirrorB]}/data.iso) { set $mirror ${mirrorA}; }
        return 302 https://localhost:$mirror$request_uri;
      }`;
    nginx = startNginx(work, join(work, "mirror-a"), [
      { port: manager, ...cert, extra: managed },
      { port: mirrorA, ...cert, root: roots[mirrorA] },
      { port: mirrorB, ...cert, root: roots[mirrorB] },
    ], `split_clients "\${request_id}" $picked { 50% ${mirrorA}; * ${mirrorB}; }`);
    const log: string[] = [];
    // Two blocks ahead: the read-ahead's GETs go to the mirror too, and the second half is still to fetch.
    const path = await frontFor(`https://localhost:${manager}/data.iso`, "managed", log, { readaheadBlocks: 2 });
    const requests = wholeFile(data.length);
    const half = requests.length / 2 | 0;

    const first = await ask(path, requests.slice(0, half), 60_000);
    assert.equal(first.cut, false, log.join("\n"));
    assert.ok(bodies(first.raw).equals(data.subarray(0, half * MiB)));
    assert.equal(linesOf(manager).length, 1, `one redirect for the relay: ${linesOf(manager).join("; ")}`);
    const [stuck, other] = linesOf(mirrorA).length > 0 ? [mirrorA, mirrorB] : [mirrorB, mirrorA];
    assert.equal(linesOf(other).length, 0, "every request went to the mirror it was sent to first");
    assert.ok(linesOf(stuck).every((line) => / 20[06] /.test(line)), linesOf(stuck).join("\n"));

    // The mirror it stuck to loses the file; the manager sends everyone to the other from now on.
    rmSync(join(roots[stuck], "data.iso"));
    const second = await ask(path, requests.slice(half), 60_000);
    assert.equal(second.cut, false, log.join("\n"));
    assert.ok(bodies(second.raw).equals(data.subarray(half * MiB)), "the rest, right");
    assert.ok(linesOf(stuck).some((line) => / 404 /.test(line)), "the lost file was asked for once");
    assert.equal(linesOf(manager).length, 2, "and the manager once more");
    assert.ok(
      linesOf(other).some((line) => /^\d+ 206 GET \/data\.iso "bytes=0-34815" 34816 /.test(line)),
      "the new mirror proved it serves the bytes read before",
    );
    assert.ok(
      log.some((line) => /now leads to https:\/\/localhost:\d+\/data\.iso, proven to serve the same file/.test(line)),
    );
  });

  for (
    const [what, otherEtag] of [
      ["its own ETag", '"b"'],
      ["the same ETag (a copy rebuilt with its size and mtime kept, as nginx names it)", '"a"'],
    ]
  ) {
    test(`a mirror that serves other bytes of the same size under ${what} is never taken: the read fails rather than mix two files`, async () => {
      const data = file(4 * MiB, 6);
      const other = file(4 * MiB, 7);
      let served = data;
      let gone = false;
      let redirects = 0;
      // One server plays the manager (/get), the first mirror (/a, lost mid-read) and a second one (/b, another file).
      const host = await server(cert, (socket: TLSSocket, request: string) => {
        const target = request.split(" ")[1];
        if (target.startsWith("/get")) {
          redirects++;
          const to = gone ? "/b/data.iso" : "/a/data.iso";
          return void socket.write(`HTTP/1.1 302 Found\r\nLocation: ${to}\r\nContent-Length: 0\r\n\r\n`);
        }
        if (target.startsWith("/a") && gone) {
          return void socket.write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
        served = target.startsWith("/b") ? other : data;
        return isoAnswer(() => ({ bytes: served, validator: `ETag: ${target.startsWith("/b") ? otherEtag : '"a"'}` }))(
          socket,
          request,
        );
      });
      const log: string[] = [];
      const path = await frontFor(
        `https://localhost:${host.port}/get/data.iso`,
        `liar-${otherEtag.length}-${otherEtag[1]}`,
        log,
        { readaheadBlocks: 0 },
      );
      const requests = wholeFile(data.length);
      const first = await ask(path, requests.slice(0, 2), 20_000);
      assert.ok(bodies(first.raw).equals(data.subarray(0, 2 * MiB)), `the first two blocks: ${log.join("\n")}`);
      gone = true;
      const second = await ask(path, requests.slice(2), 20_000);
      assert.equal(second.cut, true, "the guest's read fails: nbdkit retries it, the guest never gets the other file");
      assert.equal(bodies(second.raw).length, 0, "not one byte of it");
      assert.ok(
        log.some((line) => /serves other bytes than the relay read before \(bytes 0-34815\)/.test(line)),
        log.join("\n"),
      );
      assert.ok(redirects >= 2, `${redirects} redirects`);
    });
  }

  /** A file of `count` blocks, each filled with one byte of its own: cheap at 70 MiB, and two seeds differ in every block. */
  const blocksOf = (count: number, seed: number) => {
    const bytes = Buffer.alloc(count * MiB);
    for (let i = 0; i < count; i++) bytes.fill((seed + i) % 251, i * MiB, (i + 1) * MiB);
    return bytes;
  };

  /**
   * A server of a file of `count` blocks until swapped, then of another of the same size under the same ETag (a
   * rebuilt ISO), and a front on one connection that has read its first two blocks.
   */
  async function swappable(count: number, name: string) {
    const data = blocksOf(count, 1);
    const state = { swapped: false };
    const replaced = blocksOf(count, 101);
    const host = await server(
      cert,
      isoAnswer(() => ({ bytes: state.swapped ? replaced : data, validator: 'ETag: "same"' })),
    );
    const log: string[] = [];
    const path = await frontFor(`https://localhost:${host.port}/data.iso`, name, log, {
      readaheadBlocks: 0,
      parallel: 1,
    });
    const requests = wholeFile(data.length);
    const first = await ask(path, requests.slice(0, 2));
    assert.ok(bodies(first.raw).equals(data.subarray(0, 2 * MiB)), log.join("\n"));
    return { host, state, log, path, requests };
  }

  test("a file replaced in place under the same size and ETag: a new connection proves the bytes first, and the guest's read fails rather than mix two files", async () => {
    const { host, state, log, path, requests } = await swappable(8, "swapped");
    state.swapped = true;
    host.drop(); // the kept connection ends: the next block comes from a new one
    const before = host.seen.requests.length;
    const second = await ask(path, requests.slice(2));
    assert.equal(second.cut, true, "the guest's read fails");
    assert.equal(bodies(second.raw).length, 0, "not one byte of the new file");
    assert.match(host.seen.requests[before], /^GET \/data\.iso HTTP\/1\.1 bytes=0-34815$/, "the proof came first");
    assert.ok(log.some((line) => /now serves other bytes \(bytes 0-34815\) than when the relay started/.test(line)));
    const again = await ask(path, requests.slice(2, 3));
    assert.equal(again.cut, true, "and every later read fails, on any connection");
  });

  test(
    `a file replaced in place under the same size and ETag while kept connections read it: found within ${
      RELAY_PROOF_EVERY_BYTES / MiB
    } MiB, and no more is served`,
    async () => {
      const { host, state, log, path, requests } = await swappable(RELAY_PROOF_EVERY_BYTES / MiB + 6, "swapped-kept");
      state.swapped = true;
      const second = await ask(path, requests.slice(2), 30_000);
      assert.equal(second.cut, true, "the guest's read fails before the end");
      const served = bodies(second.raw).length;
      // What this cannot prevent: the blocks the kept connection brought between the swap and the next proof.
      assert.ok(served <= RELAY_PROOF_EVERY_BYTES, `${served / MiB} MiB served after the swap`);
      assert.equal(host.seen.connections, 1, "one connection throughout: the proof came on the kept one");
      assert.ok(log.some((line) => /now serves other bytes \(bytes 0-34815\)/.test(line)), log.join("\n"));
    },
  );

  test("a proof and the block after it share one timeout: a server slow to answer each fails the read within one", async () => {
    const data = blocksOf(4, 3);
    const TIMEOUT_MS = 1_000;
    let slow = false;
    const answer = isoAnswer(() => ({ bytes: data, validator: 'ETag: "slow"' }));
    const host = await server(cert, (socket: TLSSocket, request: string) => {
      // Each answer in 70% of the timeout: either alone is in time, the two together are not.
      if (slow) return void setTimeout(() => answer(socket, request), TIMEOUT_MS * 0.7);
      answer(socket, request);
    });
    const log: string[] = [];
    const path = await frontFor(`https://localhost:${host.port}/data.iso`, "slow-proof", log, {
      readaheadBlocks: 0,
      parallel: 1,
      timeoutMs: TIMEOUT_MS,
    });
    const requests = wholeFile(data.length);
    assert.equal((await ask(path, requests.slice(0, 1))).cut, false, log.join("\n"));
    slow = true;
    host.drop(); // the next block comes on a new connection, which proves the file's bytes first
    const started = performance.now();
    const read = await ask(path, requests.slice(1, 2));
    assert.equal(read.cut, true, "the read fails");
    // Two answers take 1.4 timeouts; the read fails at one, with room for a busy machine's TLS handshake.
    assert.ok(performance.now() - started < 2 * TIMEOUT_MS, `${performance.now() - started} ms`);
    assert.ok(
      log.some((line) => /did not send the whole answer within 1 s|sent nothing for 1 s/.test(line)),
      log.join("\n"),
    );
  });

  test("a target signed for a moment, as GitHub's release assets are, expires while the guest reads: renewed through the URL given, no error reaches the guest", async () => {
    // Each answer waits 100 ms, so the read (13 blocks, one at a time) outlives a signature by at least twice,
    // however fast the machine; a signature lasts long enough for several answers, however busy it is.
    const data = file(12 * MiB + 99, 8);
    const LIFE_MS = 600;
    let signed = 0;
    const answer = isoAnswer(() => ({ bytes: data, validator: 'ETag: "asset"' }));
    const host = await server(cert, (socket: TLSSocket, request: string) => {
      const target = request.split(" ")[1];
      if (target.startsWith("/download")) {
        signed++;
        const location = `/cdn/data.iso?expires=${Date.now() + LIFE_MS}&sig=s${signed}`;
        return void socket.write(`HTTP/1.1 302 Found\r\nLocation: ${location}\r\nContent-Length: 0\r\n\r\n`);
      }
      const expires = Number(/[?&]expires=(\d+)/.exec(target)?.[1]);
      if (!(expires > Date.now())) {
        return void socket.write("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
      }
      // A remote server's round trip, so that the read outlives a signature.
      setTimeout(() => answer(socket, request), 100);
    });
    const log: string[] = [];
    const path = await frontFor(`https://localhost:${host.port}/download/data.iso`, "expiring", log, {
      readaheadBlocks: 0,
      parallel: 1,
    });
    const read = await ask(path, wholeFile(data.length), 60_000);
    assert.equal(read.cut, false, log.join("\n"));
    assert.ok(bodies(read.raw).equals(data));
    assert.ok(signed >= 2, `the signature was renewed (${signed} signatures)`);
    const refused = host.seen.requests.filter((line) => line.startsWith("GET /cdn") || line.startsWith("HEAD /cdn"));
    assert.ok(refused.length > signed, "most requests went to the target directly, not through the redirect");
  });
});
