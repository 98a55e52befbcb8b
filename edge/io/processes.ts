// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Processes, as the hook knows them: by pid and start time (a pid reused
 * by another process is not the one a file names), whether they still run,
 * how to stop one within a limit, and how to wait.
 *
 * This module reads /proc and sends signals.
 *
 * @module
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { errorCode, readRegularFile } from "./files.ts";

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

/** Waits `ms` without blocking: for the relay's and control's async loops. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Stops a process and waits until it has ended: SIGTERM, then SIGKILL once
 * `graceMs` have passed, then `graceMs` more at most. Only the process the
 * id names (by its start time too) is signalled or waited for.
 *
 * @returns Whether it ended; false only for one that outlived its SIGKILL.
 */
export async function stopProcess(id: { pid: number; start?: string }, graceMs: number): Promise<boolean> {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    if (!isProcess(id)) return true;
    try {
      process.kill(id.pid, signal);
    } catch { /* ended just now */ }
    const until = Date.now() + graceMs;
    while (isProcess(id) && Date.now() < until) await pause(10);
  }
  return !isProcess(id);
}
