// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What the hook writes: stdout for --dry-run and --check, one line on
 * stderr for the admin, and the phase timings `npm run bench` asks for.
 *
 * This module writes to file descriptors 1 and 2.
 *
 * @module
 */

import { FileError } from "../../lib/errors.ts";

import { errorCode, writeAll } from "./files.ts";

/**
 * Writes all of `text` to stdout, synchronously, and refuses when it cannot:
 * a dry run whose output is lost must not exit 0.
 */
export function print(text: string): void {
  writeAllTo(1, text, "standard output");
}

/**
 * Writes a line to stderr, synchronously. Not process.stderr: setting that
 * stream up costs Bun about 8 ms, on every VM start.
 */
export function say(text: string): void {
  try {
    writeAllTo(2, text, "standard error");
  } catch { /* nowhere left to report it */ }
}

export function writeAllTo(fd: number, text: string, name: string): void {
  try {
    writeAll(fd, new TextEncoder().encode(text));
  } catch (error) {
    throw new FileError(`cannot write to ${name}: ${errorCode(error)}`);
  }
}

/**
 * Phase timings for `npm run bench`, with HTTPSISOBOOT_TIMINGS=1: one line on
 * stderr at exit, milliseconds since the process started at each mark. The
 * first mark ("start") includes the runtime's start and the modules' loading.
 */
let marks: Array<[string, number]> | undefined;

/** Turns the timings on (HTTPSISOBOOT_TIMINGS=1) or off, for this run. */
export function startTimings(on: boolean): void {
  marks = on ? [] : undefined;
}

export function mark(name: string): void {
  marks?.push([name, performance.now()]);
}

export function printTimings(): void {
  if (marks) {
    say(`httpsisoboot-timings: ${marks.map(([name, ms]) => `${name}=${ms.toFixed(2)}`).join(" ")}\n`);
  }
}
