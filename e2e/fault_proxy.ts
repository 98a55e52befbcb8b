// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A fault-injecting TCP proxy for loopback: QEMU talks TLS to nginx through
 * it, and it never looks inside the stream. The kernel here has no netem, so
 * faults are made in user space:
 * - latency: each chunk from the client (each request) waits `ms` first;
 * - stall: after `afterBytes` from the server, the server's stream is held
 *   for `seconds`, once;
 * - reset: after `afterBytes` from the server, the connection is reset, once;
 * - trickle: the server's stream goes at most `bytesPerSecond`.
 *
 * It runs in a process of its own ({@link spawnFaultProxy}): the suite calls
 * virsh and the hook synchronously, which would stall a proxy that shared
 * its event loop.
 */
import { createServer, type Server, Socket } from "node:net";
import { type ChildProcess, fork } from "node:child_process";
import process from "node:process";

export type Fault =
  | { mode: "none" }
  | { mode: "latency"; ms: number }
  | { mode: "stall"; afterBytes: number; seconds: number }
  | { mode: "reset"; afterBytes: number }
  | { mode: "trickle"; bytesPerSecond: number };

export interface ProxyStats {
  /** Bytes sent from the server to clients since the last set(). */
  serverBytes: number;
  connections: number;
  /** Whether the one-time fault (stall, reset) happened. */
  fired: boolean;
}

export interface FaultProxy {
  port: number;
  /** Changes the fault for what flows from now on, and zeroes the counters. */
  set(fault: Fault): Promise<void>;
  stats(): Promise<ProxyStats>;
  close(): Promise<void>;
}

/** Starts the proxy in a child process, forwarding 127.0.0.1:port to 127.0.0.1:`target`. */
export function spawnFaultProxy(target: number): Promise<FaultProxy> {
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, [String(target)], {
    execArgv: process.execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let waiting: ((message: unknown) => void) | undefined;
  child.on("message", (message) => waiting?.(message));
  const ask = <T>(message: unknown): Promise<T> =>
    new Promise((resolve) => {
      waiting = resolve as (message: unknown) => void;
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
            child.once("exit", () => done());
            child.kill();
          }),
      });
  });
}

/** The fault in force, and what it did since it was set. */
class Faults {
  fault: Fault = { mode: "none" };
  serverBytes = 0;
  connections = 0;
  fired = false;
  holdUntil = 0;

  set(next: Fault): void {
    Object.assign(this, { fault: next, serverBytes: 0, connections: 0, fired: false, holdUntil: 0 });
  }

  stats(): ProxyStats {
    return { serverBytes: this.serverBytes, connections: this.connections, fired: this.fired };
  }

  /** Applies the fault to one chunk from the server; false when the connection was cut instead. */
  async beforeServerChunk(chunk: Buffer, client: Socket, upstream: Socket): Promise<boolean> {
    const fault = this.fault;
    const crosses = !this.fired && "afterBytes" in fault && this.serverBytes + chunk.length > fault.afterBytes;
    if (fault.mode === "stall" && crosses) {
      this.fired = true;
      this.holdUntil = Date.now() + fault.seconds * 1000;
    }
    if (Date.now() < this.holdUntil) await sleep(this.holdUntil - Date.now());
    if (fault.mode === "reset" && crosses) {
      this.fired = true;
      client.resetAndDestroy();
      upstream.destroy();
      return false;
    }
    if (fault.mode === "trickle") await sleep((chunk.length / fault.bytesPerSecond) * 1000);
    this.serverBytes += chunk.length;
    return true;
  }
}

/** The proxy itself, in this process. */
function startFaultProxy(target: number): Promise<{ port: number; set(fault: Fault): void; stats(): ProxyStats }> {
  const faults = new Faults();
  const server: Server = createServer((client) => {
    faults.connections++;
    relay(client, target, faults);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as { port: number }).port,
        set: (next) => faults.set(next),
        stats: () => faults.stats(),
      });
    });
  });
}

/** Connects a client to the target and relays both ways, with the fault applied. */
function relay(client: Socket, target: number, faults: Faults): void {
  const upstream = new Socket();
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", closeBoth);
  upstream.on("error", closeBoth);
  upstream.connect(target, "127.0.0.1");
  clientToServer(client, upstream, faults);
  const serverQueue = serverToClient(upstream, client, faults);
  client.on("close", () => serverQueue().then(closeBoth));
  upstream.on("close", () => serverQueue().then(() => client.end()));
}

/** Client to server: delayed per chunk in latency mode, in order; an end is passed on once all is through. */
function clientToServer(client: Socket, upstream: Socket, faults: Faults): void {
  let queue = Promise.resolve();
  client.on("data", (chunk) => {
    const delay = faults.fault.mode === "latency" ? faults.fault.ms : 0;
    queue = queue.then(() => sleep(delay)).then(() => {
      if (!upstream.destroyed) upstream.write(chunk);
    });
  });
  client.on("end", () => {
    queue = queue.then(() => {
      upstream.end();
    });
  });
}

/** Server to client: counted, and held, cut or slowed as the fault says. Returns the queue's tail. */
function serverToClient(upstream: Socket, client: Socket, faults: Faults): () => Promise<void> {
  let queue = Promise.resolve();
  upstream.on("data", (chunk: Buffer) => {
    upstream.pause();
    queue = queue.then(async () => {
      if (!(await faults.beforeServerChunk(chunk, client, upstream))) return;
      if (!client.destroyed) client.write(chunk);
      upstream.resume();
    });
  });
  upstream.on("end", () => {
    queue = queue.then(() => {
      client.end();
    });
  });
  return () => queue;
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

// Run by spawnFaultProxy(): serve, and answer the suite over IPC.
if (process.send && process.argv[2] && import.meta.url.endsWith(process.argv[1]?.split("/").pop() ?? "-")) {
  const proxy = await startFaultProxy(Number(process.argv[2]));
  process.on("message", (message: { set?: Fault; stats?: boolean }) => {
    if (message.set) {
      proxy.set(message.set);
      process.send!({ ok: true });
    } else if (message.stats) {
      process.send!(proxy.stats());
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ port: proxy.port });
}
