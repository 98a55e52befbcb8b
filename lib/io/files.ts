// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The file I/O that hook.ts and the relay's control share: bounded reads of
 * regular files, lock files that are waited for, and messages for EACCES
 * that name the user the hook runs as.
 *
 * This module does file I/O.
 *
 * @module
 */
import process from "node:process";
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { FileError, LimitError } from "../errors.ts";
import { LOCK_POLL_MS, LOCK_WAIT_MS } from "../limits.ts";

/**
 * Reads a regular file, at most `maxBytes`. A FIFO, device, socket or
 * directory is refused before a byte is read (the open does not block on a
 * FIFO), and so is a symbolic link unless `followSymlinks`.
 */
export function readRegularFile(
  path: string,
  options: { maxBytes: number; followSymlinks: boolean; what: string },
): { bytes: Uint8Array; stats: Stats } {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (options.followSymlinks ? 0 : constants.O_NOFOLLOW);
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (error) {
    const code = errorCode(error);
    const hint = code === "ELOOP"
      ? " (a symbolic link; VDSM passes a regular file)"
      : code === "EACCES"
      ? accessHint(path, "read")
      : "";
    throw new FileError(`cannot read ${options.what} '${path}': ${code}${hint}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      throw new FileError(`${options.what} '${path}' is not a regular file; give the path of a file`);
    }
    if (stats.size > options.maxBytes) {
      throw new LimitError(
        `${options.what} '${path}' is larger than ${options.maxBytes} bytes, the most the hook reads`,
      );
    }
    return { bytes: readAtMost(fd, options.maxBytes, `${options.what} '${path}'`), stats };
  } finally {
    closeSync(fd);
  }
}

/** Reads until end of file, refusing more than `maxBytes` (a file that grows as it is read). */
function readAtMost(fd: number, maxBytes: number, what: string): Uint8Array {
  const buffer = new Uint8Array(Math.min(maxBytes + 1, 64 * 1024));
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (
    let read = readSync(fd, buffer, 0, buffer.length, null);
    read > 0;
    read = readSync(fd, buffer, 0, buffer.length, null)
  ) {
    total += read;
    if (total > maxBytes) throw new LimitError(`${what} is larger than ${maxBytes} bytes, the most the hook reads`);
    chunks.push(buffer.slice(0, read));
  }
  return concat(chunks);
}

/**
 * Takes a lock file: created exclusively, holding the holder's pid. A lock
 * another httpsisoboot holds is waited for, LOCK_WAIT_MS at most; one that
 * still names its holder after that holder is gone (killed) is named with
 * its pid, never broken here: two waiters breaking one lock would both go
 * on. Returns the function that releases it.
 *
 * @param lockPath The lock file.
 * @param subject What it locks, for messages: "the domain XML '/tmp/x'".
 * @throws {FileError} If it cannot be taken in time, or its directory cannot be written.
 */
export function takeLock(lockPath: string, subject: string): () => void {
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const fd = tryCreate(lockPath, subject);
    if (fd !== undefined) {
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lockPath);
        } catch { /* already gone: nothing to release */ }
      };
    }
    const holder = lockHolder(lockPath);
    // Read again once the holder is seen gone: a holder that released the
    // lock and ended in between took its pid with it, and is no killed hook.
    if (holder !== undefined && !isRunning(holder) && lockHolder(lockPath) === holder) {
      throw new FileError(
        `the lock ${lockPath} on ${subject} was left by pid ${holder}, which is not running (a killed httpsisoboot); remove it`,
      );
    }
    if (Date.now() >= until) {
      throw new FileError(
        `another httpsisoboot (pid ${holder ?? "unknown"}) held the lock ${lockPath} on ${subject} for more than ${
          LOCK_WAIT_MS / 1000
        } s; start the VM again`,
      );
    }
    sleepMs(LOCK_POLL_MS);
  }
}

/** The lock's descriptor, or undefined when another run holds it. */
function tryCreate(lockPath: string, subject: string): number | undefined {
  try {
    return openSync(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = errorCode(error);
    if (code === "EEXIST") return undefined;
    const hint = code === "EACCES"
      ? accessHint(dirname(lockPath), "write")
      : `; the hook needs write access to ${dirname(lockPath)}`;
    throw new FileError(`cannot lock ${subject}: ${code}${hint}`);
  }
}

/** The pid a lock file holds; undefined while its holder has not written it yet, or if it is not a pid. */
function lockHolder(lockPath: string): number | undefined {
  try {
    const { bytes } = readRegularFile(lockPath, { maxBytes: 16, followSymlinks: false, what: "the lock" });
    const text = new TextDecoder().decode(bytes);
    return /^[1-9][0-9]{0,9}\n$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a process runs (one of another user's too). A zombie does not: it
 * has ended, and only waits for its parent, or for init when it was
 * detached, to reap it, which some inits do only every second or two.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (errorCode(error) !== "EPERM") return false;
  }
  try {
    // The state follows the command name in parentheses, which may itself hold ") ".
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Blocks the thread: the hook is a short synchronous program, and a timer would need the event loop. */
export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Joins byte chunks. Not Buffer.concat: node:buffer costs Bun about 1.5 ms to load, on every VM start. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

/**
 * What an admin needs after EACCES: who the hook runs as (VDSM runs it as
 * vdsm, uid 36, not root), and the file's mode and owner. Read only on this
 * error path.
 */
export function accessHint(path: string, access: "read" | "write" | "search"): string {
  const uid = process.getuid?.() ?? -1;
  let file = "";
  try {
    const stats = statSync(path);
    file = `; it is mode ${(stats.mode & 0o7777).toString(8).padStart(4, "0")}, owner ${
      userName(stats.uid)
    }:${stats.gid}`;
  } catch { /* not even stat-able: say what we know */ }
  const example = access === "read"
    ? `chmod 0644 '${path}'`
    : access === "search"
    ? `chmod 0755 '${path}'`
    : `chown ${userName(uid)} '${path}'`;
  return ` (the hook runs as ${userName(uid)}, uid ${uid}, and needs to ${access} it${file}); ` +
    `give ${userName(uid)} ${access} access, for example ${example}`;
}

/** A user's name from /etc/passwd, or the number. */
export function userName(uid: number): string {
  try {
    const entry = readFileSync("/etc/passwd", "utf8").split("\n").find((line) => line.split(":")[2] === String(uid));
    return entry?.split(":")[0] || String(uid);
  } catch {
    return String(uid);
  }
}

/** The name of group `gid`, from /etc/group; the number when it has none. */
export function groupName(gid: number): string {
  try {
    const entry = readFileSync("/etc/group", "utf8").split("\n").find((line) => line.split(":")[2] === String(gid));
    return entry?.split(":")[0] || String(gid);
  } catch {
    return String(gid);
  }
}

/** A Node error's code, such as ENOENT; EIO when it has none that looks like one. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^[A-Z0-9_]{1,32}$/.test(code) ? code : "EIO";
}
