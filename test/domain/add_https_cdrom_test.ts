// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Golden fixtures: test/fixtures/<case>.in.xml run through addHttpsCdrom()
 * must give <case>.out.xml. Regenerate the outputs with
 * `npm run golden:update` (UPDATE_GOLDEN=1) and review the diff.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";
import { addHttpsCdrom } from "../../lib/domain/add_https_cdrom.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { DEFAULT_SETTINGS } from "../../lib/settings.ts";
import { unifiedDiff } from "../../lib/diff.ts";
import { fixtureCases, FIXTURES, GOLDEN_URL, GOLDEN_URLS, readFixture, relayCases } from "../support/mod.ts";

const UPDATE = process.env.UPDATE_GOLDEN === "1";

describe("golden fixtures", () => {
  for (const name of fixtureCases()) {
    const url = GOLDEN_URLS[name] ?? GOLDEN_URL;
    // What the hook writes on a host with the default settings.
    const options = { timeout: DEFAULT_SETTINGS.timeout, readahead: DEFAULT_SETTINGS.readahead };
    const input = readFixture(`${name}.in.xml`);

    test(`addHttpsCdrom() turns ${name}.in.xml into ${name}.out.xml`, () => {
      const { xml } = addHttpsCdrom(input, url, options);
      const outPath = join(FIXTURES, `${name}.out.xml`);
      if (UPDATE || !existsSync(outPath)) writeFileSync(outPath, xml);
      assert.equal(xml, readFixture(`${name}.out.xml`));
    });

    test(`addHttpsCdrom() adds nothing the second time on ${name}`, () => {
      const first = addHttpsCdrom(input, url, options);
      const second = addHttpsCdrom(first.xml, url, options);
      assert.equal(second.changed, false);
      assert.equal(second.xml, first.xml);
      assert.deepEqual(second.target, first.target);
    });

    test(`addHttpsCdrom() changes only boot orders and the new disk in ${name}`, () => {
      const { edits } = addHttpsCdrom(input, url, options);
      const lines = unifiedDiff(input, edits).split("\n").filter((line) => /^[-+](?![-+]{2} )/.test(line));
      let inNewDisk = false;
      for (const line of lines) {
        if (line.startsWith("-")) {
          assert.match(line, /^-\s*<boot (order|dev)=/, `removed line: ${line}`);
          continue;
        }
        if (/^\+\s*<disk type=['"]network['"] device=['"]cdrom['"]>/.test(line)) inNewDisk = true;
        // A domain without <devices> gets one around the new disk.
        const newDevices = !/<devices[\s>/]/.test(input) && /^\+\s*<\/?devices>$/.test(line);
        assert.ok(
          inNewDisk || newDevices || /^\+\s*<boot order=/.test(line) || /^\+\s*<\/disk>$/.test(line),
          `added line: ${line}`,
        );
        if (/^\+\s*<\/disk>$/.test(line)) inNewDisk = false;
      }
      assert.equal(lines.filter((line) => /device=['"]cdrom['"]>/.test(line)).length, 1);
    });
  }

  for (const name of relayCases()) {
    const url = GOLDEN_URLS[name] ?? GOLDEN_URL;
    const input = readFixture(`${name}.in.xml`);
    const options = { relayDir: "/run/httpsisoboot" };

    test(`addHttpsCdrom() in relay mode turns ${name}.in.xml into ${name}.relay.out.xml`, () => {
      const { xml } = addHttpsCdrom(input, url, options);
      const outPath = join(FIXTURES, `${name}.relay.out.xml`);
      if (UPDATE || !existsSync(outPath)) writeFileSync(outPath, xml);
      assert.equal(xml, readFixture(`${name}.relay.out.xml`));
    });

    test(`addHttpsCdrom() in relay mode adds nothing the second time on ${name}, and the same edits otherwise`, () => {
      const first = addHttpsCdrom(input, url, options);
      const second = addHttpsCdrom(first.xml, url, options);
      assert.deepEqual([second.changed, second.added, second.xml], [false, false, first.xml]);
      const direct = addHttpsCdrom(input, url, {});
      assert.deepEqual(first.target, direct.target, "the same target as in direct mode");
    });
  }

  test("addHttpsCdrom() in relay mode writes no query value into the domain, which \`virsh -r dumpxml\` shows any local user", () => {
    for (const name of relayCases()) {
      const url = parseIsoUrl(GOLDEN_URLS[name] ?? GOLDEN_URL);
      const { xml } = addHttpsCdrom(readFixture(`${name}.in.xml`), url, { relayDir: "/run/httpsisoboot" });
      for (const value of (url.query ?? "").split("&").map((pair) => pair.split("=")[1]).filter(Boolean)) {
        assert.ok(!xml.includes(value), `${name}: the query value ${value} is in the domain`);
      }
      assert.match(xml, /<httpsisoboot:relay [^>]*url=/, name);
    }
  });

  test("addHttpsCdrom() in relay mode writes <reconnect delay> into the NBD source when asked, and only then", () => {
    const input = readFixture("q35-vdsm.in.xml");
    const plain = addHttpsCdrom(input, GOLDEN_URL, { relayDir: "/run/httpsisoboot" }).xml;
    const reconnecting = addHttpsCdrom(input, GOLDEN_URL, { relayDir: "/run/httpsisoboot", reconnectDelay: 10 }).xml;
    assert.doesNotMatch(plain, /<reconnect/);
    assert.match(
      reconnecting,
      /<source protocol="nbd">\s*<host transport="unix" socket="[^"]+" \/>\s*<reconnect delay="10" \/>\s*<\/source>/,
    );
  });

  test("addHttpsCdrom() in relay mode refuses a domain without a UUID, which names the relay", () => {
    assert.throws(
      () => addHttpsCdrom(readFixture("no-devices.in.xml"), GOLDEN_URL, { relayDir: "/run/httpsisoboot" }),
      /the domain has no <uuid>, which names its relay/,
    );
  });

  test("every relay golden output has one NBD CD-ROM on the VM's socket at boot order 1, and the URL in its metadata", () => {
    for (const name of relayCases()) {
      const out = readFixture(`${name}.relay.out.xml`);
      const uuid = /<uuid>([^<]+)<\/uuid>/.exec(out)![1];
      assert.equal(out.match(/<source protocol=['"]nbd['"]>/g)?.length, 1, name);
      assert.match(out, new RegExp(`<host transport=['"]unix['"] socket=['"]/run/httpsisoboot/${uuid}\\.sock['"]`));
      assert.equal(out.match(/<boot order=['"]1['"]/g)?.length, 1, name);
      assert.doesNotMatch(out, /<source protocol=['"]https['"]/, name);
      assert.match(
        out,
        /<httpsisoboot:relay xmlns:httpsisoboot=['"]http:\/\/ovirt\.org\/vm\/httpsisoboot\/1\.0['"] url=/,
      );
    }
  });

  test("every golden output has exactly one https CD-ROM, with boot order 1 and nothing else at 1", () => {
    for (const name of fixtureCases()) {
      const out = readFixture(`${name}.out.xml`);
      assert.equal(out.match(/<source protocol=['"]https['"]/g)?.length, 1, name);
      assert.equal(out.match(/<boot order=['"]1['"]/g)?.length, 1, name);
      assert.doesNotMatch(out, /<boot dev=/, name);
    }
  });
});
