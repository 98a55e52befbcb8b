// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseRelayConfig, relayConfig, relayConfigText } from "../../lib/relay/config.ts";
import { RelayError } from "../../lib/errors.ts";
import { parseSettings } from "../../lib/settings.ts";
import { parseIsoUrl } from "../../lib/url.ts";

const FILE = "/run/httpsisoboot/7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21.relay";
const GOOD = {
  url: "https://isos.example.org:443/a.iso?sig=s",
  timeout: 30,
  allow: [{ host: ".example.org", port: 443 }],
  settingsFile: "/etc/vdsm/httpsisoboot.conf",
  cacheSize: 1024 ** 3,
  cacheTotal: { percent: 50 },
  readaheadBlocks: 32,
  sharedCache: 4 * 2 ** 30,
  hostConnections: 64,
};

describe("the relay's config", () => {
  test("relayConfig() takes the URL as the hook accepted it and the host's timeout, allow and cache size", () => {
    const settings = parseSettings("timeout = 45\nallow = .example.org:443\nrelay_cache_size = 2G", "f.conf");
    assert.deepEqual(relayConfig(parseIsoUrl("https://ISOS.example.org/a.iso?sig=s#x"), { settings, file: "f.conf" }), {
      ...GOOD,
      timeout: 45,
      settingsFile: "f.conf",
      cacheSize: 2 * 1024 ** 3,
    });
  });

  test("parseRelayConfig() reads back what relayConfigText() wrote, and nothing else", () => {
    assert.deepEqual(parseRelayConfig(relayConfigText(GOOD), FILE), GOOD);
    const pinned = { ...GOOD, expect: { size: 9, validator: { header: "etag" as const, value: '"5f-9"' } } };
    assert.deepEqual(parseRelayConfig(relayConfigText(pinned), FILE), pinned);
    const named = { ...GOOD, name: "web01" };
    assert.deepEqual(parseRelayConfig(relayConfigText(named), FILE), named);
  });

  /** [what, the text] */
  const BAD: Array<[string, string]> = [
    ["not JSON", "{url"],
    ["a list", "[]"],
    ["no URL", JSON.stringify({ ...GOOD, url: undefined })],
    ["an http URL", JSON.stringify({ ...GOOD, url: "http://isos.example.org/a.iso" })],
    ["a URL with credentials", JSON.stringify({ ...GOOD, url: "https://u:p@isos.example.org/a.iso" })],
    ["a timeout of 0", JSON.stringify({ ...GOOD, timeout: 0 })],
    ["a timeout in text", JSON.stringify({ ...GOOD, timeout: "30" })],
    ["a fractional cache size", JSON.stringify({ ...GOOD, cacheSize: 1.5 })],
    ["no cache budget", JSON.stringify({ ...GOOD, cacheTotal: undefined })],
    ["a cache budget of 101 %", JSON.stringify({ ...GOOD, cacheTotal: { percent: 101 } })],
    [
      "a validator with a line break",
      JSON.stringify({ ...GOOD, expect: { size: 9, validator: { header: "etag", value: '"a"\r\nX: y' } } }),
    ],
    ["an allow rule without a host", JSON.stringify({ ...GOOD, allow: [{ port: 443 }] })],
    ["an allow rule with port 0", JSON.stringify({ ...GOOD, allow: [{ host: "a", port: 0 }] })],
    ["no settings file", JSON.stringify({ ...GOOD, settingsFile: 7 })],
    ["no shared cache size", JSON.stringify({ ...GOOD, sharedCache: undefined })],
    ["a negative shared cache size", JSON.stringify({ ...GOOD, sharedCache: -1 })],
    ["a host connection bound of 0", JSON.stringify({ ...GOOD, hostConnections: 0 })],
    ["a host connection bound past 1024", JSON.stringify({ ...GOOD, hostConnections: 1025 })],
    ["a name with a line break", JSON.stringify({ ...GOOD, name: "web01\nX" })],
  ];
  for (const [what, text] of BAD) {
    test(`parseRelayConfig() refuses ${what}, naming the file and what to do`, () => {
      assert.throws(() => parseRelayConfig(text, FILE), (error: Error) => {
        assert.ok(error instanceof RelayError);
        assert.match(
          error.message,
          new RegExp(`^the relay's config ${FILE} .*; start the VM again, which writes it anew$`),
        );
        assert.ok(!error.message.includes("u:p"), "never quotes the URL");
        return true;
      });
    });
  }
});
