// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The relay's connections to the ISO server: asking it, following its
 * redirects, keeping connections alive for reuse, each holding one of the
 * host's slots, and reading each answer bounded against whatever the server
 * does. The front (front.ts) asks for blocks through a Pool; what an answer
 * means is lib/relay/http.ts's judgement.
 *
 * This module does network I/O.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { TLSSocket } from "node:tls";

import { HookError, printable } from "../../lib/errors.ts";
import {
  DESCRIPTOR_BYTES,
  DESCRIPTOR_OFFSET,
  MAX_HEADER_BYTES,
  MAX_REDIRECTS,
  RELAY_PROOF_EVERY_BYTES,
  RELAY_UPSTREAM_HELD_BYTES,
} from "../../lib/limits.ts";
import { concat, indexOfBlankLine } from "../../lib/bytes.ts";
import { RELAY_PARALLEL_GETS } from "../../lib/relay/readahead.ts";
import { parseResponseHead, requestHead, type Response } from "../../lib/http/response.ts";
import { blockSource } from "../../lib/relay/shared.ts";
import {
  connectionProofDue,
  type Failure,
  preflightApplies,
  proofNeeded,
  type Reference,
  REFERENCE_BYTES,
  resolveAgain,
} from "../../lib/relay/route.ts";
import { redirectTarget } from "../../lib/redirect.ts";
import type { RelayStatus } from "../../lib/relay/status.ts";
import type { AllowRule } from "../../lib/settings.ts";
import type { IsoUrl } from "../../lib/url.ts";
import { VERSION } from "../../lib/version.ts";
import {
  type FileFacts,
  type FrontRequest,
  ifRange,
  judgeAnswer,
  keepsAlive,
  type Validator,
  type Verdict,
} from "../../lib/relay/http.ts";
import { certificateProblem, openTls, openTunnel } from "../http/client.ts";
import { type NoProxyRule, type Proxy, proxyFor } from "../../lib/proxy.ts";
import type { Slots } from "./slots.ts";

/** What the connections to the server need. */
export interface UpstreamOptions {
  url: IsoUrl;
  allow: AllowRule[];
  settingsFile: string;
  /** How long the server may stay silent during a request. */
  timeoutMs: number;
  /** The host's trust bundle. */
  ca: Uint8Array;
  /** Where the front says what went wrong: one line each, query values hidden. */
  log(line: string): void;
  /**
   * What preflight saw of the file: every answer must be of this size, and
   * carry this validator when it comes from the URL preflight reached (`at`,
   * as shared.ts's blockSource names it).
   */
  expect?: FileFacts & { at?: string };
  /** GETs in flight at once, each on its own connection: RELAY_PARALLEL_GETS unless given. */
  parallel?: number;
  /** The host's bound on connections to ISO servers (slots.ts); without it, only `parallel`. */
  slots?: Slots;
  /** The HTTP proxy servers are reached through, but those `noProxy` names (proxy.ts). */
  proxy?: Proxy;
  noProxy?: NoProxyRule[];
}

/** What the connections have done, for `httpsisoboot --status` (status.ts names each count). */
export type UpstreamStats = Omit<RelayStatus, "pid" | "server" | "started" | "name" | "hits">;

/** Where an answer's body goes as it comes (front.ts's Arriving). */
export interface BodySink {
  space(length: number): Uint8Array;
  progress(body: Uint8Array, have: number): void;
}

/** An answer the server gave and http.ts passed, and the URL that gave it, after any redirect. */
export interface Fetched {
  verdict: Extract<Verdict, { kind: "whole" | "part" }>;
  from: IsoUrl;
  /** A part's bytes. */
  body?: Uint8Array;
}

/**
 * The request a relay first makes, once: the file's first bytes up to the
 * end of its first volume descriptor, the very request preflight makes and
 * has seen answered (whatever the file's size, its start is in range). Its
 * answer gives the size (Content-Range), the validator and the target, so
 * nbdkit's size question costs the server no HEAD, which S3 refuses to a
 * URL signed for GET; and its bytes are what the shared cache's copy of
 * them must match.
 */
export const PROBE: FrontRequest = {
  method: "GET",
  range: { start: 0, end: DESCRIPTOR_OFFSET + DESCRIPTOR_BYTES - 1 },
};

/**
 * How many times one request asks the URL it was given again after its
 * target failed: a mirror manager may send it to another dead mirror first.
 */
const MAX_RESOLVES = 3;

/** How long a kept connection to the server may stay idle before it is closed (and its slot freed): 5 s. */
export const IDLE_MS = 5_000;

