import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_SETTINGS, parseSettings } from "../lib/settings.ts";
import { checkAllowed } from "../lib/policy.ts";
import { parseIsoUrl } from "../lib/url.ts";

const FILE = "/etc/httpsisoboot.conf";

describe("parseSettings()", () => {
  test("parseSettings() gives the defaults for an empty file or only comments", () => {
    assert.deepEqual(parseSettings("", FILE), DEFAULT_SETTINGS);
    assert.deepEqual(parseSettings("# nothing set\n\n   # still nothing\n", FILE), DEFAULT_SETTINGS);
  });

  test("parseSettings() reads every key, with comments and spaces", () => {
    const settings = parseSettings(
      "timeout = 60  # a minute\nreadahead=4194304\npreflight = no\npreflight_timeout = 10\nallow = isos.example.org, .lab.example.net:8443, [2001:db8::1], 192.0.2.10:4443\n",
      FILE,
    );
    assert.deepEqual(settings, {
      timeout: 60,
      readahead: 4194304,
      preflight: false,
      preflightTimeout: 10,
      allow: [{ host: "isos.example.org" }, { host: ".lab.example.net", port: 8443 }, { host: "2001:db8::1" }, { host: "192.0.2.10", port: 4443 }],
    });
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
    ["allow = ", "'allow' has ''"],
    ["timout = 30", "unknown setting 'timout'; the settings are timeout, readahead, preflight, preflight_timeout and allow"],
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

describe("checkAllowed()", () => {
  const allow = parseSettings("allow = isos.example.org, .lab.example.net, 192.0.2.10:4443, [2001:db8::1]", FILE).allow;
  const CASES: Array<[string, boolean]> = [
    ["https://isos.example.org/a.iso", true],
    ["https://ISOS.example.org:8443/a.iso", true],
    ["https://isos.example.org./a.iso", true],
    ["https://evil-isos.example.org/a.iso", false],
    ["https://isos.example.org.evil.com/a.iso", false],
    ["https://a.lab.example.net/a.iso", true],
    ["https://deep.a.lab.example.net/a.iso", true],
    ["https://lab.example.net/a.iso", true],
    ["https://xlab.example.net/a.iso", false],
    ["https://192.0.2.10:4443/a.iso", true],
    ["https://192.0.2.10/a.iso", false],
    ["https://[2001:db8::1]/a.iso", true],
    ["https://[2001:db8::2]/a.iso", false],
  ];
  for (const [url, allowed] of CASES) {
    test(`checkAllowed() ${allowed ? "allows" : "refuses"} ${url}`, () => {
      const check = () => checkAllowed(parseIsoUrl(url), allow, FILE);
      if (allowed) check();
      else assert.throws(check, new RegExp(`is not in the 'allow' setting of ${FILE}`));
    });
  }

  test("checkAllowed() allows any server when the list is empty", () => {
    checkAllowed(parseIsoUrl("https://anything.example/a.iso"), [], FILE);
  });
});
