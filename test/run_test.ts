// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { checkReport, checkUrl, planDryRun, planHook } from "../lib/run.ts";
import { DEFAULT_SETTINGS, parseSettings } from "../lib/settings.ts";
import { PolicyError, UrlError } from "../lib/errors.ts";
import { readFixture } from "./support/mod.ts";

const HOST = { settings: DEFAULT_SETTINGS, file: "/etc/vdsm/httpsisoboot.conf" };
const URL = "https://isos.example.org/el9/boot.iso?sig=TOPSECRET&exp=1";
const SAMPLE = readFixture("q35-vdsm.in.xml");

describe("checkUrl()", () => {
  test("checkUrl() refuses a bad URL, then a server 'allow' does not name", () => {
    assert.throws(() => checkUrl("http://isos.example.org/a.iso", HOST), UrlError);
    const allowOther = { settings: parseSettings("allow = other.example.org", "f.conf"), file: "f.conf" };
    assert.throws(() => checkUrl(URL, allowOther), PolicyError);
  });
});

describe("planHook()", () => {
  test("planHook() writes the new domain, asks the server first by default, and logs without query values", () => {
    const plan = planHook(SAMPLE, checkUrl(URL, HOST), HOST);
    assert.equal(plan.preflight, true);
    assert.match(plan.write!, /query="sig=TOPSECRET&amp;exp=1"/);
    assert.equal(
      plan.message,
      "added CD-ROM sdb (sata) from https://isos.example.org:443/el9/boot.iso?sig=***&exp=*** as boot device 1",
    );
  });

  test("planHook() writes nothing when the CD-ROM is there, and takes preflight = no", () => {
    const host = { settings: parseSettings("preflight = no", "f.conf"), file: "f.conf" };
    const once = planHook(SAMPLE, checkUrl(URL, host), host);
    const twice = planHook(once.write!, checkUrl(URL, host), host);
    assert.equal(twice.write, undefined);
    assert.equal(twice.preflight, false);
    assert.match(twice.message, /^the domain already has CD-ROM sdb \(sata\) from .*sig=\*\*\*.*; nothing to do$/);
  });
});

describe("planDryRun()", () => {
  test("planDryRun() prints the XML with query values hidden, once, and the diff from the same edits", () => {
    const iso = checkUrl(URL, HOST);
    const xml = planDryRun(SAMPLE, iso, HOST, { diff: false, name: "vm.xml" });
    assert.match(xml.stdout, /query="sig=\*\*\*&amp;exp=\*\*\*"/);
    assert.ok(!xml.stdout.includes("TOPSECRET"));
    const diff = planDryRun(SAMPLE, iso, HOST, { diff: true, name: "vm.xml" });
    assert.match(diff.stdout, /^--- vm.xml\n\+\+\+ vm.xml \(with httpsisoboot\)\n@@ /);
    assert.ok(!diff.stdout.includes("TOPSECRET"));
  });

  test("planDryRun() hides the query of a CD-ROM already there", () => {
    const iso = checkUrl(URL, HOST);
    const done = planHook(SAMPLE, iso, HOST).write!;
    const plan = planDryRun(done, iso, HOST, { diff: false, name: "vm.xml" });
    assert.ok(!plan.stdout.includes("TOPSECRET"));
    assert.match(plan.message, /already has/);
  });
});

describe("checkReport()", () => {
  const REPORT = {
    finalUrl: "https://a.example:443/x.iso",
    redirects: 0,
    size: 42,
    issuer: "CA",
    format: "UDF",
    label: "",
  };
  const DRIVER = "/usr/lib64/qemu-kvm/block-curl.so";

  test("checkReport() prints what the server said, made printable, and where QEMU's curl driver is", () => {
    const report = { ...REPORT, redirects: 2, issuer: "CA\u001b[31m", format: "ISO 9660", label: "BOOT" };
    assert.equal(
      checkReport(report, { driver: DRIVER }),
      "url: https://a.example:443/x.iso (after 2 redirects)\ntls: trusted by this host, issuer CN=CA [31m\nsize: 42 bytes\n" +
        `byte ranges: yes\nimage: ISO 9660, volume label 'BOOT'\nqemu curl driver: ${DRIVER}\n`,
    );
  });

  test("checkReport() adds the signed URL's expiry when there is one", () => {
    const signature = "expires 2026-11-27T13:00:00Z (S3), in 45 min";
    assert.match(
      checkReport(REPORT, { driver: DRIVER, signature }),
      /\nsigned URL: expires 2026-11-27T13:00:00Z \(S3\), in 45 min; migration and resume reopen it/,
    );
    assert.doesNotMatch(checkReport(REPORT, { driver: DRIVER }), /signed URL/);
  });
});
