// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A fault-injecting HTTPS proxy for loopback, in front of nginx: it ends
 * TLS with a certificate the run's CA signed, reads each HTTP/1.1 request
 * and answer (keep-alive kept), and breaks the flow of answer bodies as it
 * is told. The kernel here has no netem, so faults are made in user space.
 * Byte counts are of body bytes served, all connections together, since the
 * fault was set:
 *
 * - latency: each request waits `ms` before it is passed on;
 * - stall: once past `afterBytes`, the answer is held for `seconds`;
 * - reset: once past `afterBytes` (and again every `every` bytes when
 *   given), the client's connection is reset mid-body;
 * - status: the first request once past `afterBytes`, or the first ranged
 *   GET for bytes at or past `afterBytes` of the file, gets `code` (a 503)
 *   from the proxy itself, once;
 * - ignore-range: the first ranged GET once past `afterBytes`, or for bytes
 *   at or past it, goes to the server without its Range, so the client gets
 *   a 200 with the whole file.
 *   The offset makes these two happen whatever the timing: a client that
 *   reads ahead may have asked for the whole file before `afterBytes` came;
 * - trickle: answers flow at `bytesPerSecond`;
 * - link: a link of `bytesPerSecond` shared by every connection, each
 *   request waiting `ms` first (its round trip): a remote server's.
 *
 * It runs in a process of its own ({@link spawnFaultProxy}): the suites
 * call virsh and the hook synchronously, which would stall a proxy that
 * shared their event loop.
 */
import { createServer, type Server, type TLSSocket } from "node:tls";
import { connect } from "node:tls";
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { Buffer } from "node:buffer";

export type Fault =
  | { mode: "none" }
  | { mode: "latency"; ms: number }
  | { mode: "stall"; afterBytes: number; seconds: number }
  | { mode: "reset"; afterBytes: number; every?: number }
  | { mode: "status"; afterBytes: number; code: number }
  | { mode: "ignore-range"; afterBytes: number }
  | { mode: "trickle"; bytesPerSecond: number }
  | { mode: "link"; ms: number; bytesPerSecond: number };

export interface ProxyStats {
  /** Body bytes sent to clients since the last set(). */
  bodyBytes: number;
  connections: number;
  /** Requests passed on to the server, by method and whether ranged: "GET range", "HEAD". */
  requests: Record<string, number>;
  /** How many times the fault happened (resets, stalls, statuses, dropped ranges). */
  fired: number;
}

export interface FaultProxy {
  port: number;
  /** Changes the fault for what flows from now on, and zeroes the counters. */
  set(fault: Fault): Promise<void>;
  stats(): Promise<ProxyStats>;
  close(): Promise<void>;
}

/** What the proxy needs: its certificate, and the server it passes requests on to. */
export interface ProxyOptions {
  cert: string;
  key: string;
  /** The server's port on 127.0.0.1, and the CA it is signed by. */
  targetPort: number;
  targetCa: string;
}

/** Starts the proxy in a child process. */
export function spawnFaultProxy(options: ProxyOptions): Promise<FaultProxy> {
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, [JSON.stringify(options)], {
    execArgv: process.execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let waiting: ((message: unknown) => void) | undefined;
  let gone: ((error: Error) => void) | undefined;
  child.on("message", (message) => waiting?.(message));
  child.on("exit", () => gone?.(new Error("the fault proxy has exited")));
  const ask = <T>(message: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        return reject(new Error("the fault proxy has exited"));
      }
      waiting = resolve as (message: unknown) => void;
      gone = reject;
      child.send(message as never);
    });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    waiting = (message) =>
      resolve({
        port: (message as { port: number }).port,
        set: (fault) => ask<void>({ set: fault }),
        stats: () => ask<ProxyStats>({ stats: true }),
        close: () =>
          new Promise((done) => {
            if (child.exitCode !== null) return done();
            child.once("exit", () => done());
            child.kill();
          }),
      });
  });
}

/** The fault in force, and what it did since it was set. */
class Faults {
  fault: Fault = { mode: "none" };
  bodyBytes = 0;
  connections = 0;
  requests: Record<string, number> = {};
  fired = 0;
  private nextReset = 0;
  private pending = false;
  /** When the shared link is free again (performance.now() ms), in link mode. */
  private linkFree = 0;

