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

import { tempFileName } from "../../lib/paths.ts";

import { FileError, LimitError } from "../../lib/errors.ts";

import { concat } from "../../lib/bytes.ts";
import { sleepMs } from "./processes.ts";

/**
 * Reads a regular file, at most `maxBytes`. A FIFO, device, socket or
 * directory is refused before a byte is read (the open does not block on a
 * FIFO), and so is a symbolic link unless `followSymlinks`.
 */
export function readRegularFile(
  path: string,
  options: { maxBytes: number; followSymlinks: boolean; what: string },
): { bytes: Uint8Array; stats: Stats } {
  const { fd, stats } = openRegular(path, options);
  try {
    if (stats.size > options.maxBytes) {
      throw new LimitError(
        `${options.what} '${path}' is larger than ${options.maxBytes} bytes, the most the hook reads`,
      );
    }
    return { bytes: readAtMost(fd, stats.size, options.maxBytes, `${options.what} '${path}'`), stats };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a regular file of exactly as many bytes as `parts` hold together
 * into them, in order (a relay's block file: its digest, then the block,
 * into a buffer the relay reuses), refused as readRegularFile refuses; a
 * file of another size is refused before a byte is read, and one that
 * changes size as it is read fails.
 */
export function readRegularFileInto(
  path: string,
  parts: Uint8Array[],
  options: { followSymlinks: boolean; what: string },
): void {
  const { fd, stats } = openRegular(path, options);
  try {
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    if (stats.size !== size) {
      throw new LimitError(`${options.what} '${path}' has ${stats.size} bytes, not ${size}`);
    }
    for (const part of parts) {
      for (let at = 0; at < part.length;) {
        const read = readSync(fd, part, at, part.length - at, null);
        if (read === 0) throw new FileError(`${options.what} '${path}' ended at ${at} of ${part.length} bytes`);
        at += read;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** What an open's error code means, for the codes an admin's typo causes. */
const CODE_WORDS: Record<string, string> = {
  ENOENT: "there is no such file; check the path",
  ENOTDIR: "a part of the path is not a directory; check the path",
};

/**
 * Opens a regular file for reading: a FIFO, device, socket or directory is
 * refused before a byte is read (the open does not block on a FIFO), and so
 * is a symbolic link unless `followSymlinks`. The caller closes it.
 */
function openRegular(
  path: string,
  options: { followSymlinks: boolean; what: string },
): { fd: number; stats: Stats } {
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
    const words = CODE_WORDS[code];
    throw new FileError(`cannot read ${options.what} '${path}': ${words ? `${words} (${code})` : code}${hint}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      throw new FileError(`${options.what} '${path}' is not a regular file; give the path of a file`);
    }
    return { fd, stats };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * Reads until end of file, refusing more than `maxBytes` (a file that grows
 * as it is read). The file's size as fstat saw it, and one byte more to see
 * the end, is read into one buffer: a relay's 1 MiB blocks are read without
 * a copy. What is past that comes in 64 KiB chunks.
 */
function readAtMost(fd: number, size: number, maxBytes: number, what: string): Uint8Array {
  const first = new Uint8Array(Math.min(size, maxBytes) + 1);
  let total = 0;
  for (let read = -1; read !== 0 && total < first.length; total += read) {
    read = readSync(fd, first, total, first.length - total, null);
  }
  if (total < first.length) return first.subarray(0, total);
  const buffer = new Uint8Array(64 * 1024);
  const chunks: Uint8Array[] = [first];
  for (
    let read = readSync(fd, buffer, 0, buffer.length, null);
    read > 0;
    read = readSync(fd, buffer, 0, buffer.length, null)
  ) {
    total += read;
    if (total > maxBytes) break;
    chunks.push(buffer.slice(0, read));
  }
  if (total > maxBytes) throw new LimitError(`${what} is larger than ${maxBytes} bytes, the most the hook reads`);
  return concat(chunks);
}

/**
 * Writes every byte, looping on partial writes, and waiting 1 ms at a time
 * while a non-blocking pipe is full (EAGAIN); a write that makes no
 * progress is an error. The one full-write loop: files, stdout and stderr.
 */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    let wrote: number;
    try {
      wrote = writeSync(fd, bytes, at, bytes.length - at);
    } catch (error) {
      if (errorCode(error) !== "EAGAIN") throw error;
      sleepMs(1);
      continue;
    }
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
  options: {
    mode: number;
    owner?: { uid: number; gid: number };
    keep?: (written: Stats, temp: string) => void;
    /** Told as each phase ends, for the hook's timings: "open", "write", "fsync". */
    phase?: (name: "open" | "write" | "fsync") => void;
  },
): Stats {
  const temp = join(dirname(path), tempFileName(randomHex(12)));
  let fd: number | undefined;
  try {
    fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    options.phase?.("open");
    writeAll(fd, typeof data === "string" ? new TextEncoder().encode(data) : data);
    const { owner } = options;
    if (owner && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
      fchownSync(fd, owner.uid, owner.gid);
    }
    fchmodSync(fd, options.mode);
    options.phase?.("write");
    fsyncSync(fd);
    options.phase?.("fsync");
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
  return nameOf("/etc/passwd", uid);
}

/** The name of group `gid`, from /etc/group; the number when it has none. */
export function groupName(gid: number): string {
  return nameOf("/etc/group", gid);
}

/** The name an /etc/passwd or /etc/group entry gives a number (its third field); the number when none does. */
function nameOf(file: string, id: number): string {
  try {
    const entry = readFileSync(file, "utf8").split("\n").find((line) => line.split(":")[2] === String(id));
    return entry?.split(":")[0] || String(id);
  } catch {
    return String(id);
  }
}

/** A Node error's code, such as ENOENT; EIO when it has none that looks like one. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^[A-Z0-9_]{1,32}$/.test(code) ? code : "EIO";
}
