// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host's shared block cache and the front's blocks on disk: fronts in
 * this process, each with its own URL, against a real TLS server on
 * loopback that counts what each VM's signature asks; BlockStore alone for
 * what is on disk.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { type Front, startFront, type StorePlaces } from "../../../edge/relay/front.ts";
import { BlockStore } from "../../../edge/relay/store.ts";
import { parseIsoUrl } from "../../../lib/url.ts";
import type { FileFacts } from "../../../lib/relay/http.ts";
import { RELAY_BLOCK_BYTES } from "../../../lib/limits.ts";
import { ask, bodies, closers, file, isoAnswer, type Served, server, wholeFile } from "../../support/front_peer.ts";
import { makeAuthority, makeServerCert, type ServerCert } from "../../support/tls.ts";
import { workDir } from "../../support/mod.ts";

const noOpenssl = spawnSync("sh", ["-c", "command -v openssl"]).status === 0 ? undefined : "openssl is not installed";
const MiB = RELAY_BLOCK_BYTES;

/** The relay's first request; each new connection after the first asks for the same bytes, to prove them (route.ts). */
const PROBE_GET = "GET bytes=0-34815";

/** The GETs of blocks, in order: every request but those for the probe's bytes. */
const blockGets = (requests: string[]) => requests.filter((line) => line !== PROBE_GET).sort();

/** The requests of one VM's signature, as the server saw them. */
function of(requests: string[], sig: string): string[] {
  return requests.filter((line) => line.includes(`sig=${sig} `)).map((line) => line.replace(/^(\S+) \S+ \S+/, "$1"));
}

