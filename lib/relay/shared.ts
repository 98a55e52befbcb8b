// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host's shared block cache: what may be shared, under which key, and
 * what goes when it is full. Twenty VMs installing one ISO would otherwise
 * download it twenty times; a reboot in the middle of an install would
 * download it again.
 *
 * A block is shared between relays only under the key of the file it came
 * from: the server (host and port), the path (never the query, which is the
 * VM's own credential) and the file's strong ETag and size. A relay serves
 * a shared block only after its own request to the server, with its own URL,
 * has shown that same strong ETag and size (front.ts); a file with no
 * strong ETag (only Last-Modified, which a rewrite within one second keeps)
 * is never shared. The server and path are those of the URL that answered,
 * after any redirect, not the URL the VM was given: a server that redirects
 * one VM's query elsewhere would otherwise let that VM fill, with another
 * server's bytes, the entry every other VM on the first URL reads.
 *
 * This module is pure: store.ts does the I/O.
 *
 * @module
 */
import type { FileFacts } from "./http.ts";
import type { IsoUrl } from "../url.ts";

/**
 * The key of the file's blocks in the shared cache, or why it cannot have
 * one: the text store.ts hashes into the entry's name.
 *
 * @example
 * ```ts
 * import { sharingKey } from "./shared.ts";
 * import { parseIsoUrl } from "../url.ts";
 * import { assertEquals } from "../_assert.ts";
 * const url = parseIsoUrl("https://isos.example.org/el9/boot.iso?sig=vm1");
 * const etag = { header: "etag", value: '"5f3-1a"' } as const;
 * const one = sharingKey(url, { size: 4096, validator: etag });
 * assertEquals(one, { key: 'isos.example.org:443\n/el9/boot.iso\n"5f3-1a"\n4096' });
 * assertEquals(sharingKey(parseIsoUrl("https://isos.example.org/el9/boot.iso?sig=vm2"), { size: 4096, validator: etag }), one);
 * assertEquals("why" in sharingKey(url, { size: 4096, validator: { header: "last-modified", value: "Tue, 01 Dec 2026 10:00:00 GMT" } }), true);
 * ```
 */
export function sharingKey(url: IsoUrl, facts: FileFacts): { key: string } | { why: string } {
  if (facts.size === undefined || facts.validator === undefined) {
    return { why: "the server has not said what the file is" };
  }
  if (facts.validator.header !== "etag") {
    return { why: "the server gives the file no strong ETag, so a change to it could go unseen" };
  }
  return { key: [blockSource(url), facts.validator.value, String(facts.size)].join("\n") };
}

/**
 * Where a block came from, as the key names it: the server and the path of
 * the URL that answered, without the query.
 *
 * @param url The URL that answered the request, after any redirect.
 * @example
 * ```ts
 * import { blockSource } from "./shared.ts";
 * import { parseIsoUrl } from "../url.ts";
 * import { assertEquals } from "../_assert.ts";
 * assertEquals(blockSource(parseIsoUrl("https://isos.example.org/el9/boot.iso?sig=vm1")), "isos.example.org:443\n/el9/boot.iso");
 * assertEquals(blockSource(parseIsoUrl("https://isos.example.org:8443/el9/boot.iso")) === blockSource(parseIsoUrl("https://isos.example.org/el9/boot.iso")), false);
 * ```
 */
export function blockSource(url: IsoUrl): string {
  return `${url.host}:${url.port}\n${url.name}`;
}

/** A block file of the shared cache, as store.ts found it. */
export interface CachedFile {
  path: string;
  bytes: number;
  /** When a relay last wrote or read it (ms). */
  used: number;
}

/**
 * The files to remove so that the cache holds at most `bound` bytes: least
 * recently used first, down to `low` (below the bound, so that one more
 * block does not start the next eviction at once).
 *
 * @example
 * ```ts
 * import { evictionPlan } from "./shared.ts";
 * import { assertEquals } from "../_assert.ts";
 * const files = [{ path: "a", bytes: 4, used: 3 }, { path: "b", bytes: 4, used: 1 }, { path: "c", bytes: 4, used: 2 }];
 * assertEquals(evictionPlan(files, 12, 12), []);
 * assertEquals(evictionPlan(files, 11, 8), ["b"]);
 * assertEquals(evictionPlan(files, 11, 4), ["b", "c"]);
 * ```
 */
export function evictionPlan(files: CachedFile[], bound: number, low = Math.floor(bound * 0.9)): string[] {
  let total = files.reduce((sum, file) => sum + file.bytes, 0);
  if (total <= bound) return [];
  const plan: string[] = [];
  for (const file of [...files].sort((a, b) => a.used - b.used)) {
    if (total <= low) break;
    plan.push(file.path);
    total -= file.bytes;
  }
  return plan;
}
