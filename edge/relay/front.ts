// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The relay's front: a small HTTP/1.1 server on a socket in the relay's
 * private directory, which nbdkit's curl plugin asks for the ISO's bytes,
 * and the only part of the relay that holds the URL. It asks the ISO server
 * over TLS, verified against the host's trust store (the one QEMU's curl
 * would use), follows redirects only to https URLs on servers `allow` names,
 * and takes an answer only if http.ts judges it exactly what was asked for;
 * anything else cuts nbdkit's connection, which its retry-request filter
 * turns into a retry.
 *
 * The file is read from the server in whole RELAY_BLOCK_BYTES blocks, one
 * ranged GET each, and the last RELAY_FRONT_BLOCKS are held in memory:
 * nbdkit's cache asks for 64 KiB at a time, so that its hits stay cheap,
 * and sixteen of its requests make one GET. A request is answered as soon
 * as its bytes have come, before the rest of their block: a block cut short
 * fails only the requests for bytes that never came. Connections to the server are
 * kept alive and reused, one request at a time each, as curl would. Headers
 * are read up to MAX_HEADER_BYTES; a body is read only to the length its
 * range says; a server silent for `timeout` seconds is given up on.
 *
 * This module does network I/O; `hook.ts` loads it only in the relay.
 *
 * @module
 */
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";

import { HookError, printable } from "../../lib/errors.ts";
import { MAX_HEADER_BYTES, RELAY_BLOCK_BYTES, RELAY_FAIL_MARGIN_S, RELAY_FRONT_BLOCKS } from "../../lib/limits.ts";
import { concat, indexOfBlankLine } from "../../lib/bytes.ts";
import {
  readAhead,
  type ReadAheadState,
  RELAY_PARALLEL_GETS,
  RELAY_READAHEAD_BLOCKS,
} from "../../lib/relay/readahead.ts";
import { blockSource, sharingKey } from "../../lib/relay/shared.ts";
import { BufferPool } from "../../lib/relay/buffers.ts";
import type { RelayStatus } from "../../lib/relay/status.ts";
import type { IsoUrl } from "../../lib/url.ts";
import { frontAnswer, type FrontRequest, parseFrontRequest } from "../../lib/relay/http.ts";
import { errorCode } from "../io/files.ts";
import { BlockStore, sharedEntry } from "./store.ts";
import { Pool, UpstreamFailure, type UpstreamOptions } from "./upstream.ts";

/** What the front needs: what its connections to the server need, and where its blocks go. */
export interface FrontOptions extends UpstreamOptions {
  /** Blocks to read ahead of a guest that reads in order (relay_readahead); RELAY_READAHEAD_BLOCKS unless given. */
  readaheadBlocks?: number;
  /** Where the relay keeps blocks on disk (store.ts); without it, in memory only. */
  store?: StorePlaces;
}

/** Where a relay's blocks go on disk. */
export interface StorePlaces {
  /** The host's shared cache: one directory per file, shared by every relay. */
  sharedRoot: string;
  /** The most bytes the shared cache takes (relay_shared_cache); 0 for no sharing. */
  sharedBound: number;
  /** The relay's own directory, for a file it cannot share; removed with the relay. */
  privateRoot: string;
}

/** What a front has done, for `httpsisoboot --status` (status.ts names each count). */
export type FrontStats = Omit<RelayStatus, "pid" | "server" | "started" | "name">;

/** A running front. */
export interface Front {
  close(): Promise<void>;
  stats(): FrontStats;
}

/**
 * Starts the front on a Unix socket.
 *
 * @param path The socket's path; its directory must be the relay's alone.
 */
export function startFront(path: string, options: FrontOptions): Promise<Front> {
  const pool = new Pool(options);
  const depth = options.readaheadBlocks ?? RELAY_READAHEAD_BLOCKS;
  const parallel = options.parallel ?? RELAY_PARALLEL_GETS;
  const blocks = new Blocks(
    async (index, arriving) => {
      const start = index * RELAY_BLOCK_BYTES;
      const end = Math.min(start + RELAY_BLOCK_BYTES, pool.facts.size!) - 1;
      return (await pool.fetch({ method: "GET", range: { start, end } }, arriving)).from;
    },
    () => pool.facts.size === undefined ? undefined : Math.ceil(pool.facts.size / RELAY_BLOCK_BYTES),
    (line) => {
      pool.stats.lastError = line;
      options.log(line);
    },
    depth,
    parallel,
    () => pool.mayOpen(),
  );
  pool.onIdle = () => blocks.pump();
  let opening: Promise<void> | undefined;
  const openStore = () =>
    opening ??= chooseStore(options, pool, depth + parallel).then((chosen) => {
      blocks.store = chosen?.store;
      blocks.source = chosen?.source;
    }, (error) => {
      opening = undefined;
      throw error;
    });
  const server: Server = createServer((client) => serveClient(client, options, pool, blocks, openStore));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      resolve({
        close: () =>
          new Promise((done) => {
            pool.closeAll();
            blocks.store?.close();
            server.close(() => done());
          }),
        stats: () => ({ ...pool.stats, hits: blocks.store?.counts.hits ?? 0 }),
      });
    });
  });
}