describe("the host's shared block cache", { skip: noOpenssl }, () => {
  const work = workDir("store");
  let ca: Uint8Array;
  let cert: ServerCert;
  const fronts: Front[] = [];
  let count = 0;

  before(() => {
    const authority = makeAuthority(work, "store test CA");
    ca = readFileSync(authority.cert);
    cert = makeServerCert(work, "good", authority);
  });
  after(async () => {
    for (const front of fronts) await front.close();
    for (const close of closers) close();
  });

  /** A front for VM `sig` on the server at `port`, its blocks under `shared` (one host's cache). */
  async function relayOf(
    port: number,
    sig: string,
    store: Partial<StorePlaces> & { sharedRoot: string },
    expect?: FileFacts,
  ): Promise<{ path: string; front: Front; log: string[] }> {
    const path = join(work, `front-${++count}.sock`);
    const log: string[] = [];
    const front = await startFront(path, {
      url: parseIsoUrl(`https://localhost:${port}/data.iso?sig=${sig}`),
      allow: [{ host: "localhost" }],
      settingsFile: "/etc/vdsm/httpsisoboot.conf",
      timeoutMs: 5000,
      ca,
      log: (line) => log.push(line),
      store: { sharedBound: 64 * MiB, privateRoot: join(work, `private-${count}`), ...store },
      ...(expect && { expect }),
    });
    fronts.push(front);
    return { path, front, log };
  }

  test("a second VM on the same ISO is served the first one's blocks byte for byte, after one revalidating request of its own", async () => {
    const data = file(3 * MiB + 123, 1);
    const iso = await server(cert, isoAnswer(() => ({ bytes: data, validator: 'ETag: "v1"' })));
    const shared = join(work, "shared-same");
    const first = await relayOf(iso.port, "vm1", { sharedRoot: shared });
    const one = await ask(first.path, wholeFile(data.length));
    assert.ok(bodies(one.raw).equals(data), "the first VM reads the file");
    assert.equal(of(iso.seen.requests, "vm1")[0], PROBE_GET, "the relay's first request");
    assert.deepEqual(blockGets(of(iso.seen.requests, "vm1")), [
      "GET bytes=0-1048575",
      "GET bytes=1048576-2097151",
      "GET bytes=2097152-3145727",
      "GET bytes=3145728-3145850",
    ]);

    const second = await relayOf(iso.port, "vm2", { sharedRoot: shared });
    const two = await ask(second.path, wholeFile(data.length));
    assert.ok(bodies(two.raw).equals(data), "the second VM reads the same bytes");
    assert.deepEqual(of(iso.seen.requests, "vm2"), ["GET bytes=0-34815"], "only its own revalidation");
    const stats = second.front.stats();
    assert.equal(stats.sharing, "shared");
    assert.deepEqual([stats.hits, stats.fetched, stats.served], [4, 34816, data.length]);

    // Only the relays' user may enter the cache or read a block: not QEMU, not another user.
    assert.equal(statSync(shared).mode & 0o777, 0o700);
    const [entry] = readdirSync(shared);
    assert.equal(statSync(join(shared, entry)).mode & 0o777, 0o700);
    for (const name of readdirSync(join(shared, entry))) {
      const stats = statSync(join(shared, entry, name));
      assert.deepEqual([stats.mode & 0o777, stats.uid], [0o600, process.getuid!()], name);
    }
  });

  test("a file with no strong ETag is never shared: each VM fetches every block itself", async () => {
    const data = file(2 * MiB, 2);
    const iso = await server(
      cert,
      isoAnswer(() => ({ bytes: data, validator: "Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT" })),
    );
    const shared = join(work, "shared-weak");
    for (const sig of ["vm1", "vm2"]) {
      const relay = await relayOf(iso.port, sig, { sharedRoot: shared });
      assert.ok(bodies((await ask(relay.path, wholeFile(data.length))).raw).equals(data), sig);
      assert.deepEqual(of(iso.seen.requests, sig), [
        "GET bytes=0-34815",
        "GET bytes=0-1048575",
        "GET bytes=1048576-2097151",
      ]);
      assert.match(relay.front.stats().sharing, /^not shared: the server gives the file no strong ETag/);
      assert.equal(relay.front.stats().hits, 0);
    }
    assert.equal(existsSync(shared), false, "nothing in the shared cache");
  });

  for (
    const [what, next] of [
      ["a changed ETag", { bytes: file(2 * MiB, 3), validator: 'ETag: "v2"' }],
      ["a changed size under the same ETag", { bytes: file(2 * MiB + 1, 3), validator: 'ETag: "v1"' }],
    ] as const
  ) {
    test(`after ${what}, a VM gets the file as it is now, none of the old one's blocks`, async () => {
      let served: Served = { bytes: file(2 * MiB, 4), validator: 'ETag: "v1"' };
      const iso = await server(cert, isoAnswer(() => served));
      const shared = join(work, `shared-${what.replaceAll(" ", "-")}`);
      const first = await relayOf(iso.port, "vm1", { sharedRoot: shared });
      assert.ok(bodies((await ask(first.path, wholeFile(served.bytes.length))).raw).equals(served.bytes));
      served = next;
      const second = await relayOf(iso.port, "vm2", { sharedRoot: shared });
      const read = bodies((await ask(second.path, wholeFile(next.bytes.length))).raw);
      assert.ok(read.equals(next.bytes), "the new bytes, every one");
      assert.equal(second.front.stats().hits, 0);
      assert.equal(of(iso.seen.requests, "vm2")[0], PROBE_GET);
      assert.equal(blockGets(of(iso.seen.requests, "vm2")).length, 2 + (what.includes("size") ? 1 : 0));
    });
  }

  test("a file rebuilt in place with the same size and ETag: the next VM reads the new bytes, none of the host's cached copy", async () => {
    const before = file(2 * MiB, 10);
    // The same size and ETag (nginx's is mtime-size, and reproducible builds keep the mtime), other bytes.
    const after = Buffer.from(before);
    after.write("REBUILT", 32768 + 813);
    after[1 * MiB + 5] ^= 0xff;
    let served: Served = { bytes: before, validator: 'ETag: "5f-200000"' };
    const iso = await server(cert, isoAnswer(() => served));
    const shared = join(work, "shared-rebuilt");
    const first = await relayOf(iso.port, "vm1", { sharedRoot: shared });
    assert.ok(bodies((await ask(first.path, wholeFile(before.length))).raw).equals(before));
    served = { bytes: after, validator: 'ETag: "5f-200000"' };
    const second = await relayOf(iso.port, "vm2", { sharedRoot: shared });
    const read = bodies((await ask(second.path, wholeFile(after.length))).raw);
    assert.ok(read.equals(after), "the new bytes, every one");
    assert.equal(second.front.stats().hits, 0, "not one block from the old copy");
    assert.match(second.log.join("\n"), /held other bytes of this file under the same size and validator/);
  });

  test("a VM whose URL the server refuses (403) gets no cached byte, though another VM's 206 filled the cache", async () => {
    const data = file(2 * MiB, 5);
    const iso = await server(cert, isoAnswer(() => ({ bytes: data, validator: 'ETag: "v1"' }), (sig) => sig === "vm3"));
    const shared = join(work, "shared-refused");
    const first = await relayOf(iso.port, "vm1", { sharedRoot: shared });
    assert.ok(bodies((await ask(first.path, wholeFile(data.length))).raw).equals(data));
    // What preflight saw of the file, as the hook would pass it: the refused VM's front knows the key already.
    const expect: FileFacts = { size: data.length, validator: { header: "etag", value: '"v1"' } };
    const refused = await relayOf(iso.port, "vm3", { sharedRoot: shared }, expect);
    const read = await ask(refused.path, ["GET /iso HTTP/1.1\r\nRange: bytes=0-65535"]);
    assert.deepEqual([read.cut, read.raw.length], [true, 0], "cut, with not a byte");
    assert.deepEqual(of(iso.seen.requests, "vm3"), ["GET bytes=0-34815"], "its own request, refused");
    assert.equal(refused.front.stats().hits, 0);
    assert.match(refused.log.join("\n"), /403/);
  });

  test("blocks a redirect brought from another server are never served for the URL that redirected: a VM cannot fill another's cache entry", async () => {
    const good = file(2 * MiB, 8);
    const planted = file(2 * MiB, 9);
    // The attacker's server names its file with the good file's ETag and size.
    const other = await server(cert, isoAnswer(() => ({ bytes: planted, validator: 'ETag: "v1"' })));
    const goodAnswer = isoAnswer(() => ({ bytes: good, validator: 'ETag: "v1"' }));
    // An ISO server with an open redirect: the query of one VM's URL sends it elsewhere.
    const iso = await server(cert, (socket, request) => {
      if (!request.includes("sig=attacker ")) return goodAnswer(socket, request);
      socket.write(
        `HTTP/1.1 302 Found\r\nLocation: https://localhost:${other.port}/other.iso\r\nContent-Length: 0\r\n\r\n`,
      );
    });
    const shared = join(work, "shared-redirected");
    const attacker = await relayOf(iso.port, "attacker", { sharedRoot: shared });
    assert.ok(
      bodies((await ask(attacker.path, wholeFile(planted.length))).raw).equals(planted),
      "the attacker reads its file",
    );
    const victim = await relayOf(iso.port, "victim", { sharedRoot: shared });
    const read = bodies((await ask(victim.path, wholeFile(good.length))).raw);
    assert.ok(read.equals(good), "the victim reads the good file, not one byte of the planted one");
    assert.equal(victim.front.stats().hits, 0);
  });

  test("a block torn on disk is found by its digest, removed and fetched again", async () => {
    const data = file(2 * MiB, 6);
    const iso = await server(cert, isoAnswer(() => ({ bytes: data, validator: 'ETag: "v1"' })));
    const shared = join(work, "shared-torn");
    const first = await relayOf(iso.port, "vm1", { sharedRoot: shared });
    await ask(first.path, wholeFile(data.length));
    const [entry] = readdirSync(shared);
    const block = join(shared, entry, "1");
    const bytes = readFileSync(block);
    bytes[100] ^= 0xff;
    writeFileSync(block, bytes);
    const second = await relayOf(iso.port, "vm2", { sharedRoot: shared });
    assert.ok(bodies((await ask(second.path, wholeFile(data.length))).raw).equals(data), "the right bytes");
    assert.deepEqual(of(iso.seen.requests, "vm2"), ["GET bytes=0-34815", "GET bytes=1048576-2097151"]);
  });

  test("the shared cache keeps within relay_shared_cache, the least recently used blocks evicted first", async () => {
    const data = file(12 * MiB, 7);
    const iso = await server(cert, isoAnswer(() => ({ bytes: data, validator: 'ETag: "v1"' })));
    const shared = join(work, "shared-bound");
    const bound = 4 * MiB + 4 * 32;
    const relay = await relayOf(iso.port, "vm1", { sharedRoot: shared, sharedBound: bound });
    assert.ok(bodies((await ask(relay.path, wholeFile(data.length))).raw).equals(data));
    const [entry] = readdirSync(shared);
    const kept = readdirSync(join(shared, entry));
    const bytes = kept.reduce((sum, name) => sum + statSync(join(shared, entry, name)).size, 0);
    assert.ok(bytes <= bound, `${bytes} bytes on disk, bound ${bound}`);
    assert.ok(kept.includes("11"), `the newest block is kept: ${kept.join(" ")}`);
    assert.ok(!kept.includes("0"), "the oldest is gone");
  });
});

