// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host's bound on connections to ISO servers: Slots alone, and twenty
 * fronts reading ahead at once against one TLS server that counts the
 * connections it has open.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import { type Front, startFront } from "../../../edge/relay/front.ts";
import { Slots } from "../../../edge/relay/slots.ts";
import { parseIsoUrl } from "../../../lib/url.ts";
import { RELAY_BLOCK_BYTES } from "../../../lib/limits.ts";
import { ask, bodies, closers, file, isoAnswer, server, wholeFile } from "../../support/front_peer.ts";
import { makeAuthority, makeServerCert, type ServerCert } from "../../support/tls.ts";
import { workDir } from "../../support/mod.ts";

const noOpenssl = spawnSync("sh", ["-c", "command -v openssl"]).status === 0 ? undefined : "openssl is not installed";

describe("Slots", () => {
  const work = workDir("slots");

  test("tryTake() gives at most `bound` slots, each given back once, and take() names the setting when none comes", async () => {
    const slots = new Slots(join(work, "bound"), 3);
    const held = [slots.tryTake(), slots.tryTake(), slots.tryTake()];
    assert.ok(held.every(Boolean));
    assert.equal(slots.tryTake(), undefined);
    assert.equal(slots.taken(), 3);
    held[0]!();
    held[0]!(); // twice: the second does nothing, though another holder may have the file by then
    const again = slots.tryTake();
    assert.ok(again);
    held[0]!();
    assert.equal(slots.taken(), 3, "a second release never frees another's slot");
    await assert.rejects(
      slots.take(100),
      /all 3 of the host's connections to ISO servers \(relay_host_connections\) stayed taken for 0\.1 s/,
    );
  });

  test("a slot of a relay that is gone (SIGKILL) is taken back; a live one's never is", () => {
    const dir = join(work, "stale");
    const slots = new Slots(dir, 2);
    const gone = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
    writeFileSync(join(dir, "0"), `${gone} 1\n`);
    writeFileSync(join(dir, "1"), `1 ${readFileSync("/proc/1/stat", "latin1").split(") ")[1].split(" ")[19]}\n`);
    assert.ok(slots.tryTake(), "slot 0 swept");
    assert.equal(slots.tryTake(), undefined, "init's slot stays");
    assert.deepEqual(readdirSync(dir).sort(), ["0", "1"]);
  });
});

describe("twenty relays under the host's connection bound", { skip: noOpenssl }, () => {
  const work = workDir("slots-fronts");
  let ca: Uint8Array;
  let cert: ServerCert;
  const fronts: Front[] = [];

  before(() => {
    const authority = makeAuthority(work, "slots test CA");
    ca = readFileSync(authority.cert);
    cert = makeServerCert(work, "good", authority);
  });
  after(async () => {
    for (const front of fronts) await front.close();
    for (const close of closers) close();
  });

  test("twenty fronts reading ahead at once never hold more connections than relay_host_connections, and each reads its bytes", async () => {
    const BOUND = 6;
    const data = file(6 * RELAY_BLOCK_BYTES, 9);
    const good = isoAnswer(() => ({ bytes: data, validator: 'ETag: "v1"' }));
    // Each answer waits 100 ms, a remote server's round trip, so that connections meet open on two busy cores.
    const iso = await server(
      cert,
      (socket: TLSSocket, request: string) => void sleep(100).then(() => good(socket, request)),
    );
    const slotsDir = join(work, "connections");
    const paths = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const path = join(work, `front-${i}.sock`);
      const front = await startFront(path, {
        url: parseIsoUrl(`https://localhost:${iso.port}/data.iso?sig=vm${i}`),
        allow: [{ host: "localhost" }],
        settingsFile: "/etc/vdsm/httpsisoboot.conf",
        timeoutMs: 20_000,
        ca,
        log: () => {},
        readaheadBlocks: 8,
        parallel: 4,
        slots: new Slots(slotsDir, BOUND),
      });
      fronts.push(front);
      return path;
    }));
    const reads = await Promise.all(paths.map((path) => ask(path, wholeFile(data.length), 60_000)));
    for (const [i, read] of reads.entries()) assert.ok(bodies(read.raw).equals(data), `front ${i}'s bytes`);
    assert.ok(iso.seen.mostOpen <= BOUND, `at most ${iso.seen.mostOpen} connections open at once`);
    assert.equal(iso.seen.mostOpen, BOUND, "the bound was reached: the fronts did contend for it");
    for (const front of fronts) await front.close();
    // A slot goes back when its socket has closed, an event after close(): waited for, not slept for, on busy cores.
    for (let waited = 0; readdirSync(slotsDir).length > 0 && waited < 10_000; waited += 20) await sleep(20);
    assert.deepEqual(readdirSync(slotsDir), [], "every slot given back");
  });
});

