// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { checkReport, checkUrl, planDryRun, planHook, planIncoming } from "../lib/run.ts";
import { DEFAULT_SETTINGS, parseSettings } from "../lib/settings.ts";
import { PolicyError, SettingsError, UrlError } from "../lib/errors.ts";
import { readFixture } from "./support/mod.ts";

/** A host that lets QEMU's curl read the ISO (relay = off): the direct mode of before the relay. */
const HOST = { settings: { ...DEFAULT_SETTINGS, relay: "off" as const }, file: "/etc/vdsm/httpsisoboot.conf" };
/** A host with every default: relay mode. */
const RELAY_HOST = {
  settings: DEFAULT_SETTINGS,
  file: "/etc/vdsm/httpsisoboot.conf",
  dirs: { run: "/run/h", cache: "/c" },
};
const UUID = "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21";
const URL = "https://isos.example.org/el9/boot.iso?sig=TOPSECRET&exp=1";
const SAMPLE = readFixture("q35-vdsm.in.xml");

describe("checkUrl()", () => {
  test("checkUrl() refuses a bad URL, then a server 'allow' does not name", () => {
    assert.throws(() => checkUrl("http://isos.example.org/a.iso", HOST), UrlError);
    const allowOther = { settings: parseSettings("allow = other.example.org", "f.conf"), file: "f.conf" };
    assert.throws(() => checkUrl(URL, allowOther), PolicyError);
  });

  test("checkUrl() refuses relay = off for a server reached through the proxy, which QEMU's curl cannot use", () => {
    const settings = (text: string) => ({ settings: parseSettings(text, "f.conf"), file: "f.conf" });
    assert.throws(
      () => checkUrl(URL, settings("relay = off\nproxy = http://hv:pw@proxy:3128")),
      (error: Error) =>
        error instanceof SettingsError &&
        error.message ===
          "f.conf sets relay = off, but isos.example.org is reached through the proxy http://proxy:3128, which " +
            "QEMU's curl driver cannot use: set relay = nbdkit, or name the host in no_proxy if this host reaches it " +
            "directly",
    );
    assert.equal(
      checkUrl(URL, settings("relay = off\nproxy = http://proxy:3128\nno_proxy = .example.org")).host,
      "isos.example.org",
    );
    assert.equal(checkUrl(URL, settings("proxy = http://proxy:3128")).host, "isos.example.org");
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

  test("planHook() in relay mode, the default, plans the relay with the URL, and logs its socket", () => {
    const plan = planHook(SAMPLE, checkUrl(URL, RELAY_HOST), RELAY_HOST);
    assert.deepEqual(plan.relay, {
      uuid: UUID,
      config: {
        url: "https://isos.example.org:443/el9/boot.iso?sig=TOPSECRET&exp=1",
        timeout: 30,
        allow: [],
        settingsFile: "/etc/vdsm/httpsisoboot.conf",
        cacheSize: 1024 ** 3,
        cacheTotal: { percent: 50 },
        readaheadBlocks: 32,
        sharedCache: 4 * 1024 ** 3,
        hostConnections: 64,
        name: "web01",
      },
    });
    assert.match(
      plan.write!,
      /<source protocol="nbd">\s*<host transport="unix" socket="\/run\/h\/7a3c1f52-[-0-9a-f]+\.sock" \/>/,
    );
    assert.equal(
      plan.message,
      `added CD-ROM sdb (sata) from https://isos.example.org:443/el9/boot.iso?sig=***&exp=*** through its relay on /run/h/${UUID}.sock as boot device 1`,
    );
  });

  test("planHook() in relay mode writes nothing the second time, and only the metadata for another URL", () => {
    const once = planHook(SAMPLE, checkUrl(URL, RELAY_HOST), RELAY_HOST);
    assert.equal(planHook(once.write!, checkUrl(URL, RELAY_HOST), RELAY_HOST).write, undefined);
    const other = planHook(once.write!, checkUrl("https://isos.example.org/other.iso", RELAY_HOST), RELAY_HOST);
    assert.match(
      other.message,
      /^the domain's CD-ROM sdb \(sata\) from .*other\.iso through its relay .* now reads this URL$/,
    );
    assert.equal(other.write!.match(/<disk/g)!.length, once.write!.match(/<disk/g)!.length, "no second CD-ROM");
    assert.match(other.write!, /url="https:\/\/isos\.example\.org:443\/other\.iso"/);
  });

  test("planHook() writes nothing when the CD-ROM is there, and takes preflight = no", () => {
    const host = { settings: parseSettings("preflight = no\nrelay = off", "f.conf"), file: "f.conf" };
    const once = planHook(SAMPLE, checkUrl(URL, host), host);
    const twice = planHook(once.write!, checkUrl(URL, host), host);
    assert.equal(twice.write, undefined);
    assert.equal(twice.preflight, false);
    assert.match(twice.message, /^the domain already has CD-ROM sdb \(sata\) from .*sig=\*\*\*.*; nothing to do$/);
  });
});

describe("planIncoming()", () => {
  const hooked = () => planHook(SAMPLE, checkUrl(URL, RELAY_HOST), RELAY_HOST).write!;

  test("planIncoming() takes the whole URL from the custom property, which must be the ISO the domain records", () => {
    const incoming = planIncoming(hooked(), RELAY_HOST, URL)!;
    assert.equal(incoming.uuid, UUID);
    assert.equal(incoming.config.url, "https://isos.example.org:443/el9/boot.iso?sig=TOPSECRET&exp=1");
    const renewed = planIncoming(hooked(), RELAY_HOST, URL.replace("TOPSECRET", "RENEWED"))!;
    assert.match(renewed.config.url, /sig=RENEWED/, "a renewed signature for the same ISO");
  });

  test("planIncoming() refuses a VM whose recorded URL has a query when VDSM passes no property, or another ISO's", () => {
    assert.throws(() => planIncoming(hooked(), RELAY_HOST, undefined), (error: Error) => {
      assert.ok(error instanceof UrlError);
      assert.match(error.message, /VDSM passed no httpsisoboot property, which holds its query/);
      assert.ok(!error.message.includes("TOPSECRET"));
      return true;
    });
    assert.throws(
      () => planIncoming(hooked(), RELAY_HOST, "https://isos.example.org/el8/boot.iso?sig=x"),
      /names https:\/\/isos\.example\.org:443\/el8\/boot\.iso\?sig=\*\*\*, but this VM reads .*el9.*; a running VM's CD-ROM cannot change its ISO/,
    );
  });

  test("planIncoming() reads a query-less URL from the domain alone, and ignores a VM without a relay", () => {
    const plain = planHook(SAMPLE, checkUrl("https://isos.example.org/el9/boot.iso", RELAY_HOST), RELAY_HOST).write!;
    assert.equal(planIncoming(plain, RELAY_HOST, undefined)!.config.url, "https://isos.example.org:443/el9/boot.iso");
    assert.equal(planIncoming(SAMPLE, RELAY_HOST, URL), undefined);
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

  test("planDryRun() in relay mode hides the metadata's query and says what the relay would run", () => {
    const iso = checkUrl(URL, RELAY_HOST);
    const relay = {
      start: ["/usr/libexec/vdsm/httpsisoboot", "--relay", UUID],
      nbdkit: ["nbdkit", "--readonly", "url=http://x/iso"],
    };
    const plan = planDryRun(SAMPLE, iso, RELAY_HOST, { diff: false, name: "vm.xml", relay });
    assert.ok(!plan.stdout.includes("TOPSECRET"));
    assert.match(
      plan.stdout,
      /<httpsisoboot:relay xmlns:httpsisoboot="http:\/\/ovirt.org\/vm\/httpsisoboot\/1.0" url="https:\/\/isos.example.org:443\/el9\/boot.iso\?sig=\*\*\*&amp;exp=\*\*\*" \/>/,
    );
    assert.deepEqual(plan.message.split("\nhttpsisoboot: ").slice(1), [
      `the hook would start the relay: /usr/libexec/vdsm/httpsisoboot --relay ${UUID}`,
      "the relay would run: nbdkit --readonly url=http://x/iso",
    ]);
    const again = planDryRun(planHook(SAMPLE, iso, RELAY_HOST).write!, iso, RELAY_HOST, {
      diff: false,
      name: "vm.xml",
    });
    assert.ok(!again.stdout.includes("TOPSECRET"), "a recorded URL is hidden too");
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
    at: "a.example:443\n/x.iso",
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

  test("checkReport() says, in relay mode, whether and how relays run here, before the curl driver", () => {
    const report = checkReport(REPORT, {
      driver: "not installed; only relay = off needs it",
      relay: ["nbdkit 1.38.3", "started by systemd"],
    });
    assert.match(
      report,
      /\nrelay: nbdkit 1\.38\.3\nrelay: started by systemd\nqemu curl driver: not installed; only relay = off needs it\n$/,
    );
  });

  test("checkReport() says the proxy the server was reached through, after the URL, and SELinux and warnings last", () => {
    const report = checkReport(REPORT, {
      driver: DRIVER,
      proxy: "http://proxy:3128, which tunnelled to the server",
      selinux: "disabled (nothing to load)",
      warnings: ["allow is not set"],
    });
    assert.match(report, /^url: [^\n]*\nproxy: http:\/\/proxy:3128, which tunnelled to the server\ntls: /);
    assert.match(report, /\nselinux: disabled \(nothing to load\)\nwarning: allow is not set\n$/);
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
