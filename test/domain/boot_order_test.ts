// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootOrderEdits } from "../../lib/domain/boot_order.ts";
import { DomainError } from "../../lib/errors.ts";
import { parseXml } from "../../lib/xml/parse.ts";
import { applyEdits } from "../../lib/xml/edit.ts";

/** Applies bootOrderEdits() to a domain with these devices, and returns the devices. */
function reorder(devicesXml: string, osXml = "<type arch='x86_64' machine='q35'>hvm</type>"): string {
  const document = parseXml(`<domain><os>${osXml}</os><devices>${devicesXml}</devices></domain>`);
  return applyEdits(document.text, bootOrderEdits(document)).replace(
    /^<domain><os>.*?<\/os><devices>|<\/devices><\/domain>$/g,
    "",
  );
}

/** Applies bootOrderEdits() to a whole domain. */
function reorderDomain(xml: string): string {
  const document = parseXml(xml);
  return applyEdits(xml, bootOrderEdits(document));
}

describe("bootOrderEdits()", () => {
  test("bootOrderEdits() moves every other boot order down one", () => {
    assert.equal(
      reorder(`<disk><boot order='1'/></disk><interface><boot order='2'/></interface>`),
      `<disk><boot order='2'/></disk><interface><boot order='3'/></interface>`,
    );
  });

  test("bootOrderEdits() keeps gaps between boot orders", () => {
    assert.equal(
      reorder(`<disk><boot order='3'/></disk><disk><boot order='1'/></disk><interface><boot order='7'/></interface>`),
      `<disk><boot order='4'/></disk><disk><boot order='2'/></disk><interface><boot order='8'/></interface>`,
    );
  });

  test("bootOrderEdits() shifts hostdevs, redirdevs and nested boot elements", () => {
    assert.equal(
      reorder(
        `<hostdev><source/><boot order='1'/></hostdev><redirdev><boot order='2'/></redirdev><interface type='hostdev'><x><boot order='3'/></x></interface>`,
      ),
      `<hostdev><source/><boot order='2'/></hostdev><redirdev><boot order='3'/></redirdev><interface type='hostdev'><x><boot order='4'/></x></interface>`,
    );
  });

  test("bootOrderEdits() converts <os><boot dev> in its order and removes it", () => {
    const osXml = "<type>hvm</type><boot dev='network'/><boot dev='cdrom'/><boot dev='hd'/><bootmenu enable='no'/>";
    assert.equal(
      reorderDomain(
        `<domain><os>${osXml}</os><devices><disk device='disk'/><disk device='cdrom'/><interface/></devices></domain>`,
      ),
      "<domain><os><type>hvm</type><bootmenu enable='no'/></os><devices>" +
        "<disk device='disk'><boot order='4'/></disk><disk device='cdrom'><boot order='3'/></disk>" +
        "<interface><boot order='2'/></interface></devices></domain>",
    );
  });

  test("bootOrderEdits() shifts boot orders in every <devices> element, as libvirt reads them all", () => {
    assert.equal(
      reorderDomain(
        "<domain><devices><disk><boot order='1'/></disk></devices><devices><interface><boot order='2'/></interface></devices></domain>",
      ),
      "<domain><devices><disk><boot order='2'/></disk></devices><devices><interface><boot order='3'/></interface></devices></domain>",
    );
  });

  test("bootOrderEdits() converts <os><boot dev> across several <devices> and removes every <os><boot>", () => {
    assert.equal(
      reorderDomain(
        "<domain><os><boot dev='network'/><boot dev='hd'/><boot dev='hd'/></os><devices><disk/></devices><devices><interface/></devices></domain>",
      ),
      "<domain><os></os><devices><disk><boot order='3'/></disk></devices><devices><interface><boot order='2'/></interface></devices></domain>",
    );
  });

  test("bootOrderEdits() treats a domain without any boot setting as libvirt does: boot the first disk", () => {
    assert.equal(
      reorder(`<disk device='cdrom'/><disk/><disk/><interface/>`),
      `<disk device='cdrom'/><disk><boot order='2'/></disk><disk/><interface/>`,
    );
  });

  test("bootOrderEdits() skips boot devs that match no device", () => {
    assert.equal(
      reorder(`<disk/>`, "<type>hvm</type><boot dev='fd'/><boot dev='network'/><boot dev='hd'/>"),
      `<disk><boot order='2'/></disk>`,
    );
  });

  test("bootOrderEdits() indents an added boot order like the device's other children", () => {
    const out = reorderDomain(
      "<domain><devices>\n    <disk>\n      <source/>\n      <target/>\n    </disk>\n  </devices></domain>",
    );
    assert.ok(out.includes("      <target/>\n      <boot order='2'/>\n    </disk>"), out);
  });

  test("bootOrderEdits() refuses a domain with both kinds of boot order, as libvirt does", () => {
    assert.throws(
      () => reorder(`<disk><boot order='1'/></disk>`, "<type>hvm</type><boot dev='hd'/>"),
      /both <os><boot dev> and per-device <boot order>/,
    );
  });

  for (const bad of ["0", "-1", "x", "1.5", ""]) {
    test(`bootOrderEdits() refuses <boot order='${bad}'>`, () => {
      assert.throws(() => reorder(`<disk><boot order='${bad}'/></disk>`), DomainError);
    });
  }
});