/**
 * Where this relay's blocks go, decided at the guest's first read: after the
 * relay's own ranged GET to the server, with this VM's URL and credentials,
 * has been judged to be of the file preflight saw (the size and the
 * validator; http.ts), the shared entry of the file's key (shared.ts), or
 * the relay's private one when it has no strong ETag. A server that refuses
 * this VM refuses this request, and the guest's read fails with it: no
 * shared block is read before it. The key names the URL that answered, after
 * any redirect (its `source`), and only blocks that URL answered go to disk.
 * Undefined without a store, or when it cannot be made (which only costs the
 * disk's help).
 */
async function chooseStore(
  options: FrontOptions,
  pool: Pool,
  window: number,
): Promise<{ store: BlockStore; source: string } | undefined> {
  const places = options.store;
  if (!places) return undefined;
  const { from, body } = await pool.probe();
  const size = pool.facts.size!;
  const source = blockSource(from);
  const sharing = places.sharedBound > 0 ? sharingKey(from, pool.facts) : { why: "relay_shared_cache is 0" };
  try {
    if ("key" in sharing) {
      pool.stats.sharing = "shared";
      const dir = sharedEntry(places.sharedRoot, sharing.key);
      const store = new BlockStore({ dir, root: places.sharedRoot, bound: places.sharedBound, size, shared: true });
      if (body && !store.agreesWith(body)) {
        options.log(
          "the host's shared cache held other bytes of this file under the same size and validator (a file rebuilt " +
            "in place, its mtime kept): that copy is dropped, and the file read from the server",
        );
      }
      return { store, source };
    }
    pool.stats.sharing = `not shared: ${sharing.why}`;
    const bound = (window + RELAY_FRONT_BLOCKS) * RELAY_BLOCK_BYTES;
    const dir = join(places.privateRoot, "blocks");
    return { store: new BlockStore({ dir, root: places.privateRoot, bound, size, shared: false }), source };
  } catch (error) {
    options.log(`cannot keep blocks on disk (${errorCode(error)}); they are held in memory`);
    return undefined;
  }
}

/** Reads nbdkit's requests from one connection and answers them in turn. */
function serveClient(
  client: Socket,
  options: FrontOptions,
  pool: Pool,
  blocks: Blocks,
  openStore: () => Promise<void>,
): void {
  let pending: Uint8Array = new Uint8Array();
  let busy = false;
  const next = async () => {
    for (;;) {
      const end = indexOfBlankLine(pending);
      if (end < 0) {
        if (pending.length > MAX_HEADER_BYTES) client.destroy();
        return;
      }
      const head = new TextDecoder("latin1").decode(pending.subarray(0, end));
      pending = pending.slice(end + 4);
      busy = true;
      try {
        await answer(parseFrontRequest(head), client, pool, blocks, openStore);
      } catch (error) {
        pool.stats.retries++;
        pool.stats.lastError = describe(error);
        options.log(`${describe(error)}; nbdkit will retry`);
        client.destroy();
        return;
      } finally {
        busy = false;
      }
    }
  };
  client.on("data", (chunk: Uint8Array) => {
    // curl asks one request at a time: more than one head's worth unanswered is not curl.
    if (pending.length + chunk.length > 2 * MAX_HEADER_BYTES) return void client.destroy();
    pending = concat([pending, chunk]);
    if (!busy) next();
  });
  client.on("error", () => client.destroy());
}

