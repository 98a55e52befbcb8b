// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Chooses the bus and target name of the new CD-ROM: a pure function of the
 * machine type, the architecture and the disks already there.
 *
 * This module is pure: it does no I/O and knows nothing about XML.
 *
 * @module
 */
import { DomainError } from "../errors.ts";

/** A `<address type='drive'>`: where a disk sits on its controller. */
export interface DriveAddress {
  controller: number;
  bus: number;
  target: number;
  unit: number;
}

/** What target choice needs to know about a disk already in the domain. */
export interface ExistingDisk {
  /** `<target dev>`, such as `sdc`. */
  dev: string;
  /** `<target bus>`, such as `sata`. */
  bus: string;
  /** The disk's explicit `<address type='drive'>`, when it has one. */
  address?: DriveAddress;
}

/** The machine, from `<os><type arch machine>`. */
export interface Machine {
  arch: string;
  machine: string;
}

/** A bus and target name for the new disk. */
export interface Target {
  dev: string;
  bus: Bus;
}

/** The buses a CD-ROM can sit on here. */
export type Bus = "ide" | "sata" | "scsi";

const BUS_IDE: Bus = "ide";
const BUS_SATA: Bus = "sata";
const BUS_SCSI: Bus = "scsi";

/** libvirt's PIIX IDE has one controller with two buses of two units: hda-hdd. */
const IDE_TARGETS = 4;
/** Candidates up to `sdzz`, far more than any controller layout holds. */
const SD_TARGETS = 26 + 26 * 26;

/**
 * Picks the bus for a CD-ROM the way virt-install does: IDE on i440fx, SATA on
 * q35 (which has no IDE, so libvirt refuses it), SCSI everywhere else (ppc64
 * pseries, aarch64 virt, s390x). Without a machine type the host's default
 * decides (q35 on EL9, i440fx elsewhere); SATA works on both.
 *
 * @param machine The domain's architecture and machine type.
 * @returns The preferred bus.
 */
function preferredBus(machine: Machine): Bus {
  if (!/^(x86_64|i[3-6]86)$/.test(machine.arch)) return BUS_SCSI;
  return machine.machine === "" || /q35/.test(machine.machine) ? BUS_SATA : BUS_IDE;
}

/**
 * Chooses the first free target for the new CD-ROM on the machine's preferred
 * bus, falling back from IDE to SATA when hda-hdd are all taken.
 *
 * A name is free when no disk uses it (sd names are shared by sata, scsi and
 * usb) and no disk on the same bus already sits at the drive address libvirt
 * derives from it; otherwise libvirt fails with "Found duplicate drive address".
 *
 * @param machine The domain's architecture and machine type.
 * @param disks The disks already in the domain.
 * @returns The target name and bus.
 * @throws {DomainError} If every candidate name is taken.
 * @example
 * ```ts
 * import { chooseTarget } from "./target.ts";
 * import { assertEquals } from "../_assert.ts";
 * const sdcAtUnit2 = { dev: "sdc", bus: "sata", address: { controller: 0, bus: 0, target: 0, unit: 2 } };
 * assertEquals(chooseTarget({ arch: "x86_64", machine: "q35" }, [sdcAtUnit2]), { dev: "sda", bus: "sata" });
 * assertEquals(chooseTarget({ arch: "x86_64", machine: "pc" }, []), { dev: "hda", bus: "ide" });
 * assertEquals(chooseTarget({ arch: "ppc64le", machine: "pseries" }, []), { dev: "sda", bus: "scsi" });
 * ```
 */
export function chooseTarget(machine: Machine, disks: ExistingDisk[]): Target {
  const bus = preferredBus(machine);
  const found = firstFree(bus, disks) ?? (bus === BUS_IDE ? firstFree(BUS_SATA, disks) : undefined);
  if (!found) {
    throw new DomainError(
      `no free ${
        bus === BUS_IDE ? "ide or sata" : bus
      } target for the CD-ROM: every name is used or its drive address is taken; remove an unused disk or CD-ROM from the VM`,
    );
  }
  return found;
}

function firstFree(bus: Bus, disks: ExistingDisk[]): Target | undefined {
  const used = new Set(disks.map((disk) => disk.dev));
  const occupied = new Set<string>();
  for (const disk of disks) {
    if (disk.bus !== bus) continue;
    const address = disk.address ?? impliedAddress(bus, diskNameToIndex(disk.dev));
    if (address) occupied.add(addressKey(address));
  }
  const prefix = bus === BUS_IDE ? "hd" : "sd";
  const count = bus === BUS_IDE ? IDE_TARGETS : SD_TARGETS;
  for (let index = 0; index < count; index++) {
    const dev = prefix + indexToDiskSuffix(index);
    if (used.has(dev)) continue;
    if (occupied.has(addressKey(impliedAddress(bus, index)!))) continue;
    return { dev, bus };
  }
  return undefined;
}

/**
 * The drive address libvirt gives a disk from its name
 * (virDomainDiskDefAssignAddress): IDE 2 buses of 2 units per controller,
 * SATA 6 units per controller, SCSI 7 units per controller.
 */
function impliedAddress(bus: Bus, index: number | undefined): DriveAddress | undefined {
  if (index === undefined) return undefined;
  switch (bus) {
    case BUS_IDE:
      return { controller: Math.floor(index / 4), bus: Math.floor((index % 4) / 2), target: 0, unit: index % 2 };
    case BUS_SATA:
      return { controller: Math.floor(index / 6), bus: 0, target: 0, unit: index % 6 };
    case BUS_SCSI:
      return { controller: Math.floor(index / 7), bus: 0, target: 0, unit: index % 7 };
  }
}

/**
 * The index libvirt reads from a disk name (virDiskNameToIndex): `sda` is 0,
 * `sdz` 25, `sdaa` 26.
 *
 * @param dev A target name such as `hdc` or `sdab`.
 * @returns The index, or undefined when the name has no letter suffix.
 */
export function diskNameToIndex(dev: string): number | undefined {
  const suffix = /^(?:hd|sd|vd|xvd|ubd)([a-z]+)$/.exec(dev)?.[1];
  if (!suffix) return undefined;
  let index = 0;
  for (const char of suffix) index = index * 26 + (char.charCodeAt(0) - 96);
  return index - 1;
}

/** The inverse of {@link diskNameToIndex}: 0 is `a`, 26 is `aa`. */
export function indexToDiskSuffix(index: number): string {
  let suffix = "";
  for (let i = index + 1; i > 0; i = Math.floor((i - 1) / 26)) {
    suffix = String.fromCharCode(97 + ((i - 1) % 26)) + suffix;
  }
  return suffix;
}

function addressKey(address: DriveAddress): string {
  return `${address.controller}:${address.bus}:${address.target}:${address.unit}`;
}