  /** How long a chunk waits for the shared link, and the link's time it takes. */
  linkWait(bytes: number): number {
    if (this.fault.mode !== "link") return 0;
    const now = performance.now();
    const start = Math.max(now, this.linkFree);
    this.linkFree = start + (bytes / this.fault.bytesPerSecond) * 1000;
    return this.linkFree - now;
  }

  set(next: Fault): void {
    Object.assign(this, { fault: next, bodyBytes: 0, connections: 0, requests: {}, fired: 0, pending: true });
    this.nextReset = "afterBytes" in next ? next.afterBytes : Infinity;
  }

  stats(): ProxyStats {
    return { bodyBytes: this.bodyBytes, connections: this.connections, requests: this.requests, fired: this.fired };
  }

  /**
   * A once-only fault whose moment has come, used up by asking: past
   * `afterBytes` of bodies, or (given the request's Range start) asking for
   * bytes at or past that offset of the file.
   */
  due(mode: Fault["mode"], rangeStart?: number): boolean {
    const fault = this.fault;
    if (fault.mode !== mode || !this.pending || !("afterBytes" in fault)) return false;
    if (this.bodyBytes < fault.afterBytes && !(rangeStart !== undefined && rangeStart >= fault.afterBytes)) {
      return false;
    }
    this.pending = false;
    this.fired++;
    return true;
  }

  /** How much of a body chunk may go before a reset; undefined when none is due in it. */
  resetWithin(length: number): number | undefined {
    const fault = this.fault;
    if (fault.mode !== "reset" || this.bodyBytes + length <= this.nextReset) return undefined;
    if (!fault.every && !this.pending) return undefined;
    const cut = Math.max(0, this.nextReset - this.bodyBytes);
    this.pending = false;
    this.fired++;
    this.nextReset = fault.every ? this.nextReset + fault.every : Infinity;
    return cut;
  }
}

/** The proxy itself, in this process. */
function startFaultProxy(options: ProxyOptions): Promise<{ port: number; faults: Faults }> {
  const faults = new Faults();
  const server: Server = createServer(
    { cert: readFileSync(options.cert), key: readFileSync(options.key) },
    (client) => {
      faults.connections++;
      serve(client, options, faults).catch(() => client.destroy());
    },
  );
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as { port: number }).port, faults }));
  });
}

