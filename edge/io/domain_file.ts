// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The domain XML VDSM hands the hook: read whole and bounded, decoded as
 * UTF-8 or refused, and replaced losslessly and atomically, only if it is
 * still the file that was read.
 *
 * This module does file I/O.
 *
 * @module
 */
import process from "node:process";
import { lstatSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { DomainError, FileError, HookError, LimitError, XmlSyntaxError } from "../../lib/errors.ts";
import { MAX_DOMAIN_BYTES } from "../../lib/limits.ts";
import { errorCode, readRegularFile, writeAtomic } from "./files.ts";
import { concat } from "../../lib/bytes.ts";
import { mark } from "./output.ts";

/** The domain XML and the stat of the file it came from. */
export function readDomain(path: string, options: { followSymlinks: boolean }): { text: string; stats: Stats } {
  const { bytes, stats } = readRegularFile(path, { maxBytes: MAX_DOMAIN_BYTES, what: "the domain XML", ...options });
  return { text: decodeDomain(bytes, `'${path}'`), stats };
}

/**
 * Runs a plan on the domain XML from `path`, and names the file in the
 * refusal of one that is not XML: the parser knows only line and column.
 */
export function namingDomain<T>(path: string, plan: () => T): T {
  try {
    return plan();
  } catch (error) {
    if (!(error instanceof XmlSyntaxError)) throw error;
    throw new DomainError(
      `the domain XML ${path === "stdin" ? "on stdin" : `'${path}'`} is not well-formed XML (${error.message}); ` +
        `give a libvirt domain XML, as virsh dumpxml writes it`,
    );
  }
}

export function decodeDomain(bytes: Uint8Array, name: string): string {
  if (bytes.length > MAX_DOMAIN_BYTES) {
    throw new LimitError(`the domain XML ${name} is larger than ${MAX_DOMAIN_BYTES} bytes, the most libvirt accepts`);
  }
  return decodeUtf8(bytes, `the domain XML ${name}`);
}

/** UTF-8 or a refusal: a byte that is not UTF-8 is never replaced. The BOM is kept. */
export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new DomainError(`${what} is not valid UTF-8; libvirt reads and writes UTF-8 only`);
  }
}

export async function readStdin(): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    total += (chunk as Uint8Array).length;
    if (total > MAX_DOMAIN_BYTES) {
      throw new LimitError(
        `the domain XML on stdin is larger than ${MAX_DOMAIN_BYTES} bytes, the most libvirt accepts`,
      );
    }
    chunks.push(chunk as Uint8Array);
  }
  return concat(chunks);
}

/**
 * Replaces a file with new text, losslessly: a temporary file beside it,
 * created exclusively under a name nobody can predict and never through a
 * symbolic link, written completely, given the original's owner and mode on
 * its descriptor, fsynced, and renamed over the original only if the
 * original is still the file that was read. On any failure the original is
 * unchanged and the temporary file is gone.
 */
export function replaceFile(path: string, text: string, original: Stats): void {
  try {
    const written = writeAtomic(path, text, {
      mode: original.mode & 0o7777,
      owner: { uid: original.uid, gid: original.gid },
      keep: (written, temp) => checkUnchanged(path, temp, original, written),
      phase: (name) => mark(name === "open" ? "lock" : name),
    });
    checkRenamed(path, written);
    mark("rename");
  } catch (error) {
    if (error instanceof HookError) throw error;
    const code = errorCode(error);
    throw new FileError(`cannot replace the domain XML '${path}': ${code}; the original is unchanged`);
  }
}

/** Refuses to rename when the original changed since it was read, or the temp file is no longer ours. */
export function checkUnchanged(path: string, temp: string, original: Stats, written: Stats): void {
  const now = lstatSync(path);
  const same = now.ino === original.ino && now.dev === original.dev && now.size === original.size &&
    now.mtimeMs === original.mtimeMs && now.ctimeMs === original.ctimeMs;
  if (!same) throw new FileError(`the domain XML '${path}' changed while the hook ran; start the VM again`);
  if (!isSameFile(lstatSync(temp), written)) {
    throw new FileError(
      `the temporary file beside '${path}' was replaced while the hook ran; check who can write ${dirname(path)}`,
    );
  }
}

/**
 * After the rename, the file at `path` must be the one written: in a
 * directory others can write, a racer can swap the temp file between the
 * check and the rename. The hook then fails, so VDSM does not start the VM
 * from a file the hook did not write.
 */
export function checkRenamed(path: string, written: Stats): void {
  if (!isSameFile(lstatSync(path), written)) {
    throw new FileError(
      `the domain XML '${path}' was replaced while the hook wrote it; check who can write ${dirname(path)}`,
    );
  }
}

export function isSameFile(found: Stats, written: Stats): boolean {
  return found.isFile() && found.ino === written.ino && found.dev === written.dev;
}
