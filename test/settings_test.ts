// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_SETTINGS, parseSettings } from "../lib/settings.ts";

const FILE = "/etc/vdsm/httpsisoboot.conf";

describe("parseSettings()", () => {
  test("parseSettings() gives the defaults for an empty file or only comments", () => {
    assert.deepEqual(parseSettings("", FILE), DEFAULT_SETTINGS);
    assert.deepEqual(parseSettings("# nothing set\n\n   # still nothing\n", FILE), DEFAULT_SETTINGS);
  });

  test("parseSettings() reads every key, with comments and spaces", () => {
    const settings = parseSettings(
      "timeout = 60  # a minute\nreadahead=4194304\npreflight = no\npreflight_timeout = 10\nallow = isos.example.org, .lab.example.net:8443, [2001:db8::1], 192.0.2.10:4443\n" +
        "relay = off\nrelay_cache_size = 2G\nrelay_cache_total = 100G\nrelay_readahead = 0\n" +
        "relay_shared_cache = 0\nrelay_host_connections = 8\nproxy = http://proxy.example.net:3128\n" +
        "no_proxy = .lab.example.net, isos.example.org\n",
      FILE,
    );
    assert.deepEqual(settings, {
      timeout: 60,
      readahead: 4194304,
      preflight: false,
      preflightTimeout: 10,
      allow: [{ host: "isos.example.org" }, { host: ".lab.example.net", port: 8443 }, { host: "2001:db8::1" }, {
        host: "192.0.2.10",
        port: 4443,
      }],
      relay: "off",
      relayCacheSize: 2 * 1024 ** 3,
      relayCacheTotal: { bytes: 100 * 1024 ** 3 },
      relayReadahead: 0,
      relaySharedCache: 0,
      relayHostConnections: 8,
      proxy: { scheme: "http", host: "proxy.example.net", port: 3128, shown: "http://proxy.example.net:3128" },
      noProxy: [{ host: ".lab.example.net" }, { host: "isos.example.org" }],
    });
  });

  test("parseSettings() never shows a proxy's credentials, even in a line it cannot read", () => {
    for (const text of ["proxy = ftp://hv:s3cret@proxy:21", "proxy http://hv:s3cret@proxy:3128"]) {
      assert.throws(() => parseSettings(text, FILE), (error: Error) => !error.message.includes("s3cret"));
    }
  });

  test("parseSettings() relays through nbdkit with a 1 GiB cache unless told otherwise, and reads sizes in K, M and G", () => {
    assert.deepEqual([DEFAULT_SETTINGS.relay, DEFAULT_SETTINGS.relayCacheSize], ["nbdkit", 1024 ** 3]);
    for (
      const [text, bytes] of [["16M", 16 * 1024 ** 2], ["20000k", 20000 * 1024], [
        "17179869184",
        16 * 1024 ** 3,
      ]] as const
    ) {
      assert.equal(parseSettings(`relay_cache_size = ${text}`, FILE).relayCacheSize, bytes, text);
    }
  });

  test("parseSettings() reads 32 MiB ahead unless told otherwise, in whole MiB, and 0 turns it off", () => {
    assert.equal(DEFAULT_SETTINGS.relayReadahead, 32 * 1024 ** 2);
    assert.equal(parseSettings("relay_readahead = 8M", FILE).relayReadahead, 8 * 1024 ** 2);
    assert.equal(parseSettings("relay_readahead = 0", FILE).relayReadahead, 0);
  });

  test("parseSettings() bounds all relays' caches at half the cache file system's free space unless told otherwise", () => {
    assert.deepEqual(DEFAULT_SETTINGS.relayCacheTotal, { percent: 50 });
    assert.deepEqual(parseSettings("relay_cache_total = 25%", FILE).relayCacheTotal, { percent: 25 });
    assert.deepEqual(parseSettings("relay_cache_total = 64G", FILE).relayCacheTotal, { bytes: 64 * 1024 ** 3 });
  });

  test("parseSettings() shares up to 4 GiB of blocks between relays and bounds them at 64 connections unless told otherwise", () => {
    assert.equal(DEFAULT_SETTINGS.relaySharedCache, 4 * 1024 ** 3);
    assert.equal(parseSettings("relay_shared_cache = 20G", FILE).relaySharedCache, 20 * 1024 ** 3);
    assert.equal(parseSettings("relay_shared_cache = 0", FILE).relaySharedCache, 0);
    assert.equal(DEFAULT_SETTINGS.relayHostConnections, 64);
    assert.equal(parseSettings("relay_host_connections = 1024", FILE).relayHostConnections, 1024);
  });

  /** [file text, words of the message] */
  const BAD: Array<[string, string]> = [
    ["timeout = 0", `${FILE} line 1: 'timeout' must be whole seconds from 1 to 10000, not '0'`],
    ["\ntimeout = 10001", "line 2: 'timeout'"],
    ["timeout = 1.5", "'timeout' must be whole seconds"],
    ["timeout = ", "'timeout' must be whole seconds"],
    ["readahead = 1000", "'readahead' must be a multiple of 512 (QEMU refuses others), not 1000"],
    ["readahead = 256", "'readahead' must be bytes from 512"],
    ["preflight = maybe", "'preflight' must be yes or no, not 'maybe'"],
    ["preflight_timeout = 0", "'preflight_timeout' must be whole seconds from 1 to 120"],
    ["allow = isos.example.org:99999", "'allow' has 'isos.example.org:99999'"],
    ["allow = a b", "'allow' has 'a b'"],
    [
      "allow = *.example.org",
      "'allow' takes no wildcards: write '.example.org' for example.org and every name under it",
    ],
    ["allow = ", "'allow' has ''"],
    [
      "timout = 30",
      "unknown setting 'timout' (did you mean 'timeout'?); the settings are timeout, readahead, preflight, preflight_timeout, allow, relay, relay_cache_size, relay_readahead, relay_shared_cache, relay_host_connections, proxy, no_proxy and relay_cache_total",
    ],
    ["proxy_url = x", "unknown setting 'proxy_url'; the settings are timeout,"],
    ["relay = qemu", "'relay' must be nbdkit or off, not 'qemu'"],
    [
      "relay_cache_size = 1M",
      "'relay_cache_size' must be bytes from 16M to 1024G (K, M and G are 1024-based), not '1M'",
    ],
    ["relay_cache_size = 2T", "'relay_cache_size' must be bytes from 16M"],
    ["relay_cache_size = 1.5G", "'relay_cache_size' must be bytes from 16M"],
    ["relay_cache_total = 0%", "'relay_cache_total' must be bytes from 16M to 1024G"],
    ["relay_cache_total = 150%", "or a share of the cache file system's free space from 1% to 100%, not '150%'"],
    ["relay_cache_total = 1M", "'relay_cache_total' must be bytes from 16M"],
    ["relay_readahead = 1536K", "'relay_readahead' must be whole MiB from 0 (none) to 64M"],
    ["relay_readahead = 128M", "'relay_readahead' must be whole MiB"],
    [
      "relay_shared_cache = 1M",
      "'relay_shared_cache' must be bytes from 16M to 1024G (K, M and G are 1024-based), or 0",
    ],
    ["relay_host_connections = 0", "'relay_host_connections' must be a whole number from 1 to 1024"],
    ["relay_host_connections = many", "'relay_host_connections' must be a whole number from 1 to 1024"],
    ["timeout 30", "'timeout 30' is not 'key = value'"],
    ["timeout = 30\ntimeout = 40", "line 2: 'timeout' is set twice"],
  ];
  for (const [text, words] of BAD) {
    test(`parseSettings() refuses ${JSON.stringify(text)} naming the file, line and key`, () => {
      assert.throws(() => parseSettings(text, FILE), (error: Error) => {
        assert.ok(error.message.startsWith(`${FILE} line `), error.message);
        assert.ok(error.message.includes(words), error.message);
        return true;
      });
    });
  }
});
