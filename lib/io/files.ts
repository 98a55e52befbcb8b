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
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { tempFileName } from "../paths.ts";
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
 * Takes a lock file: created exclusively, holding the holder's pid and start
 * time. A lock another httpsisoboot holds is waited for, LOCK_WAIT_MS at
 * most. One whose holder is gone (a killed hook, or its pid now another
 * process's) is taken over, so no lock outlives a killed hook: moved aside
 * under a name of this process's own, and removed only if what was moved is
 * still the dead holder's; a live holder's lock, moved in a race, is put
 * back. Returns the function that releases it.
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
      writeSync(fd, `${process.pid} ${processStart(process.pid)}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lockPath);
        } catch { /* already gone: nothing to release */ }
      };
    }
    const holder = readHolder(lockPath);
    // Read again once the holder is seen gone: a holder that released the
    // lock and ended in between took its lock with it, and is no killed hook.
    if (holder !== undefined && !isProcess(holder) && readHolder(lockPath)?.text === holder.text) {
      takeOver(lockPath, holder.text);
      continue;
    }
    if (Date.now() >= until) {
      throw new FileError(
        `another httpsisoboot (pid ${holder?.pid ?? "unknown"}) held the lock ${lockPath} on ${subject} for more than ${
          LOCK_WAIT_MS / 1000
        } s; start the VM again`,
      );
    }
    sleepMs(LOCK_POLL_MS);
  }
}

/** Removes a dead holder's lock, and only that: what was moved aside is checked, and a live one put back. */
function takeOver(lockPath: string, stale: string): void {
  const aside = `${lockPath}.${process.pid}.stale`;
  try {
    renameSync(lockPath, aside);
  } catch {
    return; // another waiter took it over first
  }
  if (readHolder(aside)?.text !== stale) {
    try {
      linkSync(aside, lockPath); // a live holder's: back where it was, unless a new one is there already
    } catch { /* EEXIST: the new holder's stays */ }
  }
  unlinkSync(aside);
}

/** A process as a lock or pid file names it: its pid, and its start time when the file has it. */
export interface ProcessId {
  pid: number;
  start?: string;
  /** The file's text, to tell whether it changed. */
  text: string;
}

/** The holder a lock or pid file names; undefined while it is not written yet, or if it is not one. */
export function readHolder(path: string): ProcessId | undefined {
  try {
    const { bytes } = readRegularFile(path, { maxBytes: 64, followSymlinks: false, what: "the lock" });
    const text = new TextDecoder().decode(bytes);
    const match = /^([1-9][0-9]{0,9})(?: ([0-9]{1,20}))?\n$/.exec(text);
    return match ? { pid: Number(match[1]), start: match[2], text } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process a file names still runs: its pid runs, and started
 * when the file says (a pid reused by another process is not it).
 */
export function isProcess(id: { pid: number; start?: string }): boolean {
  return isRunning(id.pid) && (id.start === undefined || processStart(id.pid) === id.start);
}

/**
 * When a process started, in clock ticks since boot (/proc/PID/stat's 22nd
 * field): with the pid, what names one process for as long as the host runs.
 * Undefined once it has ended.
 */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // The fields after the command name, which is in parentheses and may itself hold ") ".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
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

/** Writes every byte, looping on partial writes; a write that makes no progress is an error. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    const wrote = writeSync(fd, bytes, at, bytes.length - at);
    if (wrote <= 0) throw Object.assign(new Error("write made no progress"), { code: "EIO" });
    at += wrote;
  }
}

/**
 * Writes a file atomically: a temporary file beside it, created
 * exclusively under a name nobody can predict and never through a link,
 * written whole, given its mode and owner on its descriptor, fsynced, and
 * renamed over `path`. On any failure `path` is as it was and the temporary
 * file is gone.
 *
 * @param options `mode`; `owner`, uid and gid to give it (root only); `keep`,
 * a check run on the written file's stat before the rename (it throws to stop).
 */
export function writeAtomic(
  path: string,
  data: Uint8Array | string,
  options: { mode: number; owner?: { uid: number; gid: number }; keep?: (written: Stats, temp: string) => void },
): Stats {
  const temp = join(dirname(path), tempFileName(randomHex(12)));
  let fd: number | undefined;
  try {
    fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    writeAll(fd, typeof data === "string" ? new TextEncoder().encode(data) : data);
    const { owner } = options;
    if (owner && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
      fchownSync(fd, owner.uid, owner.gid);
    }
    fchmodSync(fd, options.mode);
    fsyncSync(fd);
    // The descriptor stays open until the end: while it is, no other file can get this inode number.
    const written = fstatSync(fd);
    options.keep?.(written, temp);
    renameSync(temp, path);
    return written;
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch { /* it was never created */ }
    throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Hex digits nobody can predict, for temporary names. */
export function randomHex(bytes: number): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
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