/**
 * The server's connections: idle ones kept for reuse (closed after IDLE_MS,
 * so that their slots go back to the host), what earlier answers said of
 * the file, and what the front has done. Each connection holds one of the
 * host's slots (slots.ts) while it is open.
 */
export class Pool {
  readonly facts: FileFacts;
  readonly stats: UpstreamStats = { served: 0, fetched: 0, gets: 0, retries: 0, sharing: "not yet read" };
  /** Called when a connection closes, or a slot may have come free: read-ahead may start. */
  onIdle: () => void = () => {};
  private kept = new Map<string, Upstream[]>();
  /** A slot taken for a read-ahead GET about to open a connection. */
  private spare?: () => void;
  /** Where the URL's redirects led: asked directly until it fails, then the URL again until a new one proves itself. */
  private target?: { url: IsoUrl; failed?: boolean };
  /** The relay's first request (PROBE), made once: what nbdkit's size question and the store wait for. */
  private probing?: Promise<Fetched>;
  /** The request that is asking the URL where the ISO is now, which the others wait for. */
  private resolving?: Promise<void>;
  /** A range of the file read from a proven target, and its digest: what a new target or connection must match. */
  private reference?: Reference;
  /** Bytes fetched since a connection last proved the reference's bytes (RELAY_PROOF_EVERY_BYTES). */
  private sinceProof = 0;
  /** The server ends a connection with each answer: no connection can be proven before a request. */
  private closesEach = false;
  /** The target served other bytes for the reference range: the file was replaced, and no more of it is served. */
  private replaced?: UpstreamFailure;

  constructor(private readonly options: UpstreamOptions) {
    this.facts = { ...options.expect };
  }

  /**
   * Asks the server for a request, and reads the body of a part into `into`
   * as it comes; the answer passed http.ts's judgement, or this throws.
   *
   * The first request follows the URL's redirects; the URL they lead to is
   * then asked directly (route.ts). When that target fails in a way that
   * asking the URL again may cure, this request goes back to the URL, and a
   * new target is taken once it has proven it serves the same file.
   */
  async fetch(request: FrontRequest, into?: BodySink): Promise<Fetched> {
    for (let attempt = 0;; attempt++) {
      if (this.replaced) throw this.replaced;
      const target = this.target;
      if (target?.failed && this.resolving && attempt <= MAX_RESOLVES) {
        // Another request is asking the URL where the ISO is now: one redirect for all of them.
        await this.resolving;
        continue;
      }
      const from = target && !target.failed ? target.url : this.options.url;
      const asked = this.follow(from, request, into);
      if (target?.failed) this.resolving ??= asked.then(() => {}, () => {}).finally(() => this.resolving = undefined);
      try {
        return await asked;
      } catch (error) {
        const again = error instanceof UpstreamFailure && resolveAgain(error.failure) &&
          attempt < MAX_RESOLVES && (from === this.options.url ? attempt > 0 : true);
        if (!again) throw error;
        if (target !== undefined && from === target.url && !target.failed) {
          target.failed = true;
          this.stats.lastError = error.message;
          this.options.log(`${error.message}; asking ${this.options.url.redacted} where the ISO is now`);
        }
      }
    }
  }

  /**
   * The relay's first request, made once (a failed one is made again when
   * next asked): the size, the validator and the target, from one ranged GET.
   */
  probe(): Promise<Fetched> {
    this.probing ??= this.fetch(PROBE).catch((error) => {
      this.probing = undefined;
      throw error;
    });
    return this.probing;
  }

  /** Asks `start` for a request, following its redirects; the URL that answered becomes the target, with proof. */
  private async follow(start: IsoUrl, request: FrontRequest, into?: BodySink): Promise<Fetched> {
    let url = start;
    for (let redirects = 0; redirects <= MAX_REDIRECTS; redirects++) {
      const adopted = this.target !== undefined && !this.target.failed && this.target.url.href === url.href;
      const known = adopted ? this.facts : this.factsFor(url);
      const range = request.range && `bytes=${request.range.start}-${request.range.end}`;
      const { upstream, head } = await this.ask(
        url,
        requestHead(url, { method: request.method, range }, {
          agent: `httpsisoboot-relay/${VERSION}`,
          keepAlive: true,
          extra: range && ifRange(known.validator),
        }),
      );
      const verdict = judgeAnswer(request, head, known);
      if (verdict.kind === "redirect") {
        upstream.discard();
        url = redirectTarget(verdict.location, url, {
          ...this.options,
          where: this.options.url.redacted,
          status: verdict.status,
        });
        continue;
      }
      if (verdict.kind === "refused") {
        upstream.discard();
        const failure: Failure = verdict.status ? { kind: "status", status: verdict.status } : { kind: "judged" };
        throw new UpstreamFailure(`${this.options.url.redacted}: ${verdict.why}`, failure);
      }
      const body = await this.readAnswer(upstream, head, url, verdict, adopted ? into : undefined);
      if (!adopted) await this.adopt(url, verdict, redirects);
      if (!adopted && body && into) copyInto(into, body);
      if (body && !this.reference && this.target?.url.href === url.href) this.reference = referenceOf(verdict, body);
      return { verdict, from: url, body };
    }
    throw new HookError(`${this.options.url.redacted} redirects more than ${MAX_REDIRECTS} times`);
  }

