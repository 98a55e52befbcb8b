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

import type { TLSSocket } from "node:tls";

import { HookError, printable } from "../../lib/errors.ts";

import {
  MAX_HEADER_BYTES,
  MAX_REDIRECTS,
  RELAY_BLOCK_BYTES,
  RELAY_FRONT_BLOCKS,
  RELAY_UPSTREAM_HELD_BYTES,
} from "../../lib/limits.ts";

import { concat } from "../../lib/bytes.ts";
import {
  readAhead,
  type ReadAheadState,
  RELAY_PARALLEL_GETS,
  RELAY_READAHEAD_BLOCKS,
} from "../../lib/relay/readahead.ts";

import { certificateProblem, openTls } from "../http/client.ts";

import { parseResponseHead, requestHead } from "../../lib/http/response.ts";

import { redirectTarget } from "../../lib/redirect.ts";
import { blockSource, sharingKey } from "../../lib/relay/shared.ts";
import { BufferPool } from "../../lib/relay/buffers.ts";
import type { RelayStatus } from "../../lib/relay/status.ts";
import { errorCode } from "../io/files.ts";
import { BlockStore, sharedEntry } from "./store.ts";
import type { Slots } from "./slots.ts";

import type { AllowRule } from "../../lib/settings.ts";

import { type IsoUrl } from "../../lib/url.ts";
import { VERSION } from "../../lib/version.ts";

import {
  type FileFacts,
  frontAnswer,
  type FrontRequest,
  ifRange,
  judgeAnswer,
  keepsAlive,
  parseFrontRequest,
  type Verdict,
} from "../../lib/relay/http.ts";

