// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { isRunning, processStart } from "../../../edge/io/processes.ts";
import { readRegularFile, readRegularFileInto } from "../../../edge/io/files.ts";
import { takeLock } from "../../../edge/io/lock.ts";
import { LimitError } from "../../../lib/errors.ts";
import { workDir } from "../../support/mod.ts";

const work = workDir("files");

describe("isRunning()", () => {
  test("isRunning() is true for a live process and false for one that ended", () => {
    assert.equal(isRunning(process.pid), true);
    const ended = spawnSync("true");
    assert.equal(isRunning(ended.pid!), false);
  });

  test("isRunning() is false for a zombie, which has ended and waits only to be reaped", async () => {
    // sh runs `true` in the background and execs sleep, which never reaps it: `true` stays a zombie.
    const parent = spawn("sh", ["-c", "true & exec sleep 5"]);
    try {
      let zombie: number | undefined;
      for (let i = 0; i < 100 && zombie === undefined; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const children = existsSync(`/proc/${parent.pid}/task/${parent.pid}/children`)
          ? readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean)
          : [];
        zombie = children.map(Number).find((pid) => /\) Z /.test(readFileSync(`/proc/${pid}/stat`, "latin1")));
      }
      assert.ok(zombie, "the zombie was made");
      assert.equal(isRunning(zombie!), false);
    } finally {
      parent.kill();
    }
  });
});

describe("takeLock()", () => {
  test("takeLock() waits for another holder to let go, then takes the lock with its own pid", () => {
    const lock = join(work, "wait.lock");
    // The holder lets go 300 ms after it sees its lock, which the test writes
    // for it before it asks: the lock is held when takeLock() begins, however
    // slowly either process runs, and takeLock() blocks the thread meanwhile.
    const holder = spawn("sh", ["-c", `while [ ! -s ${lock} ]; do sleep 0.01; done; sleep 0.3; rm ${lock}`]);
    writeFileSync(lock, `${holder.pid}\n`);
    const release = takeLock(lock, "the test");
    assert.equal(
      readFileSync(lock, "utf8"),
      `${process.pid} ${processStart(process.pid)}\n`,
      "taken once the holder let go, not broken",
    );
    release();
    assert.equal(existsSync(lock), false);
  });

  test("takeLock() takes over a lock whose holder was killed: no lock outlives a killed hook", () => {
    const lock = join(work, "stale.lock");
    const gone = spawnSync("true").pid!;
    writeFileSync(lock, `${gone}\n`);
    const release = takeLock(lock, "the domain XML '/x'");
    assert.equal(readFileSync(lock, "utf8"), `${process.pid} ${processStart(process.pid)}\n`);
    release();
    assert.deepEqual(readdirSync(work).filter((name) => name.startsWith("stale.lock")), [], "nothing left beside it");
  });

  test("takeLock() takes over a lock whose pid now names another process (its start time differs)", () => {
    const lock = join(work, "reused.lock");
    const other = spawn("sleep", ["5"]);
    try {
      writeFileSync(lock, `${other.pid} 1\n`); // the pid runs, but did not start at tick 1
      const began = Date.now();
      takeLock(lock, "the domain XML '/x'")();
      assert.ok(Date.now() - began < 1000, "not waited for");
    } finally {
      other.kill();
    }
  });
});

describe("processStart()", () => {
  test("processStart() is a process's start time, the same on every read, and undefined once it is gone", () => {
    const child = spawnSync("true");
    assert.match(processStart(process.pid)!, /^[0-9]+$/);
    assert.equal(processStart(process.pid), processStart(process.pid));
    assert.equal(processStart(child.pid!), undefined);
  });
});

describe("readRegularFile()", () => {
  test("readRegularFile() reads up to its limit, and refuses a directory and a larger file", () => {
    const path = join(work, "small");
    writeFileSync(path, "0123456789");
    assert.equal(
      new TextDecoder().decode(readRegularFile(path, { maxBytes: 10, followSymlinks: false, what: "x" }).bytes),
      "0123456789",
    );
    assert.throws(() => readRegularFile(path, { maxBytes: 9, followSymlinks: false, what: "x" }), LimitError);
    assert.throws(
      () => readRegularFile(work, { maxBytes: 9, followSymlinks: false, what: "x" }),
      /is not a regular file/,
    );
    assert.ok(readdirSync(work).length > 0);
  });

  test("readRegularFile() reads a file whole in one buffer, and past the size fstat gave as the file grows, up to its limit", () => {
    const block = join(work, "block");
    const bytes = Uint8Array.from({ length: (1 << 20) + 33 }, (_, i) => (i * 31) % 251);
    writeFileSync(block, bytes);
    assert.deepEqual(readRegularFile(block, { maxBytes: bytes.length, followSymlinks: false, what: "x" }).bytes, bytes);
    // A /proc file says it has 0 bytes, and has more: what a file that grows after fstat looks like.
    const status = readRegularFile("/proc/self/status", { maxBytes: 64 * 1024, followSymlinks: false, what: "x" });
    assert.equal(status.stats.size, 0);
    assert.match(new TextDecoder().decode(status.bytes), /^Name:[\s\S]*\nPid:\s+\d+\n[\s\S]*\n$/);
    assert.throws(
      () => readRegularFile("/proc/self/status", { maxBytes: 16, followSymlinks: false, what: "x" }),
      LimitError,
    );
  });
});

describe("readRegularFileInto()", () => {
  test("readRegularFileInto() fills the buffers it is given, in order, from a file of exactly their size", () => {
    const path = join(work, "into");
    const bytes = Uint8Array.from({ length: (1 << 20) + 32 }, (_, i) => (i * 7) % 253);
    writeFileSync(path, bytes);
    const head = new Uint8Array(32);
    const body = new Uint8Array(1 << 20).fill(0xee);
    readRegularFileInto(path, [head, body], { followSymlinks: false, what: "x" });
    assert.deepEqual(head, bytes.subarray(0, 32));
    assert.deepEqual(body, bytes.subarray(32));
  });

  test("readRegularFileInto() refuses a file of another size, a directory and a symbolic link, and leaves the buffers as they were", () => {
    const path = join(work, "short");
    writeFileSync(path, new Uint8Array(100).fill(1));
    const buffer = new Uint8Array(101);
    assert.throws(
      () => readRegularFileInto(path, [buffer], { followSymlinks: false, what: "x" }),
      /has 100 bytes, not 101/,
    );
    assert.throws(
      () => readRegularFileInto(path, [buffer.subarray(0, 99)], { followSymlinks: false, what: "x" }),
      LimitError,
    );
    assert.throws(
      () => readRegularFileInto(work, [buffer], { followSymlinks: false, what: "x" }),
      /not a regular file/,
    );
    const link = join(work, "short.link");
    symlinkSync(path, link);
    assert.throws(
      () => readRegularFileInto(link, [buffer.subarray(0, 100)], { followSymlinks: false, what: "x" }),
      /ELOOP/,
    );
    assert.ok(buffer.every((byte) => byte === 0));
  });
});