  /**
   * What an answer from `url` must match: the target's facts when it is the
   * target; before there is one, the size and validator preflight saw, the
   * validator only where preflight reached this URL too (route.ts); for
   * another URL, the size alone, until it has proven itself.
   */
  private factsFor(url: IsoUrl): FileFacts {
    if (this.target !== undefined) return { size: this.facts.size };
    const expect = this.options.expect;
    return preflightApplies(expect?.at, blockSource(url)) ? this.facts : { size: this.facts.size };
  }

  /** Reads a part's body (into `into` when the URL is the proven target) and keeps or drops the connection. */
  private async readAnswer(
    upstream: Upstream,
    head: Response,
    url: IsoUrl,
    verdict: Fetched["verdict"],
    into: BodySink | undefined,
  ): Promise<Uint8Array | undefined> {
    let body: Uint8Array | undefined;
    if (verdict.kind === "part") {
      this.stats.gets++;
      try {
        body = await upstream.readBody(verdict.end - verdict.start + 1, into);
      } catch (error) {
        upstream.discard();
        throw error;
      }
      this.stats.fetched += verdict.end - verdict.start + 1;
      this.sinceProof += verdict.end - verdict.start + 1;
    }
    if (keepsAlive(head)) this.keep(url, upstream);
    else upstream.discard();
    return body;
  }

  /**
   * Takes `url` as the target: at once when there is none yet, or when it
   * names the file with the validator known; when it names it otherwise (a
   * mirror whose server makes its own ETags), once the bytes it serves for
   * the reference range are the bytes the relay read there before.
   */
  private async adopt(url: IsoUrl, verdict: Fetched["verdict"], redirects: number): Promise<void> {
    if (this.target === undefined) {
      // Judged against preflight's validator where it applies (factsFor), so this is that one or the mirror's own.
      this.facts.size ??= verdict.size;
      this.facts.validator = verdict.validator;
      this.target = { url };
      if (redirects > 0) this.options.log(`${this.options.url.redacted} leads to ${url.redacted}; asking it directly`);
      return;
    }
    const proof = proofNeeded(this.facts.validator, verdict.validator, this.reference);
    if (proof.kind === "refused") {
      throw new UpstreamFailure(`${url.redacted} cannot be proven to serve the same file: ${proof.why}`, {
        kind: "judged",
      });
    }
    if (proof.kind === "bytes") await this.proveBytes(url, proof.reference, verdict.validator);
    this.facts.validator = verdict.validator;
    this.target = { url };
    this.options.log(`${this.options.url.redacted} now leads to ${url.redacted}, proven to serve the same file`);
  }

  /** Asks `url` for the reference range, and refuses it unless its bytes are the ones read there before. */
  private async proveBytes(url: IsoUrl, reference: Reference, validator: Validator): Promise<void> {
    const { upstream, head } = await this.ask(url, referenceHead(url, reference, validator));
    let same: boolean;
    try {
      same = await this.sameBytes(upstream, head, url, reference, validator);
    } catch (error) {
      upstream.discard();
      throw error;
    }
    if (keepsAlive(head)) this.keep(url, upstream);
    else upstream.discard();
    if (!same) {
      throw new UpstreamFailure(
        `${url.redacted} serves other bytes than the relay read before (bytes ${reference.start}-${reference.end}); ` +
          `it is not the same file, and is not used`,
        { kind: "judged" },
      );
    }
  }

  /** Judges an answer to the reference range and reads it: whether its bytes are the ones read there before. */
  private async sameBytes(
    upstream: Upstream,
    head: Response,
    url: IsoUrl,
    reference: Reference,
    validator: Validator | undefined,
  ): Promise<boolean> {
    const request: FrontRequest = { method: "GET", range: { start: reference.start, end: reference.end } };
    const verdict = judgeAnswer(request, head, { size: this.facts.size, validator });
    if (verdict.kind !== "part") throw notProven(url, verdict);
    const body = await upstream.readBody(reference.end - reference.start + 1);
    this.stats.gets++;
    this.stats.fetched += body.length;
    return sha256(body) === reference.sha256;
  }