/** What the front needs. */
export interface FrontOptions {
  url: IsoUrl;
  allow: AllowRule[];
  settingsFile: string;
  /** How long the server may stay silent during a request. */
  timeoutMs: number;
  /** The host's trust bundle. */
  ca: Uint8Array;
  /** Where the front says what went wrong: one line each, query values hidden. */
  log(line: string): void;
  /** What preflight saw of the file: every answer must be of this size and carry this validator. */
  expect?: FileFacts;
  /** Blocks to read ahead of a guest that reads in order (relay_readahead); RELAY_READAHEAD_BLOCKS unless given. */
  readaheadBlocks?: number;
  /** GETs in flight at once, each on its own connection: RELAY_PARALLEL_GETS unless given. */
  parallel?: number;
  /** Where the relay keeps blocks on disk (store.ts); without it, in memory only. */
  store?: StorePlaces;
  /** The host's bound on connections to ISO servers (slots.ts); without it, only `parallel`. */
  slots?: Slots;
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

/** How long a kept connection to the server may stay idle before it is closed (and its slot freed): 5 s. */
const IDLE_MS = 5_000;

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
      return (await ask({ method: "GET", range: { start, end } }, options, pool, arriving)).from;
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
  const { from } = await ask({ method: "GET", range: { start: 0, end: 0 } }, options, pool);
  const size = pool.facts.size!;
  const source = blockSource(from);
  const sharing = places.sharedBound > 0 ? sharingKey(from, pool.facts) : { why: "relay_shared_cache is 0" };
  try {
    if ("key" in sharing) {
      pool.stats.sharing = "shared";
      const dir = sharedEntry(places.sharedRoot, sharing.key);
      return {
        store: new BlockStore({ dir, root: places.sharedRoot, bound: places.sharedBound, size, shared: true }),
        source,
      };
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
        await answer(parseFrontRequest(head), client, options, pool, blocks, openStore);
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
 * Answers one request; throws to cut the connection. HEAD goes to the
 * server. A GET is answered from whole RELAY_BLOCK_BYTES blocks of the file,
 * each fetched once with one ranged GET and held in memory for the next
 * requests (nbdkit's cache asks for 64 KiB at a time), as soon as the bytes
 * it asks for have come.
 */
async function answer(
  request: FrontRequest,
  client: Socket,
  options: FrontOptions,
  pool: Pool,
  blocks: Blocks,
  openStore: () => Promise<void>,
): Promise<void> {
  if (request.method === "HEAD" || pool.facts.size === undefined) {
    const whole = await ask({ method: "HEAD" }, options, pool);
    if (request.method === "HEAD") return void client.write(frontAnswer(whole.verdict));
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
 * Asks the server for a request, following redirects, and reads the body
 * of a part into `into` as it comes; the answer passed http.ts's judgement,
 * or this throws.
 */
async function ask(
  request: FrontRequest,
  options: FrontOptions,
  pool: Pool,
  into?: Arriving,
): Promise<{ verdict: Extract<Verdict, { kind: "whole" | "part" }>; from: IsoUrl }> {
  let url = options.url;
  for (let redirects = 0; redirects <= MAX_REDIRECTS; redirects++) {
    const range = request.range && `bytes=${request.range.start}-${request.range.end}`;
    const { upstream, head } = await pool.ask(
      url,
      requestHead(url, { method: request.method, range }, {
        agent: `httpsisoboot-relay/${VERSION}`,
        keepAlive: true,
        extra: range && ifRange(pool.facts.validator),
      }),
    );
    const verdict = judgeAnswer(request, head, pool.facts);
    if (verdict.kind === "redirect") {
      upstream.discard();
      url = redirectTarget(verdict.location, url, {
        ...options,
        where: options.url.redacted,
        status: verdict.status,
      });
      continue;
    }
    if (verdict.kind === "refused") {
      upstream.discard();
      throw new HookError(`${options.url.redacted}: ${verdict.why}`);
    }
    pool.learn(verdict);
    if (verdict.kind === "part") {
      pool.stats.gets++;
      await upstream.readBody(verdict.end - verdict.start + 1, into);
      pool.stats.fetched += verdict.end - verdict.start + 1;
    }
    if (keepsAlive(head)) pool.keep(url, upstream);
    else upstream.discard();
    return { verdict, from: url };
  }
  throw new HookError(`${options.url.redacted} redirects more than ${MAX_REDIRECTS} times`);
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
    else block = this.fromStore(index) ?? this.start(index, false);
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

/**
 * The server's connections: idle ones kept for reuse (closed after IDLE_MS,
 * so that their slots go back to the host), what earlier answers said of
 * the file, and what the front has done. Each connection holds one of the
 * host's slots (slots.ts) while it is open.
 */
class Pool {
  readonly facts: FileFacts;
  readonly stats: Omit<FrontStats, "hits"> = { served: 0, fetched: 0, gets: 0, retries: 0, sharing: "not yet read" };
  /** Called when a connection closes, or a slot may have come free: read-ahead may start. */
  onIdle: () => void = () => {};
  private kept = new Map<string, Upstream[]>();
  /** A slot taken for a read-ahead GET about to open a connection. */
  private spare?: () => void;

  constructor(private readonly options: FrontOptions) {
    this.facts = { ...options.expect };
  }

  /**
   * Sends a request and reads the answer's head. A kept connection the
   * server has closed meanwhile is replaced by a new one, once.
   */
  async ask(url: IsoUrl, request: string): Promise<{ upstream: Upstream; head: ReturnType<typeof parseResponseHead> }> {
    const reused = this.kept.get(origin(url))?.pop();
    if (reused) {
      reused.idle(undefined);
      try {
        return { upstream: reused, head: await reused.request(request) };
      } catch (error) {
        reused.discard();
        if (!(error instanceof StaleConnection)) throw error;
      }
    }
    const upstream = await this.open(url);
    return { upstream, head: await upstream.request(request) };
  }

  /** Whether a read-ahead GET may start now: a kept connection is idle, or the host has a slot free. */
  mayOpen(): boolean {
    if (!this.options.slots || this.spare) return true;
    for (const list of this.kept.values()) if (list.length > 0) return true;
    this.spare = this.options.slots.tryTake();
    return this.spare !== undefined;
  }

  learn(verdict: Extract<Verdict, { kind: "whole" | "part" }>): void {
    this.facts.size ??= verdict.size;
    this.facts.validator ??= verdict.validator;
  }

  /**
   * Keeps a connection for the next request, unless the host has no slot
   * free: then another relay may be waiting for one, and an idle connection
   * must not hold it.
   */
  keep(url: IsoUrl, upstream: Upstream): void {
    if (!upstream.done()) return upstream.discard();
    const slots = this.options.slots;
    if (slots && slots.taken() >= slots.bound) return upstream.discard();
    const list = this.kept.get(origin(url)) ?? [];
    if (list.length >= (this.options.parallel ?? RELAY_PARALLEL_GETS)) return upstream.discard();
    list.push(upstream);
    this.kept.set(origin(url), list);
    upstream.idle(() => {
      list.splice(list.indexOf(upstream), 1);
      upstream.discard();
    });
  }

  closeAll(): void {
    for (const list of this.kept.values()) for (const upstream of list) upstream.discard();
    this.kept.clear();
    this.spare?.();
    this.spare = undefined;
  }

  /** A new connection, once the host has a slot for it: the read-ahead's spare, or one waited for. */
  private async open(url: IsoUrl): Promise<Upstream> {
    let release: (() => void) | undefined = this.spare;
    this.spare = undefined;
    release ??= await this.options.slots?.take(this.options.timeoutMs);
    try {
      return await Upstream.open(url, this.options, () => {
        release?.();
        this.onIdle();
      });
    } catch (error) {
      release?.();
      throw error;
    }
  }
}

/** A kept connection closed before a byte of the answer came: safe to ask again on a new one. */
class StaleConnection extends Error {}

/**
 * One TLS connection to the ISO server, read one answer at a time, and
 * bounded against the server whatever it does:
 *
 * - No byte is taken while no request is in flight: a server that speaks on
 *   an idle kept connection, or sends more than the answer it owes, is dropped.
 * - At most RELAY_UPSTREAM_HELD_BYTES are held unread; past that the socket
 *   is paused, so a fast server waits for the front instead of filling it.
 * - Each answer must come whole within the timeout, from the request on: a
 *   server that trickles a byte now and then is given up on as one that is
 *   silent.
 */
class Upstream {
  private chunks: Uint8Array[] = [];
  private held = 0;
  private inFlight = false;
  private gotBytes = false;
  private waiting?: () => void;
  private ended = false;
  private failure?: Error;
  private timedOut = false;
  private answered = false;
  private deadline?: ReturnType<typeof setTimeout>;

  private idleTimer?: ReturnType<typeof setTimeout>;

  private constructor(
    private readonly socket: TLSSocket,
    private readonly where: string,
    private readonly timeoutMs: number,
    closed: () => void,
  ) {
    socket.once("close", () => {
      clearTimeout(this.idleTimer);
      closed();
    });
    socket.on("data", (chunk: Uint8Array) => {
      if (!this.inFlight) return this.fail(new HookError(`${where} sent bytes with no request in flight`));
      this.chunks.push(chunk);
      this.held += chunk.length;
      this.gotBytes = true;
      if (this.held >= RELAY_UPSTREAM_HELD_BYTES) socket.pause();
      this.wake();
    });
    socket.on("end", () => {
      this.ended = true;
      this.wake();
    });
    socket.on("close", () => {
      this.ended = true;
      this.wake();
    });
    socket.on("error", (error: Error) => this.fail(error));
  }

  /** A verified connection; refuses a certificate this host does not trust. */
  static open(url: IsoUrl, options: FrontOptions, closed: () => void): Promise<Upstream> {
    const where = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
    const socket = openTls(url, options.ca);
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new HookError(`${where} did not connect within the timeout`)),
        options.timeoutMs,
      );
      socket.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        fail(
          new HookError(`the connection to ${where} failed (${printable(String(error.code ?? error.message), 40)})`),
        );
      });
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        const refused = certificateProblem(socket, where);
        if (refused) return fail(refused);
        socket.removeAllListeners("error");
        resolve(new Upstream(socket, where, options.timeoutMs, closed));
      });
    });
  }

  /**
   * Sends a request head and reads the answer's head, at most
   * MAX_HEADER_BYTES. The answer's deadline runs from here until done().
   */
  async request(head: string): Promise<ReturnType<typeof parseResponseHead>> {
    const wasUsed = this.answered;
    this.inFlight = true;
    this.gotBytes = false;
    const seconds = this.timeoutMs / 1000;
    this.deadline = setTimeout(() => {
      this.timedOut = true;
      this.fail(
        new HookError(
          this.gotBytes
            ? `${this.where} did not send the whole answer within ${seconds} s (timeout)`
            : `${this.where} sent nothing for ${seconds} s (timeout)`,
        ),
      );
    }, this.timeoutMs);
    this.socket.write(head);
    for (;;) {
      const found = this.takeHead();
      if (found !== undefined) {
        this.answered = true;
        const answer = parseResponseHead(found);
        if (answer.status >= 100 && answer.status < 200) continue;
        return answer;
      }
      if (this.failure || this.ended) {
        // Closed (or reset) between answers, as a server may close an idle kept connection.
        if (wasUsed && !this.gotBytes && !this.timedOut) throw new StaleConnection();
        throw this.failure ?? new HookError(`${this.where} closed the connection before answering`);
      }
      await this.wait();
    }
  }

  /** Reads exactly `length` body bytes, telling `into` of each step. */
  async readBody(length: number, into?: Arriving): Promise<void> {
    const body = into ? into.space(length) : new Uint8Array(length);
    let have = 0;
    while (have < length) {
      const chunk = this.chunks[0];
      if (chunk !== undefined) {
        const take = Math.min(length - have, chunk.length);
        body.set(chunk.subarray(0, take), have);
        have += take;
        if (take === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(take);
        this.consumed(take);
        into?.progress(body, have);
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) throw new HookError(`${this.where} cut the answer short: ${have} of ${length} bytes`);
      await this.wait();
    }
  }

  /**
   * The answer is read: no request is in flight, so no silence counts, and
   * from now on any byte the server sends drops the connection. Whether it
   * can be kept: not when the server sent more than the answer.
   */
  done(): boolean {
    clearTimeout(this.deadline);
    this.inFlight = false;
    return this.held === 0 && !this.failure && !this.ended;
  }

  discard(): void {
    clearTimeout(this.deadline);
    clearTimeout(this.idleTimer);
    this.socket.destroy();
  }

  /** Kept idle: `close` runs after IDLE_MS unless the connection is used first (undefined). */
  idle(close: (() => void) | undefined): void {
    clearTimeout(this.idleTimer);
    if (close) {
      this.idleTimer = setTimeout(close, IDLE_MS);
      (this.idleTimer as { unref?: () => void }).unref?.();
    }
  }

  /** The head of the answer, once all of it has come; refuses one larger than MAX_HEADER_BYTES. */
  private takeHead(): string | undefined {
    if (this.held === 0) return undefined;
    const bytes = this.chunks.length === 1 ? this.chunks[0] : concat(this.chunks);
    const end = indexOfBlankLine(bytes);
    if (end < 0 ? bytes.length > MAX_HEADER_BYTES : end > MAX_HEADER_BYTES) {
      throw new HookError(`${this.where} sent more than ${MAX_HEADER_BYTES} bytes of headers`);
    }
    if (end < 0) {
      this.chunks = [bytes];
      return undefined;
    }
    const rest = bytes.subarray(end + 4);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.consumed(end + 4);
    return new TextDecoder("latin1").decode(bytes.subarray(0, end));
  }

  private consumed(bytes: number): void {
    this.held -= bytes;
    if (this.held < RELAY_UPSTREAM_HELD_BYTES && this.socket.isPaused()) this.socket.resume();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    clearTimeout(this.deadline);
    this.socket.destroy();
    this.wake();
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => (this.waiting = resolve));
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }
}

function origin(url: IsoUrl): string {
  return `${url.host}:${url.port}`;
}

function describe(error: unknown): string {
  return error instanceof HookError ? error.message : `internal error (${printable(String(error))})`;
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}
