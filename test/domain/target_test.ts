// SPDX-License-Identifier: GPL-2.0-or-later
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { DomainError } from "../../lib/errors.ts";
import { chooseTarget, diskNameToIndex, type ExistingDisk, indexToDiskSuffix } from "../../lib/domain/target.ts";

const at = (controller: number, unit: number, bus = 0) => ({ controller, bus, target: 0, unit });
const q35 = { arch: "x86_64", machine: "pc-q35-rhel8.6.0" };
const pc = { arch: "x86_64", machine: "pc-i440fx-rhel7.6.0" };

/** [what, machine, existing disks, expected dev, expected bus] */
const CASES: Array<[string, { arch: string; machine: string }, ExistingDisk[], string, string]> = [
  ["sata on q35 machines", q35, [], "sda", "sata"],
  ["sata on bare 'q35'", { arch: "x86_64", machine: "q35" }, [], "sda", "sata"],
  ["ide on i440fx machines", pc, [], "hda", "ide"],
  ["ide on bare 'pc'", { arch: "x86_64", machine: "pc" }, [], "hda", "ide"],
  ["ide on old rhel6 machine names", { arch: "x86_64", machine: "rhel6.6.0" }, [], "hda", "ide"],
  ["ide on i686", { arch: "i686", machine: "pc" }, [], "hda", "ide"],
  [
    "sata when the machine type is not given (it works on q35 and i440fx)",
    { arch: "x86_64", machine: "" },
    [],
    "sda",
    "sata",
  ],
  ["scsi on ppc64le pseries", { arch: "ppc64le", machine: "pseries-rhel8.6.0" }, [], "sda", "scsi"],
  ["scsi on ppc64 pseries", { arch: "ppc64", machine: "pseries" }, [], "sda", "scsi"],
  ["scsi on aarch64 virt", { arch: "aarch64", machine: "virt-rhel9.2.0" }, [], "sda", "scsi"],
  ["scsi on s390x", { arch: "s390x", machine: "s390-ccw-virtio" }, [], "sda", "scsi"],
  ["the first free ide name", pc, [{ dev: "hda", bus: "ide" }], "hdb", "ide"],
  [
    "hdc's slot is skipped when taken by name",
    pc,
    [{ dev: "hda", bus: "ide" }, { dev: "hdb", bus: "ide" }, { dev: "hdc", bus: "ide" }],
    "hdd",
    "ide",
  ],
  [
    "sata when hda-hdd are all taken",
    pc,
    ["hda", "hdb", "hdc", "hdd"].map((dev) => ({ dev, bus: "ide" })),
    "sda",
    "sata",
  ],
  ["an ide name whose address is taken explicitly", pc, [{ dev: "hdc", bus: "ide", address: at(0, 0) }], "hdb", "ide"],
  [
    "hdc 1:0 is skipped for an explicit bus 1 unit 0",
    pc,
    [{ dev: "hda", bus: "ide" }, { dev: "hdb", bus: "ide" }, { dev: "hdd", bus: "ide", address: at(0, 0, 1) }],
    "sda",
    "sata",
  ],
  ["names are shared across buses: scsi sda makes sata skip sda", q35, [{ dev: "sda", bus: "scsi" }], "sdb", "sata"],
  ["names are shared with usb disks", q35, [{ dev: "sda", bus: "usb" }, { dev: "sdb", bus: "sata" }], "sdc", "sata"],
  ["addresses on another bus do not collide", q35, [{ dev: "sdc", bus: "scsi", address: at(0, 0) }], "sda", "sata"],
  [
    "a sata address taken by another name is skipped",
    q35,
    [{ dev: "sdc", bus: "sata", address: at(0, 0) }],
    "sdb",
    "sata",
  ],
  [
    "VDSM's q35 CD-ROM at sdc unit 2 with scsi sda",
    q35,
    [{ dev: "sdc", bus: "sata", address: at(0, 2) }, { dev: "sda", bus: "scsi", address: at(0, 0) }],
    "sdb",
    "sata",
  ],
  [
    "sata skips every taken unit of controller 0",
    q35,
    [0, 1, 2, 3, 4, 5].map((unit) => ({ dev: `sd${"qrstuv"[unit]}`, bus: "sata", address: at(0, unit) })),
    "sdg",
    "sata",
  ],
  [
    "an implied address of an existing sata disk blocks its slot",
    q35,
    [{ dev: "sda", bus: "sata", address: at(0, 1) }, { dev: "sdc", bus: "sata" }],
    "sdd",
    "sata",
  ],
  ["vd names do not block sd names", q35, [{ dev: "vda", bus: "virtio" }], "sda", "sata"],
  [
    "scsi uses 7 units per controller",
    { arch: "ppc64le", machine: "pseries" },
    [{ dev: "sdh", bus: "scsi", address: at(0, 0) }],
    "sdb",
    "scsi",
  ],
  [
    "sata goes past sdz",
    q35,
    Array.from({ length: 26 }, (_, i) => ({ dev: `sd${indexToDiskSuffix(i)}`, bus: "scsi" })),
    "sdaa",
    "sata",
  ],
];

describe("chooseTarget()", () => {
  for (const [what, machine, disks, dev, bus] of CASES) {
    test(`chooseTarget() picks ${dev} (${bus}): ${what}`, () => {
      assert.deepEqual(chooseTarget(machine, disks), { dev, bus });
    });
  }

  test("chooseTarget() says so when no name is free", () => {
    const all = Array.from({ length: 26 + 26 * 26 }, (_, i) => ({ dev: `sd${indexToDiskSuffix(i)}`, bus: "scsi" }));
    assert.throws(() => chooseTarget({ arch: "ppc64le", machine: "pseries" }, all), DomainError);
  });
});

describe("disk names", () => {
  test("diskNameToIndex() reads names the way libvirt does", () => {
    assert.deepEqual(["hda", "hdd", "sdz", "sdaa", "sdzz", "vdb", "nvme0n1"].map(diskNameToIndex), [
      0,
      3,
      25,
      26,
      701,
      1,
      undefined,
    ]);
  });

  test("indexToDiskSuffix() inverts diskNameToIndex()", () => {
    for (let i = 0; i < 800; i++) assert.equal(diskNameToIndex(`sd${indexToDiskSuffix(i)}`), i);
  });
});
