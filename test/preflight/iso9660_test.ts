// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readVolumeDescriptor } from "../../lib/preflight/iso9660.ts";

const sector = (magic: string, label = "") => {
  const bytes = new Uint8Array(2048);
  bytes.set([1, ...new TextEncoder().encode(magic)]);
  bytes.set(new TextEncoder().encode(label.padEnd(32, " ")), 40);
  return bytes;
};

describe("readVolumeDescriptor()", () => {
  test("readVolumeDescriptor() reads ISO 9660 with its label, UDF, and nothing else", () => {
    assert.deepEqual(readVolumeDescriptor(sector("CD001", "RHEL-9-4-0-BaseOS-x86_64")), {
      format: "ISO 9660",
      label: "RHEL-9-4-0-BaseOS-x86_64",
    });
    assert.deepEqual(readVolumeDescriptor(sector("BEA01")), { format: "UDF", label: "" });
    assert.equal(readVolumeDescriptor(sector("CD002")), undefined);
    assert.equal(readVolumeDescriptor(new Uint8Array(3)), undefined);
  });

  test("readVolumeDescriptor() makes a hostile label printable: no ESC, BEL or line break", () => {
    assert.equal(readVolumeDescriptor(sector("CD001", "A\u001b[2J\u0007\nB"))!.label, "A [2J B");
  });
});
