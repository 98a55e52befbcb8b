// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { blockSource, evictionPlan, sharingKey } from "../../lib/relay/shared.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import type { Validator } from "../../lib/relay/http.ts";

const ETAG: Validator = { header: "etag", value: '"5f3-1a"' };

describe("the shared block cache's key and eviction", () => {
  test("sharingKey() names the server, the path, the strong ETag and the size, never the query", () => {
    const key = (url: string, size = 4096, validator = ETAG) => sharingKey(parseIsoUrl(url), { size, validator });
    const base = key("https://isos.example.org/el9/boot.iso?sig=vm1");
    assert.ok("key" in base && !base.key.includes("vm1"));
    assert.deepEqual(key("https://isos.example.org/el9/boot.iso?sig=vm2&expires=9"), base, "another VM's signature");
    for (
      const other of [
        key("https://isos.example.org:8443/el9/boot.iso"),
        key("https://mirror.example.org/el9/boot.iso"),
        key("https://isos.example.org/el9/other.iso"),
        key("https://isos.example.org/el9/boot.iso", 4097),
        key("https://isos.example.org/el9/boot.iso", 4096, { header: "etag", value: '"5f3-1b"' }),
      ]
    ) {
      assert.notDeepEqual(other, base);
    }
  });

  test("blockSource() is the key's server and path: the same for every query, another for another port, host or path", () => {
    const source = (url: string) => blockSource(parseIsoUrl(url));
    const base = source("https://isos.example.org/el9/boot.iso?sig=vm1");
    assert.equal(source("https://isos.example.org:443/el9/boot.iso?sig=vm2"), base);
    for (const other of ["https://isos.example.org:8443/el9/boot.iso", "https://mirror.example.org/el9/boot.iso"]) {
      assert.notEqual(source(other), base, other);
    }
    const key = sharingKey(parseIsoUrl("https://isos.example.org/el9/boot.iso"), { size: 1, validator: ETAG });
    assert.ok("key" in key && key.key.startsWith(`${base}\n`), "the key starts with the source");
  });

  test("sharingKey() refuses a file with only Last-Modified, or not yet seen", () => {
    const url = parseIsoUrl("https://isos.example.org/a.iso");
    const modified = { header: "last-modified" as const, value: "Tue, 01 Dec 2026 10:00:00 GMT" };
    assert.deepEqual(sharingKey(url, { size: 1, validator: modified }), {
      why: "the server gives the file no strong ETag, so a change to it could go unseen",
    });
    assert.deepEqual(sharingKey(url, {}), { why: "the server has not said what the file is" });
  });

  test("evictionPlan() removes the least recently used first, down to 90 % of the bound", () => {
    const files = Array.from({ length: 10 }, (_, i) => ({ path: String(i), bytes: 10, used: 100 - i }));
    assert.deepEqual(evictionPlan(files, 100), []);
    assert.deepEqual(evictionPlan(files, 95), ["9", "8"], "95 → 85.5: down to 80");
    assert.deepEqual(evictionPlan(files, 50), ["9", "8", "7", "6", "5", "4"], "50 → 45: down to 40");
  });
});