/**
 * Answers one request; throws to cut the connection. HEAD is answered
 * from the relay's probe (upstream.ts's PROBE: a ranged GET, not a HEAD,
 * which S3 refuses to a URL signed for GET). A GET is answered from whole RELAY_BLOCK_BYTES blocks of the file,
 * each fetched once with one ranged GET and held in memory for the next
 * requests (nbdkit's cache asks for 64 KiB at a time), as soon as the bytes
 * it asks for have come.
 */
async function answer(
  request: FrontRequest,
  client: Socket,
  pool: Pool,
  blocks: Blocks,
  openStore: () => Promise<void>,
): Promise<void> {
  if (request.method === "HEAD" || pool.facts.size === undefined) {
    await pool.probe();
    if (request.method === "HEAD") return void client.write(frontAnswer({ kind: "whole", size: pool.facts.size! }));
  }
  await openStore();
  const size = pool.facts.size!;
  const start = request.range!.start;
  const end = Math.min(request.range!.end, size - 1);
  if (start > end) throw new HookError(`nbdkit asked for bytes ${start}-${request.range!.end} of a ${size}-byte file`);
  const first = Math.floor(start / RELAY_BLOCK_BYTES);
  const leases = Array.from(
    { length: Math.floor(end / RELAY_BLOCK_BYTES) - first + 1 },
    (_, i) => blocks.lease(first + i),
  );
  const release = () => leases.forEach((lease) => lease.release());
  blocks.planAhead(start, end);
  const parts: Uint8Array[] = [];
  try {
    for (const [i, lease] of leases.entries()) {
      const from = (first + i) * RELAY_BLOCK_BYTES;
      const needed = Math.min(end - from + 1, RELAY_BLOCK_BYTES);
      const block = await lease.block.first(needed);
      parts.push(block.subarray(Math.max(start - from, 0), needed));
    }
  } catch (error) {
    release();
    throw error;
  }
  client.write(frontAnswer({ kind: "part", start, end, size }));
  // The buffers go back to the pool only once the socket has taken the bytes (the write's callback).
  parts.forEach((part, i) => client.write(part, i === parts.length - 1 ? release : undefined));
  pool.stats.served += end - start + 1;
}

/**
 * A block on its way from the server: the bytes come in order, and each
 * request takes them once it has what it needs. A fetch that fails leaves
 * the bytes that came good; a request for later ones fails with it.
 */
class Arriving {
  private body: Uint8Array = new Uint8Array();
  private have = 0;
  private failure?: unknown;
  private waiters: Array<() => void> = [];
  /** The pool's buffer behind `body`, until it goes back. */
  private buffer?: Uint8Array;
  /** The fetch filling the buffer and the answers reading it: it goes back to the pool only once none is left. */
  private users = 0;
  private dropped = false;

  constructor(private readonly buffers: BufferPool) {}

  /** Where the block's `length` bytes (a block's at most) go: a buffer of the pool's. */
  space(length: number): Uint8Array {
    this.buffer ??= this.buffers.take();
    return this.buffer.subarray(0, length);
  }

