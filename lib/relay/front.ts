// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The relay's front: a small HTTP/1.1 server on a socket in the relay's
 * private directory, which nbdkit's curl plugin asks for the ISO's bytes,
 * and the only part of the relay that holds the URL. For each request it
 * asks the ISO server over TLS, verified against the host's trust store
 * (the one QEMU's curl would use), follows redirects only to https URLs on
 * servers `allow` names, and passes on an answer only if http.ts judges it
 * exactly what was asked for; anything else cuts nbdkit's connection, which
 * its retry-request filter turns into a retry.
 *
 * Connections to the server are kept alive and reused, one request at a
 * time each, as curl would. Headers are read up to MAX_HEADER_BYTES; bodies
 * are streamed, never held whole; a server silent for `timeout` seconds is
 * given up on.
 *
 * This module does network I/O; `hook.ts` loads it only in the relay.
 *
 * @module
 */
import { createServer, type Server, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { HookError, printable } from "../errors.ts";
import { MAX_HEADER_BYTES, MAX_REDIRECTS } from "../limits.ts";
import { checkAllowed } from "../policy.ts";
import { certificateProblem, openTls, parseResponseHead, requestHead } from "../preflight/http1.ts";
import { resolveLocation } from "../preflight/preflight.ts";
import type { AllowRule } from "../settings.ts";
import { type IsoUrl, parseIsoUrl } from "../url.ts";
import { VERSION } from "../version.ts";
import {
  type FileFacts,
  frontAnswer,
  type FrontRequest,
  judgeAnswer,
  keepsAlive,
  parseFrontRequest,
  upstreamRange,
  type Verdict,
} from "./http.ts";

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
  const server: Server = createServer((client) => serveClient(client, options, pool));
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
function serveClient(client: Socket, options: FrontOptions, pool: Pool): void {
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
        await answer(parseFrontRequest(head), client, options, pool);
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
    pending = join(pending, chunk);
    if (!busy) next();
  });
  client.on("error", () => client.destroy());
}

/** Answers one request, following redirects; throws to cut the connection. */
async function answer(request: FrontRequest, client: Socket, options: FrontOptions, pool: Pool): Promise<void> {
  let url = options.url;
  for (let redirects = 0; redirects <= MAX_REDIRECTS; redirects++) {
    const range = request.range && upstreamRange(request.range, pool.facts);
    const { upstream, head } = await pool.ask(
      url,
      requestHead(url, { method: request.method, range }, {
        agent: `httpsisoboot-relay/${VERSION}`,
        keepAlive: true,
      }),
    );
    const verdict = judgeAnswer(request, head, pool.facts);
    if (verdict.kind === "redirect") {
      upstream.discard();
      url = redirectTarget(url, verdict, options);
      continue;
    }
    if (verdict.kind === "refused") {
      upstream.discard();
      throw new HookError(`${options.url.redacted}: ${verdict.why}`);
    }
    pool.learn(verdict);
    client.write(frontAnswer(verdict));
    if (verdict.kind === "part") await upstream.pipeBody(verdict.end - verdict.start + 1, client);
    if (keepsAlive(head)) pool.keep(url, upstream);
    else upstream.discard();
    return;
  }
  throw new HookError(`${options.url.redacted} redirects more than ${MAX_REDIRECTS} times`);
}

/** A redirect's target, held to the hook's rules: https, a URL QEMU would fetch as written, on an allowed server. */
function redirectTarget(
  current: IsoUrl,
  verdict: Extract<Verdict, { kind: "redirect" }>,
  options: FrontOptions,
): IsoUrl {
  const where = `${options.url.redacted} redirects (HTTP ${verdict.status}) to`;
  let next: IsoUrl;
  try {
    next = parseIsoUrl(resolveLocation(verdict.location, current));
  } catch {
    throw new HookError(`${where} a URL the hook refuses (not https, or not fetched as written)`);
  }
  checkAllowed(next, options.allow, options.settingsFile, `${where} a server`);
  return next;
}

/** The server's connections: idle ones kept for reuse, and what earlier answers said of the file. */
class Pool {
  readonly facts: FileFacts = {};
  private idle = new Map<string, Upstream[]>();

