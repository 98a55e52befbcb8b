// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { resolveLocation } from "../lib/redirect.ts";
import { parseIsoUrl } from "../lib/url.ts";

describe("resolveLocation()", () => {
  const current = parseIsoUrl("https://isos.example.org:8443/el9/boot.iso?sig=1");
  const CASES: Array<[string, string]> = [
    ["https://0x7f000001/x.iso", "https://0x7f000001/x.iso"],
    ["//other.example/x.iso", "https://other.example/x.iso"],
    ["/x.iso?y=1", "https://isos.example.org:8443/x.iso?y=1"],
    ["x.iso", "https://isos.example.org:8443/el9/x.iso"],
    ["http://isos.example.org/x.iso", "http://isos.example.org/x.iso"],
  ];
  for (const [location, expected] of CASES) {
    test(`resolveLocation() takes ${location} as ${expected}, without rewriting the host`, () => {
      assert.equal(resolveLocation(location, current), expected);
    });
  }
});
