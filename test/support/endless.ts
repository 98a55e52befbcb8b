// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A hostile ISO server's answers: HEAD as QEMU wants it, then a 200 with an
 * endless body to the ranged GET. Used by the hostile suite in process, and
 * run as a script by `npm run bench`:
 *   node --import tsx test/support/endless.ts CERT KEY PORT_FILE
 */
import { createServer, type TLSSocket } from "node:tls";
import { readFileSync, writeFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import process from "node:process";

/** The answer to HEAD: a size and byte ranges, as QEMU needs. */
export const GOOD_HEAD = 'HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nAccept-Ranges: bytes\r\nETag: "e1"\r\n\r\n';

/** Answers one request: HEAD well; anything else with a 200 and 1 MiB chunks for as long as the socket lasts. */
export function answerEndless(socket: TLSSocket, request: string): void {
  if (request.startsWith("HEAD")) return void socket.write(GOOD_HEAD);
  socket.write("HTTP/1.1 200 OK\r\n\r\n");
  const chunk = Buffer.alloc(1 << 20, 0x41);
  const pump = () => {
    while (!socket.destroyed && socket.write(chunk));
    if (!socket.destroyed) socket.once("drain", pump);
  };
  pump();
}

/** Calls `answer` for each request on each connection, as the requests' heads come in. */
export function eachRequest(socket: TLSSocket, answer: (socket: TLSSocket, request: string) => void): void {
  let buffered = "";
  socket.on("error", () => {});
  socket.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("latin1");
    for (let end = buffered.indexOf("\r\n\r\n"); end >= 0; end = buffered.indexOf("\r\n\r\n")) {
      const request = buffered.slice(0, end);
      buffered = buffered.slice(end + 4);
      answer(socket, request);
    }
  });
}

if (import.meta.main ?? (process.argv[1]?.endsWith("endless.ts") && process.argv.length === 5)) {
  const [cert, key, portFile] = process.argv.slice(2);
  const server = createServer(
    { cert: readFileSync(cert), key: readFileSync(key) },
    (socket) => eachRequest(socket, answerEndless),
  );
  server.listen(0, "127.0.0.1", () => writeFileSync(portFile, String((server.address() as { port: number }).port)));
}

/** The size of the file the hostile answers below pretend to serve: 64 MiB. */
export const HOSTILE_SIZE = 64 << 20;

/** What a hostile server does to the relay, each bounded (1 GiB, 30 s a connection) so that the tests end. */
export const HOSTILE_MODES = ["junk-after-head", "overlong-206", "endless-headers", "trickle"] as const;
export type HostileMode = typeof HOSTILE_MODES[number];

const HOSTILE_HEAD =
  `HTTP/1.1 200 OK\r\nContent-Length: ${HOSTILE_SIZE}\r\nAccept-Ranges: bytes\r\nETag: "hostile"\r\n\r\n`;

/** The relay's first request (upstream.ts's PROBE): its size question, answered well by every mode. */
const PROBE_RANGE = /\r\nrange: bytes=0-34815\b/i;

/**
 * Answers as a hostile ISO server: a good HEAD and a good answer to the
 * relay's first request (its size question), then `mode`:
 * - junk-after-head: bytes with no request in flight, as fast as the socket takes them;
 * - overlong-206: a right 206 head, then a body that never ends;
 * - endless-headers: a 206 whose headers never end;
 * - trickle: a right 206 head, then a byte every 200 ms.
 */
export function answerHostile(mode: HostileMode): (socket: TLSSocket, request: string) => void {
  return (socket, request) => {
    if (request.startsWith("HEAD")) {
      socket.write(HOSTILE_HEAD);
      if (mode === "junk-after-head") pump(socket, Buffer.alloc(1 << 20, 0x4a));
      return;
    }
    const [start, end] = /range: bytes=(\d+)-(\d+)/i.exec(request)?.slice(1).map(Number) ?? [0, 0];
    const head = `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${end}/${HOSTILE_SIZE}\r\n` +
      `Content-Length: ${end - start + 1}\r\nETag: "hostile"\r\n`;
    if (PROBE_RANGE.test(request)) {
      socket.write(`${head}\r\n`);
      socket.write(Buffer.alloc(end - start + 1, 0x42));
      if (mode === "junk-after-head") pump(socket, Buffer.alloc(1 << 20, 0x4a));
      return;
    }
    if (mode === "endless-headers") return pump(socket, Buffer.from(`${head}${"X-Pad: y\r\n".repeat(10_000)}`));
    socket.write(`${head}\r\n`);
    if (mode === "overlong-206" || mode === "junk-after-head") pump(socket, Buffer.alloc(1 << 20, 0x42));
    if (mode === "trickle") {
      const timer = setInterval(() => socket.destroyed ? clearInterval(timer) : socket.write("t"), 200);
      setTimeout(() => clearInterval(timer), 30_000);
    }
  };
}

/** Writes `chunk` again and again as fast as the socket drains: 1 GiB or 30 s at most. */
function pump(socket: TLSSocket, chunk: Uint8Array): void {
  let sent = 0;
  const until = Date.now() + 30_000;
  const more = () => {
    while (!socket.destroyed && sent < 2 ** 30 && Date.now() < until && socket.write(chunk)) sent += chunk.length;
    if (!socket.destroyed && sent < 2 ** 30 && Date.now() < until) socket.once("drain", more);
  };
  more();
}
