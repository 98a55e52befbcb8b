// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { UrlError } from "../lib/errors.ts";
import { encodePathLikeLibvirt, parseIsoUrl, redactQuery } from "../lib/url.ts";

/** [URL, host, port, decoded name, query, href QEMU fetches] */
const GOOD: Array<[string, string, number, string, string | undefined, string]> = [
  [
    "https://isos.example.org/el9/boot.iso",
    "isos.example.org",
    443,
    "/el9/boot.iso",
    undefined,
    "https://isos.example.org:443/el9/boot.iso",
  ],
  [
    "https://isos.example.org:8443/boot.iso",
    "isos.example.org",
    8443,
    "/boot.iso",
    undefined,
    "https://isos.example.org:8443/boot.iso",
  ],
  ["https://isos.example.org:1/b.iso", "isos.example.org", 1, "/b.iso", undefined, "https://isos.example.org:1/b.iso"],
  [
    "https://isos.example.org:65535/b.iso",
    "isos.example.org",
    65535,
    "/b.iso",
    undefined,
    "https://isos.example.org:65535/b.iso",
  ],
  [
    "HTTPS://ISOS.Example.ORG/Boot.iso",
    "isos.example.org",
    443,
    "/Boot.iso",
    undefined,
    "https://isos.example.org:443/Boot.iso",
  ],
  ["https://192.0.2.10/boot.iso", "192.0.2.10", 443, "/boot.iso", undefined, "https://192.0.2.10:443/boot.iso"],
  ["https://127.0.0.1:4443/boot.iso", "127.0.0.1", 4443, "/boot.iso", undefined, "https://127.0.0.1:4443/boot.iso"],
  [
    "https://[2001:db8::10]/boot.iso",
    "2001:db8::10",
    443,
    "/boot.iso",
    undefined,
    "https://[2001:db8::10]:443/boot.iso",
  ],
  ["https://[::1]:8443/boot.iso", "::1", 8443, "/boot.iso", undefined, "https://[::1]:8443/boot.iso"],
  ["https://[2001:DB8::A]/x.iso", "2001:db8::a", 443, "/x.iso", undefined, "https://[2001:db8::a]:443/x.iso"],
  [
    "https://bücher.example/boot.iso",
    "xn--bcher-kva.example",
    443,
    "/boot.iso",
    undefined,
    "https://xn--bcher-kva.example:443/boot.iso",
  ],
  [
    "https://xn--bcher-kva.example/boot.iso",
    "xn--bcher-kva.example",
    443,
    "/boot.iso",
    undefined,
    "https://xn--bcher-kva.example:443/boot.iso",
  ],
  ["https://localhost/boot.iso", "localhost", 443, "/boot.iso", undefined, "https://localhost:443/boot.iso"],
  [
    "https://a-b.c-d.example/boot.iso",
    "a-b.c-d.example",
    443,
    "/boot.iso",
    undefined,
    "https://a-b.c-d.example:443/boot.iso",
  ],
  [
    "https://isos.example.org/boot%20disk.iso",
    "isos.example.org",
    443,
    "/boot disk.iso",
    undefined,
    "https://isos.example.org:443/boot%20disk.iso",
  ],
  [
    "https://isos.example.org/a%3Ab.iso",
    "isos.example.org",
    443,
    "/a:b.iso",
    undefined,
    "https://isos.example.org:443/a%3Ab.iso",
  ],
  [
    "https://isos.example.org/100%25.iso",
    "isos.example.org",
    443,
    "/100%.iso",
    undefined,
    "https://isos.example.org:443/100%25.iso",
  ],
  [
    "https://isos.example.org/a%3fb.iso",
    "isos.example.org",
    443,
    "/a?b.iso",
    undefined,
    "https://isos.example.org:443/a%3Fb.iso",
  ],
  [
    "https://isos.example.org/%41.iso",
    "isos.example.org",
    443,
    "/A.iso",
    undefined,
    "https://isos.example.org:443/A.iso",
  ],
  [
    "https://isos.example.org/caf%C3%A9.iso",
    "isos.example.org",
    443,
    "/café.iso",
    undefined,
    "https://isos.example.org:443/caf%C3%A9.iso",
  ],
  [
    "https://isos.example.org/café.iso",
    "isos.example.org",
    443,
    "/café.iso",
    undefined,
    "https://isos.example.org:443/caf%C3%A9.iso",
  ],
  [
    "https://isos.example.org/a;b@c&d=e+f$g,h!i~j*k'l(m)n.iso",
    "isos.example.org",
    443,
    "/a;b@c&d=e+f$g,h!i~j*k'l(m)n.iso",
    undefined,
    "https://isos.example.org:443/a;b@c&d=e+f$g,h!i~j*k'l(m)n.iso",
  ],
  [
    "https://isos.example.org/boot.iso?sig=abc&expires=1700000000",
    "isos.example.org",
    443,
    "/boot.iso",
    "sig=abc&expires=1700000000",
    "https://isos.example.org:443/boot.iso?sig=abc&expires=1700000000",
  ],
  [
    "https://s3.example.org/bucket/boot.iso?X-Amz-Signature=a%2Fb%3D&X-Amz-Credential=AKIA%2F2024",
    "s3.example.org",
    443,
    "/bucket/boot.iso",
    "X-Amz-Signature=a%2Fb%3D&X-Amz-Credential=AKIA%2F2024",
    "https://s3.example.org:443/bucket/boot.iso?X-Amz-Signature=a%2Fb%3D&X-Amz-Credential=AKIA%2F2024",
  ],
  [
    "https://isos.example.org/boot.iso?a/b?c:d@e",
    "isos.example.org",
    443,
    "/boot.iso",
    "a/b?c:d@e",
    "https://isos.example.org:443/boot.iso?a/b?c:d@e",
  ],
  [
    "https://isos.example.org/boot.iso#fragment",
    "isos.example.org",
    443,
    "/boot.iso",
    undefined,
    "https://isos.example.org:443/boot.iso",
  ],
  [
    "https://isos.example.org/boot.iso?x=1#frag",
    "isos.example.org",
    443,
    "/boot.iso",
    "x=1",
    "https://isos.example.org:443/boot.iso?x=1",
  ],
  [
    "https://isos.example.org/boot.iso?",
    "isos.example.org",
    443,
    "/boot.iso",
    undefined,
    "https://isos.example.org:443/boot.iso",
  ],
  ["https://isos.example.org/dir/", "isos.example.org", 443, "/dir/", undefined, "https://isos.example.org:443/dir/"],
  [
    "https://isos.example.org./boot.iso",
    "isos.example.org.",
    443,
    "/boot.iso",
    undefined,
    "https://isos.example.org.:443/boot.iso",
  ],
];

