// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * Tiny bootable ISOs, built during the run from Debian's packages, each
 * printing its own marker on the serial console.
 */
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Debian's paths first, then EL's (package syslinux). */
const ISOLINUX_BIN = ["/usr/lib/ISOLINUX/isolinux.bin", "/usr/share/syslinux/isolinux.bin"];
const LDLINUX_C32 = ["/usr/lib/syslinux/modules/bios/ldlinux.c32", "/usr/share/syslinux/ldlinux.c32"];

function firstExisting(paths: string[]): string {
  const found = paths.find((path) => existsSync(path));
  if (!found) throw new Error(`none of ${paths.join(", ")} exists; install isolinux and syslinux`);
  return found;
}

/** grub-mkrescue on Debian, grub2-mkrescue on EL. */
function grubMkrescue(): string {
  return spawnSync("sh", ["-c", "command -v grub-mkrescue"]).status === 0 ? "grub-mkrescue" : "grub2-mkrescue";
}

/**
 * A BIOS ISO (ISOLINUX). ISOLINUX prints `Loading <marker>... failed` on
 * serial when the DEFAULT label names no kernel, which is all we need:
 * SAY and DISPLAY print nothing on serial under TCG here.
 */
export function buildBiosIso(dir: string, name: string, marker: string): string {
  const tree = join(dir, `${name}-tree`);
  mkdirSync(join(tree, "isolinux"), { recursive: true });
  copyFileSync(firstExisting(ISOLINUX_BIN), join(tree, "isolinux", "isolinux.bin"));
  copyFileSync(firstExisting(LDLINUX_C32), join(tree, "isolinux", "ldlinux.c32"));
  writeFileSync(join(tree, "isolinux", "isolinux.cfg"), `SERIAL 0 115200\nDEFAULT ${marker}\nPROMPT 0\nTIMEOUT 1\n`);
  const iso = join(dir, `${name}.iso`);
  execFileSync("xorriso", [
    "-as",
    "mkisofs",
    "-quiet",
    "-V",
    name.slice(0, 32),
    "-o",
    iso,
    "-b",
    "isolinux/isolinux.bin",
    "-c",
    "isolinux/boot.cat",
    "-no-emul-boot",
    "-boot-load-size",
    "4",
    "-boot-info-table",
    tree,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  chmodSync(iso, 0o644);
  return iso;
}

/**
 * A UEFI (and BIOS) bootable ISO made by grub-mkrescue: GRUB echoes the
 * marker on serial, then `halt` powers the VM off. With a payload, GRUB
 * hashes it before the marker, the guest's own proof that it read every
 * byte of the ISO right; `pause` seconds first, after printing `paused`,
 * gives a test time to hibernate the VM before it reads the payload.
 */
export function buildGrubIso(
  dir: string,
  name: string,
  marker: string,
  payload?: Uint8Array,
  options: { pause?: number; paused?: string } = {},
): string {
  const tree = join(dir, `${name}-tree`);
  mkdirSync(join(tree, "boot", "grub"), { recursive: true });
  if (payload) writeFileSync(join(tree, "payload.bin"), payload);
  const pause = options.pause ? `echo ${options.paused}\nsleep ${options.pause}\n` : "";
  const hash = payload ? "sha256sum /payload.bin\n" : "";
  writeFileSync(
    join(tree, "boot", "grub", "grub.cfg"),
    `serial\nterminal_input serial\nterminal_output serial\n${pause}${hash}echo ${marker}\nhalt\n`,
  );
  const iso = join(dir, `${name}.iso`);
  execFileSync(grubMkrescue(), ["-o", iso, tree], { stdio: ["ignore", "ignore", "pipe"] });
  chmodSync(iso, 0o644);
  return iso;
}

/**
 * An ISO 9660 image holding one file, `payload.bin`: not bootable, for
 * reading through a relay where no guest is needed.
 */
export function buildDataIso(dir: string, name: string, payload: Uint8Array): string {
  const tree = join(dir, `${name}-tree`);
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, "payload.bin"), payload);
  const iso = join(dir, `${name}.iso`);
  execFileSync("xorriso", ["-as", "mkisofs", "-quiet", "-V", name.slice(0, 32), "-o", iso, tree], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  chmodSync(iso, 0o644);
  return iso;
}
