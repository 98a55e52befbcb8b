// SPDX-License-Identifier: GPL-2.0-or-later
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { connect } from "node:net";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { NbdInfo } from "../../lib/relay/nbd.ts";
import { RelayError } from "../../lib/errors.ts";
import { workDir } from "../support/mod.ts";

/** Bytes from big-endian fields: [bytes, value] pairs. */
function bytes(...fields: Array<[number, number | bigint]>): Uint8Array {
  const out = new Uint8Array(fields.reduce((total, [size]) => total + size, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const [size, value] of fields) {
    if (size === 8) view.setBigUint64(at, BigInt(value));
    else if (size === 4) view.setUint32(at, Number(value));
    else view.setUint16(at, Number(value));
    at += size;
  }
  return out;
}

const GREETING = bytes([8, 0x4e42444d41474943n], [8, 0x49484156454f5054n], [2, 3]);
const reply = (type: number, data: Uint8Array = new Uint8Array()) => {
  const head = bytes([8, 0x3e889045565a9n], [4, 6], [4, type], [4, data.length]);
  const all = new Uint8Array(head.length + data.length);
  all.set(head);
  all.set(data, head.length);
  return all;
};
const EXPORT_INFO = reply(3, bytes([2, 0], [8, 37042176n], [2, 1]));
const ACK = reply(1);

/** Feeds `stream` one byte at a time: the handshake must not care how the bytes arrive. */
function feed(client: NbdInfo, ...stream: Uint8Array[]): { sent: Uint8Array[]; size?: number } {
  const sent: Uint8Array[] = [];
  let size: number | undefined;
  for (const part of stream) {
    for (const byte of part) {
      const step = client.push(new Uint8Array([byte]));
      if (step.send) sent.push(step.send);
      if (step.size !== undefined) size = step.size;
    }
  }
  return { sent, size };
}

describe("NbdInfo", () => {
  test("NbdInfo asks NBD_OPT_INFO for the default export, reads its size, and aborts", () => {
    const { sent, size } = feed(new NbdInfo(), GREETING, EXPORT_INFO, ACK);
    assert.equal(size, 37042176);
    assert.deepEqual(
      sent[0],
      new Uint8Array([...bytes([4, 3], [8, 0x49484156454f5054n], [4, 6], [4, 6]), 0, 0, 0, 0, 0, 0]),
    );
    assert.deepEqual(sent[1], bytes([8, 0x49484156454f5054n], [4, 2], [4, 0]), "NBD_OPT_ABORT");
  });

  /** [what, the server's bytes, the words] */
  const BAD: Array<[string, Uint8Array[], RegExp]> = [
    ["a server that is not NBD", [new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n\r\n\r\n")], /does not speak NBD/],
    ["an old-style server", [bytes([8, 0x4e42444d41474943n], [8, 0x49484156454f5054n], [2, 0])], /not fixed newstyle/],
    [
      "an error reply (the plugin could not open)",
      [GREETING, reply(0x80000001, new TextEncoder().encode("no"))],
      /refused the export, error 1/,
    ],
    ["an ACK without the size", [GREETING, ACK], /gave no export size/],
    ["an oversized reply", [GREETING, bytes([8, 0x3e889045565a9n], [4, 6], [4, 3], [4, 1 << 20])], /oversized reply/],
  ];
  for (const [what, stream, words] of BAD) {
    test(`NbdInfo refuses ${what}`, () => {
      assert.throws(
        () => feed(new NbdInfo(), ...stream),
        (error: Error) => error instanceof RelayError && words.test(error.message),
      );
    });
  }
});

const nbdkit = ["/usr/sbin/nbdkit", "/usr/bin/nbdkit"].find((path) => existsSync(path));
describe("NbdInfo against nbdkit itself", {
  skip: nbdkit ? undefined : "nbdkit is not installed; npm test installs it",
}, () => {
  const work = workDir("nbd");
  const socket = join(work, "memory.sock");
  const server = nbdkit
    ? spawn(nbdkit, ["--foreground", "--readonly", "--unix", socket, "memory", "12345678"])
    : undefined;
  after(() => server?.kill());

  test("NbdInfo reads the size nbdkit serves", async () => {
    for (let i = 0; i < 200 && !existsSync(socket); i++) spawnSync("sleep", ["0.02"]);
    const size = await new Promise<number>((resolve, reject) => {
      const client = new NbdInfo();
      const connection = connect({ path: socket });
      connection.on("data", (chunk: Uint8Array) => {
        try {
          const step = client.push(chunk);
          if (step.send) connection.write(step.send);
          if (step.size !== undefined) {
            connection.end();
            resolve(step.size);
          }
        } catch (error) {
          reject(error);
        }
      });
      connection.on("error", reject);
    });
    assert.equal(size, 12345678);
  });
});
