import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bootFirst } from "../lib/boot_order.ts";
import { parseXml } from "../lib/xml_parse.ts";
import { serializeXml } from "../lib/xml_serialize.ts";
import { child, children, getAttribute } from "../lib/xml_tree.ts";

/** Runs bootFirst() on a domain whose device with id='new' is to boot first. */
function reorder(devicesXml: string, osXml = "<type arch='x86_64' machine='q35'>hvm</type>"): string {
  const parsed = parseXml(`<domain><os>${osXml}</os><devices>${devicesXml}</devices></domain>`);
  const added = children(child(parsed.root, "devices")!, "disk").find((disk) => getAttribute(disk, "id") === "new")!;
  bootFirst(parsed.root, added);
  return serializeXml(parsed).replace(/^<domain><os>.*?<\/os><devices>|<\/devices><\/domain>$/g, "");
}

const NEW = "<disk id='new'><boot order='1'/></disk>";

describe("bootFirst()", () => {
  test("bootFirst() moves every other boot order down one", () => {
    assert.equal(
      reorder(`<disk><boot order='1'/></disk><interface><boot order='2'/></interface>${NEW}`),
      `<disk><boot order='2'/></disk><interface><boot order='3'/></interface>${NEW}`,
    );
  });

  test("bootFirst() keeps gaps between boot orders", () => {
    assert.equal(
      reorder(`<disk><boot order='3'/></disk><disk><boot order='1'/></disk><interface><boot order='7'/></interface>${NEW}`),
      `<disk><boot order='4'/></disk><disk><boot order='2'/></disk><interface><boot order='8'/></interface>${NEW}`,
    );
  });

  test("bootFirst() shifts hostdevs, redirdevs and nested boot elements", () => {
    assert.equal(
      reorder(`<hostdev><source/><boot order='1'/></hostdev><redirdev><boot order='2'/></redirdev><interface type='hostdev'><x><boot order='3'/></x></interface>${NEW}`),
      `<hostdev><source/><boot order='2'/></hostdev><redirdev><boot order='3'/></redirdev><interface type='hostdev'><x><boot order='4'/></x></interface>${NEW}`,
    );
  });

  test("bootFirst() converts <os><boot dev> in its order and removes it", () => {
    const osXml = "<type>hvm</type><boot dev='network'/><boot dev='cdrom'/><boot dev='hd'/><bootmenu enable='no'/>";
    const parsed = parseXml(
      `<domain><os>${osXml}</os><devices><disk device='disk'/><disk device='cdrom'/><interface/>${NEW}</devices></domain>`,
    );
    bootFirst(parsed.root, children(child(parsed.root, "devices")!, "disk")[2]);
    assert.equal(
      serializeXml(parsed),
      "<domain><os><type>hvm</type><bootmenu enable='no'/></os><devices>" +
        "<disk device='disk'><boot order='4'/></disk><disk device='cdrom'><boot order='3'/></disk>" +
        `<interface><boot order='2'/></interface>${NEW}</devices></domain>`,
    );
  });

  test("bootFirst() treats a domain without any boot setting as libvirt does: boot the first disk", () => {
    assert.equal(
      reorder(`<disk device='cdrom'/><disk/><disk/><interface/>${NEW}`),
      `<disk device='cdrom'/><disk><boot order='2'/></disk><disk/><interface/>${NEW}`,
    );
  });

  test("bootFirst() skips boot devs that match no device", () => {
    assert.equal(
      reorder(`<disk/>${NEW}`, "<type>hvm</type><boot dev='fd'/><boot dev='network'/><boot dev='hd'/>"),
      `<disk><boot order='2'/></disk>${NEW}`,
    );
  });

  test("bootFirst() indents an added boot order like the device's other children", () => {
    const parsed = parseXml("<domain><devices>\n    <disk>\n      <source/>\n      <target/>\n    </disk>\n    <disk id='new'><boot order='1'/></disk>\n  </devices></domain>");
    bootFirst(parsed.root, children(child(parsed.root, "devices")!, "disk")[1]);
    assert.ok(serializeXml(parsed).includes("      <target/>\n      <boot order='2'/>\n    </disk>"));
  });

  test("bootFirst() refuses a domain with both kinds of boot order, as libvirt does", () => {
    assert.throws(
      () => reorder(`<disk><boot order='1'/></disk>${NEW}`, "<type>hvm</type><boot dev='hd'/>"),
      /both <os><boot dev> and per-device <boot order>/,
    );
  });

  for (const bad of ["0", "-1", "x", "1.5", ""]) {
    test(`bootFirst() refuses <boot order='${bad}'>`, () => {
      assert.throws(() => reorder(`<disk><boot order='${bad}'/></disk>${NEW}`), SyntaxError);
    });
  }
});