  /** Holds the bytes for a fetch or an answer; the function lets them go (once, however often it is called). */
  use(): () => void {
    this.users++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.users--;
      this.recycle();
    };
  }

  /** The front holds the block no more: its buffer goes back once nothing uses it. */
  drop(): void {
    this.dropped = true;
    this.recycle();
  }

  /** The fetch has read `have` bytes into `body`. */
  progress(body: Uint8Array, have: number): void {
    this.body = body;
    this.have = have;
    this.wake();
  }

  fail(error: unknown): void {
    this.failure = error;
    this.wake();
  }

  /** The bytes that have come. */
  bytes(): Uint8Array {
    return this.body.subarray(0, this.have);
  }

  /** The block once its first `length` bytes have come. */
  async first(length: number): Promise<Uint8Array> {
    while (this.have < length) {
      if (this.failure !== undefined) throw this.failure;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.body;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private recycle(): void {
    if (!this.dropped || this.users > 0 || !this.buffer) return;
    const buffer = this.buffer;
    this.buffer = undefined;
    this.body = new Uint8Array();
    this.have = 0;
    this.buffers.give(buffer);
  }
}

/**
 * The file's blocks the front holds: in memory, the blocks in flight and the
 * last RELAY_FRONT_BLOCKS the guest has read; on disk (store.ts), when the
 * relay has a store, the blocks fetched ahead of a guest that reads in order
 * (readahead.ts) and, for a shared entry, every block another relay of the
 * host fetched. Without a store (the tests' fronts) the blocks fetched ahead
 * wait in memory too, up to the read-ahead depth. A block being fetched is
 * held as it arrives, so two requests for it make one GET. A failed fetch is
 * not held: a block fetched ahead that failed is fetched again when asked.
 * At most `parallel` GETs are in flight, and read-ahead starts one only
 * where the host's connection bound (slots.ts) has room; a read the guest
 * waits for never waits for read-ahead.
 */
class Blocks {
  private held = new Map<number, Arriving>();
  private order: ReadAheadState = {};
  private queue: number[] = [];
  /** Blocks fetched ahead, held in memory, that the guest has not read yet: dropped last. */
  private unread = new Set<number>();
  private inFlight = new Set<number>();
  private fetched = 0;
  /**
   * Blocks whose last GET the server let time out, and until when: nbdkit's
   * retries of them fail at once for as long as its retries last
   * (RELAY_FAIL_MARGIN_S), so that a server that is merely slow costs the
   * guest's read one timeout, not one per retry.
   */
  private slow = new Map<number, { until: number; error: unknown }>();
  /** Where fetched blocks go on disk: set once the front knows whether the file may be shared. */
  store?: BlockStore;
  /** Where the store's blocks come from (shared.ts's blockSource): a block another URL answered stays off disk. */
  source?: string;
  /** The blocks' buffers, reused: as many kept idle as may be in flight and held at once. */
  private readonly buffers: BufferPool;

  constructor(
    /** Fetches a block into `into`; the URL that answered, after any redirect. */
    private readonly fetch: (index: number, into: Arriving) => Promise<IsoUrl>,
    private readonly blockCount: () => number | undefined,
    private readonly log: (line: string) => void,
    private readonly depth: number,
    private readonly parallel: number,
    private readonly mayOpen: () => boolean,
  ) {
    this.buffers = new BufferPool(RELAY_BLOCK_BYTES, parallel + RELAY_FRONT_BLOCKS);
  }

  /**
   * Block `index` for an answer, held until `release` (once the answer is
   * written): its buffer is not reused before, even if the front drops it.
   */
  lease(index: number): { block: Arriving; release: () => void } {
    let block = this.held.get(index);
    this.unread.delete(index);
    if (block) this.held.delete(index);
    else {
      const failed = this.failedSlow(index);
      if (failed) return { block: failed, release: () => {} };
      block = this.fromStore(index) ?? this.start(index, false);
    }
    this.held.set(index, block);
    const release = block.use();
    this.trim();
    return { block, release };
  }

  /** Starts what is queued, as room comes: called again whenever a GET ends. */
  pump(): void {
    while (this.inFlight.size < this.parallel && this.queue.length > 0) {
      const ahead = this.queue[0];
      if (this.held.has(ahead) || this.store?.has(ahead)) {
        this.queue.shift();
        continue;
      }
      if (!this.mayOpen()) break;
      this.queue.shift();
      this.held.set(ahead, this.start(ahead, true));
      this.unread.add(ahead);
    }
    this.trim();
  }

  /** A block whose GET timed out less than a timeout ago: failed again at once, without asking the server. */
  private failedSlow(index: number): Arriving | undefined {
    const slow = this.slow.get(index);
    if (slow === undefined) return undefined;
    this.slow.delete(index);
    if (slow.until <= Date.now()) return undefined;
    this.slow.set(index, slow);
    const arriving = new Arriving(this.buffers);
    arriving.fail(slow.error);
    return arriving;
  }

  private fromStore(index: number): Arriving | undefined {
    if (!this.store) return undefined;
    const arriving = new Arriving(this.buffers);
    const body = this.store.read(index, arriving.space(RELAY_BLOCK_BYTES));
    if (body === undefined) {
      arriving.drop();
      return undefined;
    }
    if (++this.fetched % GC_EVERY_BLOCKS === 0) collectGarbage();
    arriving.progress(body, body.length);
    return arriving;
  }

  /**
   * The guest reads bytes `start` to `end`: what to fetch ahead, planned
   * when it reaches another block (readahead.ts). Called once its blocks
   * are leased, so that the GETs it waits for start before those ahead.
   */
  planAhead(start: number, end: number): void {
    const blocks = this.blockCount();
    if (blocks === undefined) return;
    const plan = readAhead(this.order, { start, end }, blocks, this.window());
    this.order = plan.state;
    if (plan.ahead === undefined) return;
    // A read elsewhere empties the queue: what was planned ahead of the old place is not wanted.
    this.queue = plan.ahead;
    this.pump();
  }

  /**
   * How far ahead to read: the relay's depth, but never more than half of
   * what the store holds, which would evict blocks fetched ahead before the
   * guest reads them (and fetch them twice).
   */
  private window(): number {
    const bound = this.store?.spec.bound;
    return bound === undefined ? this.depth : Math.min(this.depth, Math.floor(bound / 2 / RELAY_BLOCK_BYTES));
  }

  private start(index: number, ahead: boolean): Arriving {
    const arriving = new Arriving(this.buffers);
    const filling = arriving.use();
    this.inFlight.add(index);
    if (++this.fetched % GC_EVERY_BLOCKS === 0) collectGarbage();
    this.fetch(index, arriving).then((from) => this.keep(index, arriving, from), (error) => {
      arriving.fail(error);
      if (error instanceof UpstreamFailure && error.failure.kind === "timeout") {
        this.slow.set(index, { until: Date.now() + RELAY_FAIL_MARGIN_S * 1000, error });
      }
      if (this.held.get(index) === arriving) this.forget(index);
      if (ahead) this.log(`${describe(error)}; it was fetched ahead, and will be fetched again when asked`);
    }).finally(() => {
      filling();
      this.inFlight.delete(index);
      this.pump();
    });
    return arriving;
  }

  /** Lets block `index` go from memory: its buffer goes back to the pool once no answer uses it. */
  private forget(index: number): void {
    this.held.get(index)?.drop();
    this.held.delete(index);
    this.unread.delete(index);
  }

  /**
   * A block has come whole: to disk, where there is a store and the URL that
   * answered is the one its blocks come from; one fetched ahead and unread
   * then leaves memory.
   */
  private keep(index: number, arriving: Arriving, from: IsoUrl): void {
    if (blockSource(from) !== this.source || !this.store?.write(index, arriving.bytes())) return;
    if (this.unread.has(index) && this.held.get(index) === arriving) this.forget(index);
  }

  /**
   * Drops the least recently used blocks past the limit: those the guest
   * has read first, and one fetched ahead only when nothing else is left;
   * never one in flight. Dropping by age alone dropped blocks fetched
   * ahead, still unread, before those just served, and fetched them twice
   * (the relay test saw 19 GETs for 17 blocks).
   */
  private trim(): void {
    const limit = RELAY_FRONT_BLOCKS + (this.store ? 0 : this.depth) + this.inFlight.size;
    while (this.held.size > limit) {
      const oldest = [...this.held.keys()].filter((index) => !this.inFlight.has(index));
      const drop = oldest.find((index) => !this.unread.has(index)) ?? oldest[0];
      if (drop === undefined) return;
      this.forget(drop);
    }
  }
}

/**
 * Blocks fetched or read from disk between two full garbage collections: 2
 * (2 MiB). Each block leaves its 1 MiB buffer and the TLS layer's chunks
 * behind, and Bun's collector, left to itself, let a front that streamed
 * 256 MiB at full speed grow to 150–180 MiB of RSS (the relay test measures
 * it); a collection it is asked for without waiting did nothing. With 4
 * GETs in flight a full one every 16 blocks left 114 MiB and one every 4
 * kept it under 100 MiB; with 16 in flight, every 4 left 108.6 MiB, and
 * every 2 kept it under 100 MiB. Since a block is read back from disk
 * into one buffer (files.ts), not 64 KiB copies joined, every 1, 2 and 4
 * all peak at 95–99 MiB there with 16 in flight, and every 8 at 102–108:
 * what is in flight sets the peak (RELAY_PARALLEL_GETS). With 14 in
 * flight, every 2 peaks at 92–93 MiB; with the blocks' buffers reused
 * (buffers.ts), at 83–86 MiB (every 4: 86–87). A full collection also
 * hands freed memory back to the kernel, so each fresh 1 MiB buffer was
 * faulted in again: the largest item in perf's profile of the front before
 * the buffers were reused, and about a third of its CPU (the bench's
 * 512 MiB read: 10.3–10.9 s, 6.5–7.1 s after).
 */
const GC_EVERY_BLOCKS = 2;

/** Bun's collector, where the front runs in the binary; a no-op under Node and Deno (the tests). */
function collectGarbage(): void {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}

function describe(error: unknown): string {
  return error instanceof HookError ? error.message : `internal error (${printable(String(error))})`;
}