/** [URL, words the message must contain] */
const BAD: Array<[string, string]> = [
  ["", "empty"],
  ["http://isos.example.org/boot.iso", "only https"],
  ["htps://isos.example.org/boot.iso", "only https is supported; did you mean https://?"],
  ["httpss://isos.example.org/boot.iso", "did you mean https://?"],
  ["ftp://isos.example.org/boot.iso", "only https"],
  ["file:///var/isos/boot.iso", "only https"],
  ["isos.example.org/boot.iso", "does not start with https://"],
  ["https:/isos.example.org/boot.iso", "does not start with https:// (two slashes after 'https:')"],
  ["https//isos.example.org/boot.iso", "it starts with 'https/' or 'https//': write 'https://'"],
  ["https/isos.example.org/boot.iso", "write 'https://'"],
  ["https://admin:s3cret@isos.example.org/boot.iso", "credentials"],
  ["https://admin@isos.example.org/boot.iso", "credentials"],
  ["https://isos.example.org/boot disk.iso", "a space (U+0020)"],
  [" https://isos.example.org/boot.iso", "a space"],
  ["https://isos.example.org/boot.iso\n", "white space (U+000A)"],
  ["https://isos.example.org/boot.iso\r\nX-Evil: 1", "white space (U+000D)"],
  ["https://isos.example.org/\tboot.iso", "white space (U+0009)"],
  ["https://isos.example.org/boot\u0000.iso", "control character (U+0000)"],
  ["https://isos.example.org/boot\u007f.iso", "control character (U+007F)"],
  ["https://isos.example.org/boot\u00a0.iso", "white space (U+00A0)"],
  ["https://isos.example.org", "no path"],
  ["https://isos.example.org/", "no path"],
  ["https://isos.example.org?x=1", "no path"],
  ["https:///boot.iso", "no host"],
  ["https://:443/boot.iso", "no host"],
  ["https://isos.example.org:/boot.iso", "no port after it"],
  ["https://isos.example.org:0/boot.iso", "1 to 65535"],
  ["https://isos.example.org:65536/boot.iso", "1 to 65535"],
  ["https://isos.example.org:99999/boot.iso", "1 to 65535"],
  ["https://isos.example.org:443a/boot.iso", "not a number"],
  ["https://isos.example.org:-1/boot.iso", "not a number"],
  ["https://isos.example.org:123456/boot.iso", "not a number"],
  ["https://2001:db8::10/boot.iso", "brackets"],
  ["https://[2001:db8::10/boot.iso", "closing ']'"],
  ["https://[2001:db8::zz]/boot.iso", "not a valid IPv6"],
  ["https://[fe80::1%25eth0]/boot.iso", "zone"],
  ["https://[::1]x/boot.iso", "after its IPv6"],
  ["https://256.1.1.1/boot.iso", "not a valid IPv4"],
  ["https://1.2.3/boot.iso", "not a valid IPv4"],
  ["https://010.0.0.1/boot.iso", "not a valid IPv4"],
  ["https://under_score.example/boot.iso", "not a valid DNS name"],
  ["https://-bad.example/boot.iso", "not a valid DNS name"],
  ["https://a..b.example/boot.iso", "not a valid DNS name"],
  [`https://${"a".repeat(64)}.example/boot.iso`, "not a valid DNS name"],
  ["https://isos.example.org/a|b.iso", "percent-encode it as %7C"],
  ['https://isos.example.org/a"b.iso', "percent-encode it as %22"],
  ["https://isos.example.org/a[1].iso", "percent-encode it as %5B"],
  ["https://isos.example.org/boot.iso?a=<b>", "percent-encode it as %3C"],
  ["https://isos.example.org/100%.iso", "not followed by two hex digits"],
  ["https://isos.example.org/a%zz.iso", "not followed by two hex digits"],
  ["https://isos.example.org/a%FF.iso", "not UTF-8"],
  ["https://isos.example.org/a%00.iso", "control character (%00)"],
  ["https://isos.example.org/a%0A.iso", "control character (%0A)"],
  ["https://isos.example.org/a%2Fb.iso", "%2F"],
  ["https://isos.example.org/a:b.iso", "write it as %3A"],
  ["https://isos.example.org/a%21b.iso", "write it as '!'"],
  ["https://isos.example.org/a/../b.iso", "'..'"],
  ["https://isos.example.org/./b.iso", "'.'"],
];

