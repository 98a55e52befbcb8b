// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The blocks a relay's front keeps on disk: those it fetched ahead of the
 * guest, and those it may share with the host's other relays (shared.ts).
 * The front holds only the blocks in flight and the last few served in
 * memory; a block fetched ahead waits here, on disk and in the page cache,
 * so that a deep read-ahead costs the front no memory.
 *
 * Two kinds of entry, each a directory of block files named by index:
 *
 * - shared: `<cache>/shared/<sha256 of the key>/`, for a file with a strong
 *   ETag; it outlives the relay, so a VM that reboots, or the next VM on the
 *   same ISO, reads it again without the server. All shared entries
 *   together hold at most `relay_shared_cache` bytes, least recently used
 *   evicted first.
 * - private: `<the relay's own cache directory>/blocks/`, for a file that
 *   cannot be shared; it goes with the relay, and holds at most the
 *   read-ahead window and the blocks the guest has just read.
 *
 * A block file is the block's SHA-256 and then its bytes, written to a
 * temporary name and renamed, 0600: a block is either there whole and as
 * the server sent it, or it is not there; one torn by a crash, or of the
 * wrong length, is removed and fetched again. Not writeAtomic: an fsync per
 * 1 MiB block would cost a read at full speed more than the digest, which
 * finds what a crash tore. The directories are 0700 and
 * the relays' user's: QEMU and every other user are kept out, and only a
 * relay, after its own request to the server, reads a block (front.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { type CachedFile, evictionPlan } from "../../lib/relay/shared.ts";
import { RELAY_BLOCK_BYTES } from "../../lib/limits.ts";
import { randomHex, readRegularFileInto, writeAll } from "../io/files.ts";
import { LimitError } from "../../lib/errors.ts";

/** The digest each block file starts with. */
const DIGEST_BYTES = 32;

/**
 * Blocks written between two looks at the size of all entries: a tenth of
 * the bound, from 1 to 16 blocks. An eviction leaves at most 90 % of the
 * bound (shared.ts), so the writes until the next look keep within it.
 */
function evictEvery(bound: number): number {
  return Math.max(1, Math.min(16, Math.floor(bound / 10 / RELAY_BLOCK_BYTES)));
}

/** Where a relay's blocks go, and how much they may take. */
export interface StoreSpec {
  /** The entry's directory. */
  dir: string;
  /** Where every entry of its kind lives: what `bound` applies to. */
  root: string;
  /** The most bytes all entries under `root` may take. */
  bound: number;
  /** The file's size, which says each block's length. */
  size: number;
  /** Shared entries are kept when the relay ends; a private one goes. */
  shared: boolean;
}

/** What the store did, for the relay's status. */
export interface StoreCounts {
  /** Blocks read back from disk. */
  hits: number;
}

/** A relay's blocks on disk. */
export class BlockStore {
  readonly counts: StoreCounts = { hits: 0 };
  private sinceEviction = 0;
  /**
   * Blocks this store has written or read whole: has() answers for them
   * without a stat (the front asks for each block it would fetch ahead).
   * Another relay's eviction may have removed one since; then read() finds
   * it gone and the front fetches it, as for any block not on disk.
   */
  private seen = new Set<number>();
  /**
   * Blocks this store wrote itself: read back without their digest. The
   * digest finds what a crash tore, and what this relay wrote and renamed
   * in its own life no crash has touched (the page cache holds it whole);
   * blocks another relay wrote, or an earlier life of this one, are checked.
   */
  private wrote = new Set<number>();

  constructor(readonly spec: StoreSpec) {
    mkdirSync(spec.root, { recursive: true, mode: 0o700 });
    mkdirSync(spec.dir, { recursive: true, mode: 0o700 });
    // A relay started with less room than the last (the budget's other relays took it) trims the cache to its bound.
    if (spec.shared) this.evict();
  }

  /** Whether block `index` is on disk (it may still be found torn when read). */
  has(index: number): boolean {
    if (this.seen.has(index)) return true;
    try {
      return statSync(this.path(index)).size === this.length(index) + DIGEST_BYTES;
    } catch {
      return false;
    }
  }

  /**
   * Block `index`, whole and as the server sent it, read into `into` (the
   * front's buffer, at least a block long), or undefined. A shared block
   * read counts as used now, for eviction.
   */
  read(index: number, into: Uint8Array): Uint8Array | undefined {
    const path = this.path(index);
    const body = into.subarray(0, this.length(index));
    const stored = new Uint8Array(DIGEST_BYTES);
    try {
      readRegularFileInto(path, [stored, body], { followSymlinks: false, what: "the block" });
    } catch (error) {
      this.seen.delete(index);
      this.wrote.delete(index);
      // Not there; or torn, of the wrong length, and removed.
      if (error instanceof LimitError) rmSync(path, { force: true });
      return undefined;
    }
    const whole = this.wrote.has(index) || sameBytes(digest(body), stored);
    if (!whole) {
      rmSync(path, { force: true });
      this.seen.delete(index);
      this.wrote.delete(index);
      return undefined;
    }
    this.seen.add(index);
    this.counts.hits++;
    if (this.spec.shared) touch(path);
    return body;
  }

  /**
   * Whether the blocks on disk agree with the file's first bytes as the
   * server sends them now (the relay's probe): true when block 0 is not
   * here, or begins with them. When it does not, the entry holds another
   * file under the same key (rebuilt in place with the same size and
   * validator): every block of it is removed, and false says so.
   */
  agreesWith(start: Uint8Array): boolean {
    if (!this.has(0)) return true;
    const block = this.read(0, new Uint8Array(this.length(0)));
    if (block === undefined) return true;
    this.counts.hits--; // a check, not a block served
    if (sameBytes(block.subarray(0, start.length), start)) return true;
    rmSync(this.spec.dir, { recursive: true, force: true });
    mkdirSync(this.spec.dir, { recursive: true, mode: 0o700 });
    this.seen.clear();
    this.wrote.clear();
    return false;
  }

  /** Keeps block `index`; false when it could not (a full disk), which only costs a later fetch. */
  write(index: number, body: Uint8Array): boolean {
    if (body.length !== this.length(index)) return false;
    const path = this.path(index);
    const temporary = join(this.spec.dir, `.${index}.${randomHex(6)}.tmp`);
    try {
      const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        writeAll(fd, digest(body));
        writeAll(fd, body);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, path);
      this.seen.add(index);
      this.wrote.add(index);
    } catch {
      rmSync(temporary, { force: true });
      return false;
    }
    if (++this.sinceEviction >= evictEvery(this.spec.bound)) this.evict();
    return true;
  }

  /** Removes files until every entry under the root together fits the bound, least recently used first. */
  evict(): void {
    this.sinceEviction = 0;
    for (const path of evictionPlan(listBlocks(this.spec.root), this.spec.bound)) {
      rmSync(path, { force: true });
      if (dirname(path) !== this.spec.dir) continue;
      this.seen.delete(Number(basename(path)));
      this.wrote.delete(Number(basename(path)));
    }
  }

  /** At the relay's end: a private entry goes; a shared one stays for the next relay. */
  close(): void {
    if (!this.spec.shared) rmSync(this.spec.dir, { recursive: true, force: true });
  }

  private path(index: number): string {
    return join(this.spec.dir, String(index));
  }

  private length(index: number): number {
    return Math.min(RELAY_BLOCK_BYTES, this.spec.size - index * RELAY_BLOCK_BYTES);
  }
}

/** The shared entry's directory for a key (shared.ts's sharingKey). */
export function sharedEntry(root: string, key: string): string {
  return join(root, createHash("sha256").update(key).digest("hex"));
}

/** Every block file under `root`, one level of entries deep, with its size and last use. */
function listBlocks(root: string): CachedFile[] {
  const files: CachedFile[] = [];
  for (const entry of safeList(root)) {
    for (const name of safeList(join(root, entry))) {
      const path = join(root, entry, name);
      try {
        const stats = statSync(path);
        files.push({ path, bytes: stats.size, used: stats.mtimeMs });
      } catch {
        // Removed meanwhile by another relay's eviction.
      }
    }
  }
  return files;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function touch(path: string): void {
  try {
    const now = new Date();
    utimesSync(path, now, now);
  } catch {
    // Evicted meanwhile: the bytes were read whole before.
  }
}

function digest(bytes: Uint8Array): Uint8Array {
  return createHash("sha256").update(bytes).digest();
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
