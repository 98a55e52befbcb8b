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
