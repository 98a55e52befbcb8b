// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseSettings } from "../lib/settings.ts";
import { allowWarning, checkAllowed } from "../lib/policy.ts";
import { parseIsoUrl } from "../lib/url.ts";
import { PolicyError } from "../lib/errors.ts";

const FILE = "/etc/vdsm/httpsisoboot.conf";

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

  test("checkAllowed() on a redirect target names no server, since the server chose it", () => {
    assert.throws(
      () =>
        checkAllowed(
          parseIsoUrl("https://10.0.0.1/a.iso"),
          allow,
          FILE,
          "https://isos.example.org:443/a.iso redirects (HTTP 302) to a server",
        ),
      (error: Error) =>
        error instanceof PolicyError && !error.message.includes("10.0.0.1") &&
        /redirects \(HTTP 302\) to a server that the 'allow' setting/.test(error.message),
    );
  });

  test("checkAllowed() allows any server when the list is empty", () => {
    checkAllowed(parseIsoUrl("https://anything.example/a.iso"), [], FILE);
  });
});

describe("allowWarning()", () => {
  test("allowWarning() warns while allow is unset, naming the file and what it opens", () => {
    assert.equal(
      allowWarning([], "/etc/vdsm/httpsisoboot.conf"),
      "allow is not set in /etc/vdsm/httpsisoboot.conf, so any server is allowed: any user who may start a VM can " +
        "make this host connect to any host and port; set allow to your ISO servers",
    );
  });
  test("allowWarning() says nothing once allow names a server", () => {
    assert.equal(allowWarning([{ host: ".example.org" }], "/etc/vdsm/httpsisoboot.conf"), undefined);
  });
});