  /**
   * Sends a request and reads the answer's head. A kept connection the
   * server has closed meanwhile is replaced by a new one, once.
   */
  private async ask(
    url: IsoUrl,
    request: string,
  ): Promise<{ upstream: Upstream; head: ReturnType<typeof parseResponseHead> }> {
    const reused = this.kept.get(origin(url))?.pop();
    if (reused) {
      reused.idle(undefined);
      try {
        const started = Date.now();
        if (this.proofDue(url, false) && !(await this.proveConnection(reused, url))) throw new StaleConnection();
        return { upstream: reused, head: await reused.request(request, this.left(started)) };
      } catch (error) {
        reused.discard();
        if (!(error instanceof StaleConnection)) throw error;
      }
    }
    let upstream = await this.open(url);
    try {
      const started = Date.now();
      if (this.proofDue(url, true) && !(await this.proveConnection(upstream, url))) {
        // Closed after the proof's answer: this server's connections cannot be proven before a request.
        upstream.discard();
        upstream = await this.open(url);
      }
      return { upstream, head: await upstream.request(request, this.left(started)) };
    } catch (error) {
      // Refused (headers too long, not HTTP, a timeout): closed now, its slot back to the host, not at the deadline.
      upstream.discard();
      throw error instanceof StaleConnection
        ? new UpstreamFailure(`${url.redacted}: the server closed the connection before answering`, {
          kind: "connection",
        })
        : error;
    }
  }

  /**
   * What is left of one timeout since `started`: a request after a proof on
   * its connection shares the proof's timeout, so that a server slow to
   * answer both does not cost the guest two.
   */
  private left(started: number): number {
    return Math.max(1, this.options.timeoutMs - (Date.now() - started));
  }

  /** Whether a connection to `url` must prove the file's bytes before its request (route.ts). */
  private proofDue(url: IsoUrl, fresh: boolean): boolean {
    const target = this.target;
    if (target === undefined || target.failed || target.url.href !== url.href) return false;
    return connectionProofDue({
      referenced: this.reference !== undefined,
      keepsAlive: !this.closesEach,
      fresh,
      since: this.sinceProof,
      every: RELAY_PROOF_EVERY_BYTES,
    });
  }

  /**
   * Asks a connection to the target for the reference range before its
   * request, and compares the bytes: other bytes under the same size and
   * validator mean the file was replaced in place (or the server's machines
   * hold different files), and from then on this relay serves none of it.
   * Whether the connection is still open for the request.
   */
  private async proveConnection(upstream: Upstream, url: IsoUrl): Promise<boolean> {
    const reference = this.reference!;
    this.sinceProof = 0;
    const head = await upstream.request(referenceHead(url, reference, this.facts.validator));
    if (!(await this.sameBytes(upstream, head, url, reference, this.facts.validator))) {
      this.replaced = new UpstreamFailure(
        `${url.redacted} now serves other bytes (bytes ${reference.start}-${reference.end}) than when the relay ` +
          "started, under the same size and validator: the ISO was replaced in place, or the server's machines hold " +
          "different files; the relay serves no more of it: stop the VM and start it again to read the new file",
        { kind: "judged" },
      );
      this.options.log(this.replaced.message);
      throw this.replaced;
    }
    if (keepsAlive(head) && upstream.done()) return true;
    this.closesEach = true;
    this.options.log(
      `${url.redacted} closes each connection after one answer: its connections cannot be proven before a request`,
    );
    return false;
  }

