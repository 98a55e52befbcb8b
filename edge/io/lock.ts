// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Lock files that are waited for, and taken over from a killed holder, so
 * that no lock outlives a killed hook: for a domain file, a VM's relay, and
 * the host's cache budget.
 *
 * This module does file I/O.
 *
 * @module
 */
import process from "node:process";
import { closeSync, constants, linkSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { FileError } from "../../lib/errors.ts";
import { LOCK_POLL_MS, LOCK_WAIT_MS } from "../../lib/limits.ts";

import { accessHint, errorCode } from "./files.ts";

import { isProcess, processStart, readHolder, sleepMs } from "./processes.ts";

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