describe("one VM's hostile server and another VM's reads", { skip: noOpenssl }, () => {
  const work = workDir("slots-hostile");
  const fronts: Front[] = [];
  after(async () => {
    for (const front of fronts) await front.close();
    for (const close of closers) close();
  });

  test("answers a front refuses for endless headers close their connections at once: another front under the same bound reads a new block in well under a second", async () => {
    const authority = makeAuthority(work, "hostile slots CA");
    const ca = readFileSync(authority.cert);
    const cert = makeServerCert(work, "good", authority);
    const data = file(4 * RELAY_BLOCK_BYTES, 3);
    const good = isoAnswer(() => ({ bytes: data, validator: 'ETag: "v1"' }));
    // The relay's first request (its size question) answered well, on a connection closed after it, so that
    // every GET opens one of its own; to every other GET, a 206 whose headers never end.
    const endless = (socket: TLSSocket, request: string) => {
      if (/\r\nrange: bytes=0-34815\b/i.test(request)) {
        good(socket, request);
        return void socket.end();
      }
      socket.write("HTTP/1.1 206 Partial Content\r\n");
      const line = `X-Junk: ${"a".repeat(1000)}\r\n`;
      const pump = () => {
        while (!socket.destroyed && socket.write(line));
        if (!socket.destroyed) socket.once("drain", pump);
      };
      pump();
    };
    const hostile = await server(cert, endless);
    const honest = await server(cert, good);
    const BOUND = 4;
    const slots = () => new Slots(join(work, "connections"), BOUND);
    const front = async (name: string, port: number) => {
      const path = join(work, `${name}.sock`);
      fronts.push(
        await startFront(path, {
          url: parseIsoUrl(`https://localhost:${port}/data.iso`),
          allow: [{ host: "localhost" }],
          settingsFile: "/etc/vdsm/httpsisoboot.conf",
          timeoutMs: 30_000,
          ca,
          log: () => {},
          readaheadBlocks: 0,
          slots: slots(),
        }),
      );
      return path;
    };
    const victim = await front("victim", honest.port);
    const attacked = await front("attacked", hostile.port);
    // The attacked VM's guest reads four blocks at once: four connections, each refused.
    const refused = await Promise.all(
      wholeFile(data.length).map((request) => ask(attacked, [request], 20_000)),
    );
    assert.ok(refused.every((read) => read.cut), "every read of the hostile server is cut");
    assert.ok(hostile.seen.connections >= BOUND, `${hostile.seen.connections} connections to the hostile server`);
    const started = performance.now();
    const read = await ask(victim, [wholeFile(data.length)[2]], 20_000);
    const took = performance.now() - started;
    assert.equal(read.cut, false);
    assert.ok(bodies(read.raw).equals(data.subarray(2 * RELAY_BLOCK_BYTES, 3 * RELAY_BLOCK_BYTES)));
    assert.ok(took < 1_000, `the other VM's new block took ${took.toFixed(0)} ms`);
  });
});