describe("BlockStore", () => {
  const work = workDir("block-store");

  test("a private entry keeps a block whole, refuses one of the wrong length, and goes with close()", () => {
    const root = join(work, "private");
    const store = new BlockStore({ dir: join(root, "blocks"), root, bound: 8 * MiB, size: MiB + 10, shared: false });
    assert.equal(store.write(1, new Uint8Array(9)), false, "the last block is 10 bytes");
    assert.equal(store.write(1, new Uint8Array(10).fill(7)), true);
    assert.deepEqual(
      store.read(1, new Uint8Array(MiB)),
      new Uint8Array(10).fill(7),
      "read into a block's buffer, its own length",
    );
    assert.equal(store.read(0, new Uint8Array(MiB)), undefined);
    store.close();
    assert.deepEqual(readdirSync(root), []);
  });

  test("a block another relay's eviction removed is found gone, and one another relay tore is refused by its digest", () => {
    const root = join(work, "shared");
    const dir = join(root, "entry");
    const spec = { dir, root, bound: 8 * MiB, size: 2 * MiB, shared: true };
    const mine = new BlockStore(spec);
    const body = Uint8Array.from({ length: MiB }, (_, i) => i % 253);
    assert.ok(mine.write(0, body) && mine.write(1, body));
    assert.ok(mine.has(0));
    rmSync(join(dir, "0"));
    assert.equal(mine.read(0, new Uint8Array(MiB)), undefined, "evicted meanwhile: read as not there");
    assert.equal(mine.has(0), false);
    const torn = readFileSync(join(dir, "1"));
    torn[4096] ^= 1;
    writeFileSync(join(dir, "1"), torn);
    assert.equal(
      new BlockStore(spec).read(1, new Uint8Array(MiB)),
      undefined,
      "another relay's store checks the digest",
    );
    assert.ok(!existsSync(join(dir, "1")), "and removes the torn block");
  });

  test("a block file of the wrong length, as a crash may leave it, is read as not there and removed", () => {
    const root = join(work, "short");
    const dir = join(root, "entry");
    const store = new BlockStore({ dir, root, bound: 8 * MiB, size: 2 * MiB, shared: true });
    assert.ok(store.write(0, new Uint8Array(MiB).fill(3)));
    writeFileSync(join(dir, "0"), readFileSync(join(dir, "0")).subarray(0, 4096));
    const buffer = new Uint8Array(MiB).fill(9);
    assert.equal(store.read(0, buffer), undefined);
    assert.ok(!existsSync(join(dir, "0")), "the short block is removed");
  });
});