  constructor(private readonly options: FrontOptions) {}

  /**
   * Sends a request and reads the answer's head. A kept connection the
   * server has closed meanwhile is replaced by a new one, once.
   */
  async ask(url: IsoUrl, request: string): Promise<{ upstream: Upstream; head: ReturnType<typeof parseResponseHead> }> {
    const reused = this.idle.get(origin(url))?.pop();
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
    this.facts.version ??= verdict.version;
  }

  keep(url: IsoUrl, upstream: Upstream): void {
    const list = this.idle.get(origin(url)) ?? [];
    if (list.length >= MAX_IDLE) return upstream.discard();
    list.push(upstream);
    this.idle.set(origin(url), list);
  }

  closeAll(): void {
    for (const list of this.idle.values()) for (const upstream of list) upstream.discard();
    this.idle.clear();
  }
}

/** A kept connection closed before a byte of the answer came: safe to ask again on a new one. */
class StaleConnection extends Error {}

/** One TLS connection to the ISO server, read one answer at a time. */
class Upstream {
  private pending: Uint8Array = new Uint8Array();
  private waiting?: () => void;
  private ended = false;
  private failure?: Error;
  private timedOut = false;
  private answered = false;

  private constructor(private readonly socket: TLSSocket, private readonly where: string, timeoutMs: number) {
    socket.on("data", (chunk: Uint8Array) => {
      this.pending = join(this.pending, chunk);
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
    socket.on("error", (error: Error) => {
      this.failure = error;
      this.wake();
    });
    socket.setTimeout(timeoutMs, () => {
      this.timedOut = true;
      this.failure = new HookError(`${where} sent nothing for ${timeoutMs / 1000} s (timeout)`);
      this.wake();
    });
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

  /** Sends a request head and reads the answer's head, at most MAX_HEADER_BYTES. */
  async request(head: string): Promise<ReturnType<typeof parseResponseHead>> {
    const wasUsed = this.answered;
    this.socket.write(head);
    for (;;) {
      const end = indexOfBlankLine(this.pending);
      if (end >= 0) {
        if (end > MAX_HEADER_BYTES) {
          throw new HookError(`${this.where} sent more than ${MAX_HEADER_BYTES} bytes of headers`);
        }
        const text = new TextDecoder("latin1").decode(this.pending.subarray(0, end));
        this.pending = this.pending.slice(end + 4);
        this.answered = true;
        const answer = parseResponseHead(text);
        if (answer.status >= 100 && answer.status < 200) continue;
        return answer;
      }
      if (this.pending.length > MAX_HEADER_BYTES) {
        throw new HookError(`${this.where} sent more than ${MAX_HEADER_BYTES} bytes of headers`);
      }
      if (this.failure || this.ended) {
        // Closed (or reset) between answers, as a server may close an idle kept connection.
        if (wasUsed && this.pending.length === 0 && !this.timedOut) throw new StaleConnection();
        throw this.failure ?? new HookError(`${this.where} closed the connection before answering`);
      }
      await this.wait();
    }
  }

  /** Passes exactly `length` body bytes to the client, at the client's pace. */
  async pipeBody(length: number, client: Socket): Promise<void> {
    let left = length;
    while (left > 0) {
      if (this.pending.length > 0) {
        const take = this.pending.subarray(0, Math.min(left, this.pending.length));
        this.pending = this.pending.slice(take.length);
        left -= take.length;
        if (!client.write(take)) await this.drained(client);
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) {
        throw new HookError(`${this.where} cut the answer short: ${length - left} of ${length} bytes`);
      }
      await this.wait();
    }
  }

  discard(): void {
    this.socket.destroy();
  }

  /** Waits for the client to take what it was given, holding the server meanwhile. */
  private async drained(client: Socket): Promise<void> {
    if (client.destroyed) throw new HookError("nbdkit closed its connection");
    this.socket.pause();
    try {
      await new Promise<void>((resolve, reject) => {
        const closed = () => reject(new HookError("nbdkit closed its connection"));
        client.once("close", closed);
        client.once("drain", () => {
          client.off("close", closed);
          resolve();
        });
      });
    } finally {
      this.socket.resume();
    }
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

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}