describe("parseIsoUrl()", () => {
  test(`the table holds at least 40 URLs (${GOOD.length + BAD.length})`, () => {
    assert.ok(GOOD.length + BAD.length >= 40);
  });

  for (const [url, host, port, name, query, href] of GOOD) {
    test(`parseIsoUrl() accepts ${JSON.stringify(url)}`, () => {
      const parsed = parseIsoUrl(url);
      assert.deepEqual(
        { host: parsed.host, port: parsed.port, name: parsed.name, query: parsed.query, href: parsed.href },
        { host, port, name, query, href },
      );
    });
  }

  for (const [url, words] of BAD) {
    test(`parseIsoUrl() refuses ${JSON.stringify(url)} saying "${words}"`, () => {
      assert.throws(() => parseIsoUrl(url), (error: Error) => {
        assert.ok(error instanceof UrlError, `${error.name}: ${error.message}`);
        assert.ok(error.message.includes(words), `message was: ${error.message}`);
        assert.ok(!error.message.includes("\n"), "the message is one line");
        return true;
      });
    });
  }

  test("parseIsoUrl() never puts credentials in its message", () => {
    for (const url of ["https://admin:s3cret@isos.example.org/a.iso", "https://u:s3cret@[::1]:99999/a b.iso"]) {
      assert.throws(() => parseIsoUrl(url), (error: Error) => !error.message.includes("s3cret"));
    }
  });

  test("parseIsoUrl() redacts every query value and keeps the keys", () => {
    const parsed = parseIsoUrl("https://s3.example.org/b.iso?X-Amz-Signature=deadbeef&X-Amz-Expires=60&flag");
    assert.equal(parsed.redacted, "https://s3.example.org:443/b.iso?X-Amz-Signature=***&X-Amz-Expires=***&***");
    assert.ok(!parsed.redacted.includes("deadbeef"));
  });
});

describe("redactQuery()", () => {
  test("redactQuery() hides values, including empty ones", () => {
    assert.equal(redactQuery("a=1&b=&c"), "a=***&b=***&***");
  });
});

describe("encodePathLikeLibvirt()", () => {
  test("encodePathLikeLibvirt() leaves libvirt's safe characters raw and encodes the rest as UTF-8", () => {
    assert.equal(encodePathLikeLibvirt("/a b:c?d#e%f[g]é"), "/a%20b%3Ac%3Fd%23e%25f%5Bg%5D%C3%A9");
    assert.equal(encodePathLikeLibvirt("/-_.!~*'()/;@&=+$,"), "/-_.!~*'()/;@&=+$,");
  });
});
