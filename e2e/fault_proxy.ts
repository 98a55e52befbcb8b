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

/** The proxy itself, in this process. */
function startFaultProxy(target: number): Promise<{ port: number; set(fault: Fault): void; stats(): ProxyStats }> {
  let fault: Fault = { mode: "none" };
  let serverBytes = 0;
  let connections = 0;
  let fired = false;
  let holdUntil = 0;
  const sockets = new Set<Socket>();

  const server: Server = createServer((client) => {
    connections++;
    const upstream = new Socket();
    sockets.add(client);
    sockets.add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", closeBoth);
    upstream.on("error", closeBoth);
    upstream.connect(target, "127.0.0.1");

    // Client to server: delayed per chunk in latency mode, in order.
    let clientQueue = Promise.resolve();
    client.on("data", (chunk) => {
      const delay = fault.mode === "latency" ? fault.ms : 0;
      clientQueue = clientQueue.then(() => sleep(delay)).then(() => {
        if (!upstream.destroyed) upstream.write(chunk);
      });
    });
    // A side that ends is ended on the other side once what it sent is through.
    client.on("end", () => {
      clientQueue = clientQueue.then(() => {
        upstream.end();
      });
    });

    // Server to client: counted, and held, cut or slowed as the fault says.
    let serverQueue = Promise.resolve();
    upstream.on("data", (chunk: Buffer) => {
      upstream.pause();
      serverQueue = serverQueue.then(async () => {
        if (fault.mode === "stall" && !fired && serverBytes + chunk.length > fault.afterBytes) {
          fired = true;
          holdUntil = Date.now() + fault.seconds * 1000;
        }
        if (Date.now() < holdUntil) await sleep(holdUntil - Date.now());
        if (fault.mode === "reset" && !fired && serverBytes + chunk.length > fault.afterBytes) {
          fired = true;
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        if (fault.mode === "trickle") await sleep((chunk.length / fault.bytesPerSecond) * 1000);
        serverBytes += chunk.length;
        if (!client.destroyed) client.write(chunk);
        upstream.resume();
      });
    });
    upstream.on("end", () => {
      serverQueue = serverQueue.then(() => {
        client.end();
      });
    });
    client.on("close", () => serverQueue.then(closeBoth));
    upstream.on("close", () => serverQueue.then(() => client.end()));
  });

  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as { port: number }).port,
        set(next) {
          fault = next;
          serverBytes = 0;
          connections = 0;
          fired = false;
          holdUntil = 0;
        },
        stats: () => ({ serverBytes, connections, fired }),
      });
    });
  });
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
