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
}

/** A running front. */
export interface Front {
  close(): Promise<void>;
}

/** Idle connections to the server kept for reuse. */
const MAX_IDLE = 4;

/**
 * Starts the front on a Unix socket.
 *
 * @param path The socket's path; its directory must be the relay's alone.
 */
export function startFront(path: string, options: FrontOptions): Promise<Front> {
  const pool = new Pool(options);
  const blocks = new Blocks(
    async (index, arriving) => {
      const start = index * RELAY_BLOCK_BYTES;
      const end = Math.min(start + RELAY_BLOCK_BYTES, pool.facts.size!) - 1;
      await ask({ method: "GET", range: { start, end } }, options, pool, arriving);
    },
    () => pool.facts.size === undefined ? undefined : Math.ceil(pool.facts.size / RELAY_BLOCK_BYTES),
    options.log,
    options.readaheadBlocks ?? RELAY_READAHEAD_BLOCKS,
  );
  const server: Server = createServer((client) => serveClient(client, options, pool, blocks));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      resolve({
        close: () =>
          new Promise((done) => {
            pool.closeAll();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Reads nbdkit's requests from one connection and answers them in turn. */
function serveClient(client: Socket, options: FrontOptions, pool: Pool, blocks: Blocks): void {
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
        await answer(parseFrontRequest(head), client, options, pool, blocks);
      } catch (error) {
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
): Promise<void> {
  if (request.method === "HEAD" || pool.facts.size === undefined) {
    const whole = await ask({ method: "HEAD" }, options, pool);
    if (request.method === "HEAD") return void client.write(frontAnswer(whole.verdict));
  }
  const size = pool.facts.size!;
  const start = request.range!.start;
  const end = Math.min(request.range!.end, size - 1);
  if (start > end) throw new HookError(`nbdkit asked for bytes ${start}-${request.range!.end} of a ${size}-byte file`);
  const parts: Uint8Array[] = [];
  for (let index = Math.floor(start / RELAY_BLOCK_BYTES); index <= Math.floor(end / RELAY_BLOCK_BYTES); index++) {
    const from = index * RELAY_BLOCK_BYTES;
    const needed = Math.min(end - from + 1, RELAY_BLOCK_BYTES);
    const block = await blocks.get(index).first(needed);
    parts.push(block.subarray(Math.max(start - from, 0), needed));
  }
  client.write(frontAnswer({ kind: "part", start, end, size }));
  for (const part of parts) client.write(part);
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
): Promise<{ verdict: Extract<Verdict, { kind: "whole" | "part" }> }> {
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
    if (verdict.kind === "part") await upstream.readBody(verdict.end - verdict.start + 1, into);
    if (keepsAlive(head)) pool.keep(url, upstream);
    else upstream.discard();
    return { verdict };
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
}

/**
 * The file's blocks the front holds: RELAY_FRONT_BLOCKS the guest has read,
 * and up to RELAY_READAHEAD_BLOCKS fetched ahead of a guest that reads in
 * order (readahead.ts), least recently used dropped first. A block being
 * fetched is held as it arrives, so two requests for it make one GET. A
 * failed fetch is not held: a block fetched ahead that failed is fetched
 * again when asked. At most RELAY_PARALLEL_GETS GETs are in flight for
 * reading ahead; a read the guest waits for never waits for them.
 */
class Blocks {
  private held = new Map<number, Arriving>();
  private order: ReadAheadState = { run: 0 };
  private queue: number[] = [];
  /** Blocks fetched ahead that the guest has not read yet: dropped last. */
  private unread = new Set<number>();
  private fetching = 0;
  private fetched = 0;

  constructor(
    private readonly fetch: (index: number, into: Arriving) => Promise<void>,
    private readonly blockCount: () => number | undefined,
    private readonly log: (line: string) => void,
    private readonly depth: number,
  ) {}

  get(index: number): Arriving {
    let block = this.held.get(index);
    this.unread.delete(index);
    if (block) this.held.delete(index);
    else block = this.start(index, false);
    this.held.set(index, block);
    this.readAhead(index);
    this.trim();
    return block;
  }

  private readAhead(index: number): void {
    const blocks = this.blockCount();
    if (blocks === undefined) return;
    const plan = readAhead(this.order, index, blocks, this.depth);
    this.order = plan.state;
    // A read out of order empties the queue: what was planned ahead of the old place is not wanted.
    if (plan.ahead.length > 0 || plan.state.run === 1) this.queue = plan.ahead;
    this.pump();
  }

  /** Starts the queued blocks, while fewer than RELAY_PARALLEL_GETS are in flight. */
  private pump(): void {
    while (this.fetching < RELAY_PARALLEL_GETS && this.queue.length > 0) {
      const ahead = this.queue.shift()!;
      if (this.held.has(ahead)) continue;
      this.held.set(ahead, this.start(ahead, true));
      this.unread.add(ahead);
    }
    this.trim();
  }

  private start(index: number, ahead: boolean): Arriving {
    const arriving = new Arriving();
    this.fetching++;
    if (++this.fetched % GC_EVERY_BLOCKS === 0) collectGarbage();
    this.fetch(index, arriving).catch((error) => {
      arriving.fail(error);
      if (this.held.get(index) === arriving) this.held.delete(index);
      this.unread.delete(index);
      if (ahead) this.log(`${describe(error)}; it was fetched ahead, and will be fetched again when asked`);
    }).finally(() => {
      this.fetching--;
      this.pump();
    });
    return arriving;
  }

  /**
   * Drops the least recently used blocks past the limit: those the guest
   * has read first, and one fetched ahead only when nothing else is left.
   * Dropping by age alone dropped blocks fetched ahead, still unread, before
   * those just served, and fetched them twice (the relay test saw 19 GETs
   * for 17 blocks).
   */
  private trim(): void {
    while (this.held.size > RELAY_FRONT_BLOCKS + RELAY_READAHEAD_BLOCKS) {
      const oldest = [...this.held.keys()];
      const drop = oldest.find((index) => !this.unread.has(index)) ?? oldest[0];
      this.held.delete(drop);
      this.unread.delete(drop);
    }
  }
}

/**
 * Blocks fetched between two full garbage collections: 4 (4 MiB). Each
 * block leaves its 1 MiB buffer and the TLS layer's chunks behind, and
 * Bun's collector, left to itself, let a front that streamed 256 MiB at
 * full speed grow to 150–180 MiB of RSS, with read-ahead or without (the
 * relay test measures it); a collection it is asked for without waiting did
 * nothing, a full one every 16 blocks left 114 MiB, one every 4 keeps it
 * under 100 MiB.
 */
const GC_EVERY_BLOCKS = 4;

/** Bun's collector, where the front runs in the binary; a no-op under Node and Deno (the tests). */
function collectGarbage(): void {
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}

/** The server's connections: idle ones kept for reuse, and what earlier answers said of the file. */
class Pool {
  readonly facts: FileFacts;
  private kept = new Map<string, Upstream[]>();

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
      try {
        return { upstream: reused, head: await reused.request(request) };
      } catch (error) {
        reused.discard();
        if (!(error instanceof StaleConnection)) throw error;
      }
    }
    const upstream = await Upstream.open(url, this.options);
    return { upstream, head: await upstream.request(request) };
  }

  learn(verdict: Extract<Verdict, { kind: "whole" | "part" }>): void {
    this.facts.size ??= verdict.size;
    this.facts.validator ??= verdict.validator;
  }

  keep(url: IsoUrl, upstream: Upstream): void {
    if (!upstream.done()) return upstream.discard();
    const list = this.kept.get(origin(url)) ?? [];
    if (list.length >= MAX_IDLE) return upstream.discard();
    list.push(upstream);
    this.kept.set(origin(url), list);
  }

  closeAll(): void {
    for (const list of this.kept.values()) for (const upstream of list) upstream.discard();
    this.kept.clear();
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

  private constructor(
    private readonly socket: TLSSocket,
    private readonly where: string,
    private readonly timeoutMs: number,
  ) {
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
  static open(url: IsoUrl, options: FrontOptions): Promise<Upstream> {
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
        resolve(new Upstream(socket, where, options.timeoutMs));
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
    const body = new Uint8Array(length);
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
    this.socket.destroy();
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