  /** Whether a read-ahead GET may start now: a kept connection is idle, or the host has a slot free. */
  mayOpen(): boolean {
    if (!this.options.slots || this.spare) return true;
    for (const list of this.kept.values()) if (list.length > 0) return true;
    this.spare = this.options.slots.tryTake();
    return this.spare !== undefined;
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
  static open(url: IsoUrl, options: UpstreamOptions, closed: () => void): Promise<Upstream> {
    const where = url.host.includes(":") ? `[${url.host}]:${url.port}` : `${url.host}:${url.port}`;
    const proxy = proxyFor(url, options.proxy, options.noProxy ?? []);
    const tunnel = proxy ? openTunnel(url, options.ca, proxy, options.settingsFile) : undefined;
    return new Promise((resolve, reject) => {
      let socket: TLSSocket | undefined;
      let settled = false;
      const fail = (error: Error) => {
        settled = true;
        clearTimeout(timer);
        socket?.destroy();
        tunnel?.cancel();
        reject(error instanceof UpstreamFailure ? error : new UpstreamFailure(error.message, { kind: "connection" }));
      };
      const timer = setTimeout(
        () => fail(new UpstreamFailure(`${where} did not connect within the timeout`, { kind: "connection" })),
        options.timeoutMs,
      );
      const handshake = (tls: TLSSocket) => {
        if (settled) return void tls.destroy(); // given up on while the proxy answered
        socket = tls;
        tls.once("error", (error: NodeJS.ErrnoException) => {
          fail(
            new UpstreamFailure(
              `the connection to ${where} failed (${printable(String(error.code ?? error.message), 40)})`,
              { kind: "connection" },
            ),
          );
        });
        tls.once("secureConnect", () => {
          clearTimeout(timer);
          const refused = certificateProblem(tls, where);
          if (refused) return fail(refused);
          tls.removeAllListeners("error");
          settled = true;
          resolve(new Upstream(tls, where, options.timeoutMs, closed));
        });
      };
      if (tunnel) tunnel.socket.then(handshake, fail);
      else handshake(openTls(url, options.ca));
    });
  }

  /**
   * Sends a request head and reads the answer's head, at most
   * MAX_HEADER_BYTES. The answer's deadline runs from here until done():
   * `timeoutMs`, the connection's timeout unless less is left of it.
   */
  async request(head: string, timeoutMs = this.timeoutMs): Promise<ReturnType<typeof parseResponseHead>> {
    const wasUsed = this.answered;
    this.inFlight = true;
    this.gotBytes = false;
    const seconds = this.timeoutMs / 1000;
    this.deadline = setTimeout(() => {
      this.timedOut = true;
      this.fail(
        new UpstreamFailure(
          this.gotBytes
            ? `${this.where} did not send the whole answer within ${seconds} s (timeout)`
            : `${this.where} sent nothing for ${seconds} s (timeout)`,
          { kind: "timeout" },
        ),
      );
    }, timeoutMs);
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
        throw this.failure ??
          new UpstreamFailure(`${this.where} closed the connection before answering`, { kind: "connection" });
      }
      await this.wait();
    }
  }

  /** Reads exactly `length` body bytes, telling `into` of each step. */
  async readBody(length: number, into?: BodySink): Promise<Uint8Array> {
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
    return body;
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

/** A request to the server failed, and how: what tells route.ts whether to ask the URL again. */
export class UpstreamFailure extends HookError {
  constructor(message: string, readonly failure: Failure) {
    super(message);
  }
}

/** Hands `body`, read aside while its URL proved itself, to the block it was asked for. */
function copyInto(into: BodySink, body: Uint8Array): void {
  const space = into.space(body.length);
  space.set(body);
  into.progress(space, body.length);
}

/**
 * The reference range the first body read from the target gives (the
 * probe's, PROBE): its first REFERENCE_BYTES, or none when shorter.
 */
function referenceOf(verdict: Fetched["verdict"], body: Uint8Array): Reference | undefined {
  if (verdict.kind !== "part" || body.length < REFERENCE_BYTES) return undefined;
  return {
    start: verdict.start,
    end: verdict.start + REFERENCE_BYTES - 1,
    sha256: sha256(body.subarray(0, REFERENCE_BYTES)),
  };
}

/** The request for the reference range, as the relay's probe asks it, made conditional on `validator`. */
function referenceHead(url: IsoUrl, reference: Reference, validator: Validator | undefined): string {
  return requestHead(url, { method: "GET", range: `bytes=${reference.start}-${reference.end}` }, {
    agent: `httpsisoboot-relay/${VERSION}`,
    keepAlive: true,
    extra: ifRange(validator),
  });
}

/**
 * Why an answer to the reference range proves nothing: a refusal keeps its
 * status, so that an expired signature sends the relay back to the URL it
 * was given (route.ts).
 */
function notProven(url: IsoUrl, verdict: Exclude<Verdict, { kind: "part" }>): UpstreamFailure {
  const why = verdict.kind === "refused"
    ? verdict.why
    : verdict.kind === "redirect"
    ? `a redirect (${verdict.status})`
    : "a whole answer";
  const failure: Failure = verdict.kind === "refused" && verdict.status
    ? { kind: "status", status: verdict.status }
    : { kind: "judged" };
  return new UpstreamFailure(`${url.redacted} did not serve the bytes that would prove it (${why})`, failure);
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}