/** One client connection: its requests in turn, each on the same server connection. */
async function serve(client: TLSSocket, options: ProxyOptions, faults: Faults): Promise<void> {
  const from = new Reader(client);
  const upstream = connect({
    host: "127.0.0.1",
    port: options.targetPort,
    ca: readFileSync(options.targetCa),
    servername: "localhost",
  });
  // Nagle's algorithm off on both sides, as on a real link: with it, every request made one at a time stalled
  // about 40 ms at its tail (delayed ACKs), which cost QEMU's curl, asking one range at a time, a third of its
  // speed here while the relay's parallel GETs hid it.
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  const to = new Reader(upstream);
  // The client's side ends only once all the server sent has been passed on, faults and all.
  client.on("close", () => upstream.destroy());
  for (;;) {
    const request = await from.head();
    if (request === undefined) {
      upstream.end();
      return;
    }
    const method = request.split(" ")[0];
    const ranged = /\r\nrange:/i.test(request);
    const rangeStart = Number(/\r\nrange:\s*bytes=(\d+)-/i.exec(request)?.[1] ?? NaN);
    const start = Number.isNaN(rangeStart) ? undefined : rangeStart;
    if (faults.fault.mode === "latency" || faults.fault.mode === "link") await sleep(faults.fault.ms);
    if (faults.fault.mode === "status" && faults.due("status", start)) {
      const body = "injected by the fault proxy\n";
      client.write(`HTTP/1.1 ${faults.fault.code} Injected\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      continue;
    }
    const dropRange = ranged && faults.due("ignore-range", start);
    const sent = dropRange ? request.replace(/\r\nrange:[^\r]*/i, "") : request;
    const key = `${method}${ranged && !dropRange ? " range" : ""}`;
    faults.requests[key] = (faults.requests[key] ?? 0) + 1;
    upstream.write(`${sent}\r\n\r\n`);
    const answer = await to.head();
    if (answer === undefined) {
      client.end();
      return;
    }
    client.write(`${answer}\r\n\r\n`);
    const length = method === "HEAD" ? 0 : Number(/\r\ncontent-length:\s*(\d+)/i.exec(answer)?.[1] ?? "0");
    if (!(await passBody(to, client, length, faults))) return;
  }
}

/** Passes `length` body bytes with the fault applied; false when the connection was cut. */
async function passBody(from: Reader, client: TLSSocket, length: number, faults: Faults): Promise<boolean> {
  let left = length;
  while (left > 0) {
    const chunk = await from.take(left);
    if (chunk === undefined) {
      client.destroy();
      return false;
    }
    if (faults.due("stall")) await sleep((faults.fault as { seconds: number }).seconds * 1000);
    const cut = faults.resetWithin(chunk.length);
    if (cut !== undefined) {
      if (cut > 0) client.write(chunk.subarray(0, cut));
      faults.bodyBytes += cut;
      await sleep(50);
      client.resetAndDestroy();
      return false;
    }
    if (faults.fault.mode === "trickle") await sleep((chunk.length / faults.fault.bytesPerSecond) * 1000);
    const wait = faults.linkWait(chunk.length);
    if (wait >= LINK_SLEEP_MIN_MS) await sleep(wait);
    faults.bodyBytes += chunk.length;
    left -= chunk.length;
    if (!client.write(chunk)) await new Promise((resolve) => client.once("drain", resolve));
  }
  return true;
}

/**
 * Reads a stream as heads (up to a blank line) and body bytes. The bytes
 * are held as the chunks they came in, and the socket paused past 1 MiB:
 * joining every chunk onto one buffer cost a copy of all that was held per
 * chunk, CPU the bench's relay and QEMU then lacked.
 */
class Reader {
  private chunks: Buffer[] = [];
  private held = 0;
  private waiting?: () => void;
  private ended = false;

  constructor(private readonly socket: TLSSocket) {
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.held += chunk.length;
      if (this.held > READER_HELD_BYTES) socket.pause();
      this.wake();
    });
    for (const event of ["end", "close", "error"]) {
      socket.on(event, () => {
        this.ended = true;
        this.wake();
      });
    }
  }

  /** The next head without its blank line, or undefined at the end. */
  async head(): Promise<string | undefined> {
    for (;;) {
      const pending = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      this.chunks = pending.length > 0 ? [pending] : [];
      const end = pending.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.consumed(end + 4);
        return pending.subarray(0, end).toString("latin1");
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** Up to `most` bytes, as soon as there are any; undefined at the end. */
  async take(most: number): Promise<Buffer | undefined> {
    while (this.held === 0) {
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
    const first = this.chunks[0];
    const chunk = first.subarray(0, Math.min(most, 64 * 1024));
    this.consumed(chunk.length);
    return chunk;
  }

  /** Drops `bytes` from the front of what is held. */
  private consumed(bytes: number): void {
    this.held -= bytes;
    while (bytes > 0) {
      const first = this.chunks[0];
      if (first.length > bytes) {
        this.chunks[0] = first.subarray(bytes);
        break;
      }
      bytes -= first.length;
      this.chunks.shift();
    }
    if (this.held <= READER_HELD_BYTES && this.socket.isPaused()) this.socket.resume();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }
}

/** What a Reader holds before it pauses its socket. */
const READER_HELD_BYTES = 1 << 20;

/**
 * The least debt to the shared link worth a sleep: a timer cannot wait less
 * than 1 ms, so a sleep per 64 KiB chunk (1.3 ms of a 400 Mbit/s link) made
 * each connection slower than the link; the debt is carried until it is
 * worth a timer instead, and the link's own clock (linkFree) keeps the rate.
 */
const LINK_SLEEP_MIN_MS = 4;

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

// Run by spawnFaultProxy(): serve, and answer the suite over IPC.
if (process.send && process.argv[2] && import.meta.url.endsWith(process.argv[1]?.split("/").pop() ?? "-")) {
  const { port, faults } = await startFaultProxy(JSON.parse(process.argv[2]));
  process.on("message", (message: { set?: Fault; stats?: boolean }) => {
    if (message.set) {
      faults.set(message.set);
      process.send!({ ok: true });
    } else if (message.stats) {
      process.send!(faults.stats());
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ port });
}
