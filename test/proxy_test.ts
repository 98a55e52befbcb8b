// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connectRefusal, connectRequest, parseNoProxy, parseProxy, proxyFor } from "../lib/proxy.ts";
import { SettingsError } from "../lib/errors.ts";
import { parseIsoUrl } from "../lib/url.ts";

const WHERE = "/etc/vdsm/httpsisoboot.conf line 4";

describe("parseProxy()", () => {
  const GOOD: Array<[string, Record<string, unknown>]> = [
    ["http://proxy.example.net:3128", { scheme: "http", host: "proxy.example.net", port: 3128 }],
    ["http://proxy.example.net", { scheme: "http", host: "proxy.example.net", port: 80 }],
    ["https://proxy.example.net/", { scheme: "https", host: "proxy.example.net", port: 443 }],
    ["http://[2001:db8::1]:8080", {
      scheme: "http",
      host: "2001:db8::1",
      port: 8080,
      shown: "http://[2001:db8::1]:8080",
    }],
    ["http://hv@proxy:3128", { authorization: `Basic ${btoa("hv:")}`, shown: "http://proxy:3128" }],
    ["http://hv:p%3Ass@proxy:3128", { authorization: `Basic ${btoa("hv:p:ss")}` }],
  ];
  for (const [value, expected] of GOOD) {
    test(`parseProxy() reads ${value.replace(/:[^:@/]*@/, ":***@")}`, () => {
      const proxy = parseProxy(value, WHERE);
      for (const [key, want] of Object.entries(expected)) assert.deepEqual(proxy[key as keyof typeof proxy], want, key);
    });
  }
  const BAD = [
    "proxy:3128",
    "socks5://proxy:1080",
    "http://proxy:99999",
    "http://proxy:3128/path",
    "http://u:%zz@proxy:1",
  ];
  for (const value of BAD) {
    test(`parseProxy() refuses '${value}' without showing it`, () => {
      assert.throws(
        () => parseProxy(value, WHERE),
        (error: Error) =>
          error instanceof SettingsError && !error.message.includes(value) && error.message.startsWith(WHERE),
      );
    });
  }
});

describe("proxyFor()", () => {
  const proxy = parseProxy("http://proxy:3128", WHERE);
  const noProxy = parseNoProxy(".lab.example.net, isos.example.org, 192.0.2.10", WHERE);
  const CASES: Array<[string, boolean]> = [
    ["https://mirror.example.com/a.iso", true],
    ["https://isos.example.org/a.iso", false],
    ["https://a.lab.example.net/a.iso", false],
    ["https://lab.example.net/a.iso", false],
    ["https://notlab.example.net/a.iso", true],
    ["https://192.0.2.10/a.iso", false],
    ["https://ISOS.example.org./a.iso", false],
  ];
  for (const [url, through] of CASES) {
    test(`proxyFor() ${through ? "tunnels" : "goes directly to"} ${url}`, () => {
      assert.equal(proxyFor(parseIsoUrl(url), proxy, noProxy) !== undefined, through);
    });
  }
  test("proxyFor() without a proxy goes directly", () => {
    assert.equal(proxyFor(parseIsoUrl("https://a.example/x.iso"), undefined, []), undefined);
  });
});

describe("connectRequest() and connectRefusal()", () => {
  test("connectRequest() asks for the server's host and port, with the credentials only when there are some", () => {
    const url = parseIsoUrl("https://[2001:db8::5]:8443/a.iso?sig=secret");
    assert.equal(
      connectRequest(url, parseProxy("http://hv:pw@proxy:3128", WHERE)),
      `CONNECT [2001:db8::5]:8443 HTTP/1.1\r\nHost: [2001:db8::5]:8443\r\nProxy-Authorization: Basic ${
        btoa("hv:pw")
      }\r\n\r\n`,
    );
    assert.doesNotMatch(connectRequest(url, parseProxy("http://proxy:3128", WHERE)), /sig|Authorization/);
  });
  test("connectRefusal() names the credentials for 407, the proxy's policy for 403, and the status otherwise", () => {
    assert.match(
      connectRefusal(407, "http://p:3128", "i:443", "F")!,
      /asks for credentials .*proxy = http:\/\/user:password@host:port in F/,
    );
    assert.match(connectRefusal(401, "http://p:3128", "i:443", "F")!, /asks for credentials to reach i:443 \(401\)/);
    assert.match(connectRefusal(403, "http://p:3128", "i:443", "F")!, /refuses tunnels to i:443 \(403\): its policy/);
    assert.match(connectRefusal(502, "http://p:3128", "i:443", "F")!, /opened no tunnel to i:443 \(HTTP 502\)/);
    assert.equal(connectRefusal(200, "http://p:3128", "i:443", "F"), undefined);
  });
});
