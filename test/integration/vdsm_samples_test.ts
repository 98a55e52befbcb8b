// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Real VDSM domains from oVirt's test data, read in place from
 * ../shared/reference/vdsm-samples (GPL, not copied into this project).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { addHttpsCdrom } from "../../lib/domain/add_https_cdrom.ts";
import { run, tempDir, VDSM_SAMPLES, virshMissing } from "../support/mod.ts";

const SAMPLES = VDSM_SAMPLES;
const samples = existsSync(SAMPLES) ? readdirSync(SAMPLES).filter((name) => name.endsWith(".xml")).sort() : [];
let work = "";

describe("VDSM's own sample domains", {
  skip: samples.length === 0 ? `no samples at ${SAMPLES} (they live beside the project, not in it)` : undefined,
}, () => {
  // Made and removed with the suite, so a skipped suite leaves nothing behind.
  before(() => {
    work = tempDir("samples");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const name of samples) {
    test(`addHttpsCdrom() adds one CD-ROM to ${name}, idempotently, and libvirt's test driver accepts it`, () => {
      const input = readFileSync(join(SAMPLES, name), "utf8");
      const first = addHttpsCdrom(input, "https://isos.example.org/el9/boot.iso?sig=abc");
      assert.equal(first.changed, true);
      assert.equal(first.xml.match(/<source protocol='https'/g)?.length, 1);
      assert.equal(addHttpsCdrom(first.xml, first.url).changed, false);
      if (!virshMissing()) {
        const path = join(work, name);
        writeFileSync(path, first.xml);
        const defined = run("virsh", ["-c", "test:///default", "define", path]);
        assert.equal(defined.status, 0, defined.stderr);
      }
    });
  }
});
