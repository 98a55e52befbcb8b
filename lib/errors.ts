// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The hook's own errors: each is a deliberate refusal, chosen by meaning, and
 * its message is one line an admin can act on. Anything else that is thrown
 * is a bug, and `hook.ts` says so ("internal error … please report it").
 *
 * This module is pure: it does no I/O.
 *
 * @module
 */
import { MAX_SHOWN_CHARS } from "./limits.ts";

/**
 * A deliberate refusal. The message is made one printable line.
 *
 * @example
 * ```ts
 * import { HookError } from "./errors.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(new HookError("two\nlines").message, "two lines");
 * ```
 */
export class HookError extends Error {
  constructor(message: string) {
    super(printable(message, 4 * MAX_SHOWN_CHARS));
    this.name = new.target.name;
  }
}

/** The command line is misused. */
export class UsageError extends HookError {}

/** The URL is not one the hook accepts. */
export class UrlError extends HookError {}

/** The domain XML is not well-formed, or not a domain the hook can change. */
export class DomainError extends HookError {}

/** The domain XML is not well-formed XML 1.0; carries where. */
export class XmlSyntaxError extends DomainError {
  /** 1-based line and column of the problem. */
  constructor(message: string, readonly line: number, readonly column: number) {
    super(`${message} at line ${line}, column ${column}`);
  }
}

/** An input is larger, deeper or slower than a documented limit (lib/limits.ts). */
export class LimitError extends HookError {}

/** The host's settings file is wrong. */
export class SettingsError extends HookError {}

/** The host's `allow` setting does not name the ISO server. */
export class PolicyError extends HookError {}

/** The ISO server would fail QEMU: preflight's findings. */
export class ServerError extends HookError {}

/** This host lacks something the hook or QEMU needs (QEMU's curl driver, say). */
export class HostError extends HookError {}

/** A file cannot be read or written as the hook needs. */
export class FileError extends HookError {}

/** A VM's relay cannot start, did not answer in time, or cannot be stopped. */
export class RelayError extends HookError {}

/**
 * The line the hook prints for an error: a refusal says what is wrong and
 * what to do; anything else is a bug, and says so.
 *
 * @param error What was thrown.
 * @returns The line, without the `httpsisoboot: ` prefix.
 * @example
 * ```ts
 * import { errorLine, UrlError } from "./errors.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(errorLine(new UrlError("the URL is empty")), "the URL is empty");
 * assertEquals(
 *   errorLine(new TypeError("x is undefined")),
 *   "internal error (TypeError: x is undefined); please report it, with the output of --debug",
 * );
 * ```
 */
export function errorLine(error: unknown): string {
  if (error instanceof HookError) return error.message;
  const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return `internal error (${printable(what)}); please report it, with the output of --debug`;
}

/**
 * Makes text safe to print on one line: control characters (C0, C1, DEL,
 * and the Unicode line and bidi controls) become spaces, runs of spaces
 * shrink to one, and the text is cut to `max` characters with an ellipsis.
 *
 * @param text Any text, possibly from a hostile peer.
 * @param max The most characters to keep.
 * @returns One printable line.
 * @example
 * ```ts
 * import { printable } from "./errors.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(printable("LABEL\u001b[2J\nfake line", 200), "LABEL [2J fake line");
 * assertEquals(printable("abcdef", 4), "abc…");
 * ```
 */
export function printable(text: string, max: number = MAX_SHOWN_CHARS): string {
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g, " ")
    .replace(/ {2,}/g, " ").trim();
  return clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`;
}
