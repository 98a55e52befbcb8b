// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The two peers of a relay's front in tests: an ISO server (TLS on
 * loopback, in this process, that counts what it is asked) and nbdkit's
 * side (curl's requests over the front's Unix socket).
 */
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { createServer, type Server, type TLSSocket } from "node:tls";
import { Buffer } from "node:buffer";
import { eachRequest } from "./endless.ts";
import type { ServerCert } from "./tls.ts";
import { RELAY_BLOCK_BYTES } from "../../lib/limits.ts";

/** Every test server's close, for the suite's `after()`: it ends their connections too. */
export const closers: Array<() => void> = [];

/** A TLS server on loopback that answers each request with `answer`; counts connections and requests (line and Range). */
export async function server(cert: ServerCert, answer: (socket: TLSSocket, request: string) => void) {
  /** Connections made, and the most open at once; every request's line and Range, and If-Range. */
  const seen = { connections: 0, mostOpen: 0, requests: [] as string[], ifRange: [] as string[] };
  const sockets = new Set<TLSSocket>();
  const tls: Server = createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (socket) => {
    seen.connections++;
    sockets.add(socket);
    seen.mostOpen = Math.max(seen.mostOpen, sockets.size);
    socket.on("close", () => sockets.delete(socket));
    eachRequest(socket, (socket, request) => {
      const range = /\r\nrange: ([^\r]*)/i.exec(request)?.[1];
      const ifRange = /\r\nif-range: ([^\r]*)/i.exec(request)?.[1];
      if (ifRange) seen.ifRange.push(ifRange);
      seen.requests.push(`${request.split("\r\n")[0]}${range ? ` ${range}` : ""}`);
      answer(socket, request);
    });
  });
  await new Promise<void>((resolve) => tls.listen(0, "127.0.0.1", resolve));
  const close = () => {
    tls.close();
    for (const socket of sockets) socket.destroy();
  };
  closers.push(close);
  /** Closes every open connection, as a server restarted or a load balancer's timeout would. */
  const drop = () => sockets.forEach((socket) => socket.destroy());
  return { port: (tls.address() as { port: number }).port, seen, drop };
}

/** How long a test waits for the front's answers before it gives up on them. */
const ANSWER_WAIT_MS = 10_000;

/** Whether `raw` holds a whole answer to each of `requests` (a HEAD's answer has no body). */
function answered(raw: Buffer, requests: string[]): boolean {
  let at = 0;
  for (const request of requests) {
    const end = raw.indexOf("\r\n\r\n", at);
    if (end < 0) return false;
    const head = raw.subarray(at, end).toString("latin1");
    const length = request.startsWith("HEAD") ? 0 : Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
    at = end + 4 + length;
    if (at > raw.length) return false;
  }
  return true;
}

/**
 * Asks the front as curl does, over one connection: its answers' heads and bodies once each
 * request has its whole answer (`cut` false), or all it sent before it closed the connection
 * (`cut` true).
 */
export function ask(path: string, requests: string[], waitMs = ANSWER_WAIT_MS): Promise<{ raw: Buffer; cut: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the front answered neither in full nor by a cut in ${waitMs} ms`));
    }, waitMs);
    const done = (cut: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ raw: Buffer.concat(chunks), cut });
    };
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      if (answered(Buffer.concat(chunks), requests)) done(false);
    });
    socket.on("close", () => done(true));
    socket.on("error", () => {});
    socket.write(requests.map((request) => `${request}\r\nHost: httpsisoboot-relay\r\n\r\n`).join(""));
  });
}

/** A file of `size` bytes, each block different, seeded so that two files differ. */
export function file(size: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + seed + Math.floor(i / RELAY_BLOCK_BYTES)) % 251));
}

/** What the ISO server has now: its bytes and the headers that say which version they are. */
export interface Served {
  bytes: Buffer;
  /** `ETag: "v1"` or `Last-Modified: …`. */
  validator: string;
}

/**
 * An ISO server that answers HEAD and ranged GETs of `served()`, and 403 to
 * any request whose signature `refused` names: one VM's URL allowed, another's not.
 */
export function isoAnswer(served: () => Served, refused: (sig: string) => boolean = () => false) {
  return (socket: TLSSocket, request: string) => {
    const sig = /[?&]sig=([^ &]*)/.exec(request)?.[1] ?? "";
    if (refused(sig)) return void socket.write("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    const { bytes, validator } = served();
    if (request.startsWith("HEAD")) {
      return void socket.write(
        `HTTP/1.1 200 OK\r\nContent-Length: ${bytes.length}\r\nAccept-Ranges: bytes\r\n${validator}\r\n\r\n`,
      );
    }
    const [start, end] = /range: bytes=(\d+)-(\d+)/i.exec(request)!.slice(1).map(Number);
    const last = Math.min(end, bytes.length - 1);
    socket.write(
      `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${last}/${bytes.length}\r\n` +
        `Content-Length: ${last - start + 1}\r\n${validator}\r\n\r\n`,
    );
    socket.write(bytes.subarray(start, last + 1));
  };
}

/** Every 1 RELAY_BLOCK_BYTES block of a `size`-byte file, as nbdkit would ask for it, on one connection. */
export function wholeFile(size: number): string[] {
  return Array.from(
    { length: Math.ceil(size / RELAY_BLOCK_BYTES) },
    (_, i) =>
      `GET /iso HTTP/1.1\r\nRange: bytes=${i * RELAY_BLOCK_BYTES}-${Math.min((i + 1) * RELAY_BLOCK_BYTES, size) - 1}`,
  );
}

/** The bodies of the front's answers, joined: what the guest would read. */
export function bodies(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < raw.length;) {
    const end = raw.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(raw.subarray(at, end).toString("latin1"))?.[1] ?? 0);
    parts.push(raw.subarray(end + 4, end + 4 + length));
    at = end + 4 + length;
  }
  return Buffer.concat(parts);
}
