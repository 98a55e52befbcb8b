/**
 * Tiny bootable ISOs, built during the run from Debian's packages, each
 * printing its own marker on the serial console.
 */
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";

/**
 * A BIOS ISO (ISOLINUX). ISOLINUX prints `Loading <marker>... failed` on
 * serial when the DEFAULT label names no kernel, which is all we need:
 * SAY and DISPLAY print nothing on serial under TCG here.
 */
export function buildBiosIso(dir: string, name: string, marker: string): string {
  const tree = join(dir, `${name}-tree`);
  mkdirSync(join(tree, "isolinux"), { recursive: true });
  copyFileSync("/usr/lib/ISOLINUX/isolinux.bin", join(tree, "isolinux", "isolinux.bin"));
  copyFileSync("/usr/lib/syslinux/modules/bios/ldlinux.c32", join(tree, "isolinux", "ldlinux.c32"));
  writeFileSync(join(tree, "isolinux", "isolinux.cfg"), `SERIAL 0 115200\nDEFAULT ${marker}\nPROMPT 0\nTIMEOUT 1\n`);
  const iso = join(dir, `${name}.iso`);
  execFileSync("xorriso", ["-as", "mkisofs", "-quiet", "-V", name.slice(0, 32), "-o", iso,
    "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot", "-boot-load-size", "4",
    "-boot-info-table", tree], { stdio: ["ignore", "ignore", "pipe"] });
  chmodSync(iso, 0o644);
  return iso;
}

/**
 * A UEFI (and BIOS) bootable ISO made by grub-mkrescue: GRUB echoes the
 * marker on serial, then `halt` powers the VM off.
 */
export function buildGrubIso(dir: string, name: string, marker: string): string {
  const tree = join(dir, `${name}-tree`);
  mkdirSync(join(tree, "boot", "grub"), { recursive: true });
  writeFileSync(join(tree, "boot", "grub", "grub.cfg"),
    `serial\nterminal_input serial\nterminal_output serial\necho ${marker}\nhalt\n`);
  const iso = join(dir, `${name}.iso`);
  execFileSync("grub-mkrescue", ["-o", iso, tree], { stdio: ["ignore", "ignore", "pipe"] });
  chmodSync(iso, 0o644);
  return iso;
}
