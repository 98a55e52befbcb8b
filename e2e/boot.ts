// SPDX-License-Identifier: GPL-2.0-or-later
/** The boot suite: real VMs boot the https ISO first, on i440fx, q35 and OVMF, and QEMU's own refusals. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import type { DomainSpec } from "./domain.ts";
import { log } from "./steps.ts";
import { isoUrl, MARK, qemuReason, type World } from "./world.ts";

const SCENARIOS: Array<[string, DomainSpec["machine"], DomainSpec["firmware"], string]> = [
  ["i440fx-seabios", "pc", "bios", "hda (ide)"],
  ["q35-seabios", "q35", "bios", "sda (sata)"],
  ["q35-uefi", "q35", "efi", "sda (sata)"],
];

export function bootSuite(world: World): void {
  for (const [name, machine, firmware, target] of SCENARIOS) {
    test(`${name}: the guest boots the https ISO first, and boot orders are shifted`, async () => {
      const domain = world.spec(name, machine, firmware);
      const [expected, local, iso] = firmware === "efi"
        ? [MARK.httpsUefi, MARK.localUefi, world.isos.httpsUefi]
        : [MARK.httpsBios, MARK.localBios, world.isos.httpsBios];
      const result = await world.boot(domain, isoUrl(world.ports.trusted, iso), [expected, local]);
      try {
        assert.equal(result.error, undefined);
        assert.equal(result.marker, expected, "the guest printed the https ISO's marker");
        assert.deepEqual(result.orders, { "https-cdrom": 1, "local-cdrom": 2, nic: 3 });
        assert.equal(result.httpsTarget, target, "libvirt runs the CD-ROM on the bus the hook chose");
      } catch (error) {
        world.explain(domain, result.error);
        throw error;
      }
    });
  }

  test("negative control: the same domain without the hook boots its local CD-ROM", async () => {
    const domain = world.spec("control-no-hook", "pc", "bios");
    const result = await world.boot(domain, undefined, [MARK.httpsBios, MARK.localBios]);
    try {
      assert.equal(result.marker, MARK.localBios);
      assert.deepEqual(result.orders, { "local-cdrom": 1, nic: 2 });
    } catch (error) {
      world.explain(domain, result.error);
      throw error;
    }
  });

  test("nginx answered QEMU's ranged GETs for the ISOs with 206", () => {
    const lines = readFileSync(world.nginx.accessLog, "utf8").split("\n");
    const ranged = lines.filter((line) =>
      line.startsWith(`${world.ports.trusted} 206 GET /https-`) && /"bytes=\d+-\d+"/.test(line)
    );
    log(`nginx: ${ranged.length} ranged GETs answered 206 on the trusted port`);
    assert.ok(ranged.length >= 2, `ranged GETs: ${ranged.join("\n")}`);
    assert.ok(lines.some((line) => line.startsWith(`${world.ports.trusted} 200 HEAD /https-`)), "QEMU asks HEAD first");
  });

  const QEMU_REFUSES: Array<[string, () => number, RegExp]> = [
    [
      "a server whose certificate the host does not trust",
      () => world.ports.untrusted,
      /certificate verification failed/,
    ],
    ["a server that refuses byte ranges (max_ranges 0)", () => world.ports.noRanges, /does not support 'range'/],
  ];
  for (const [what, port, words] of QEMU_REFUSES) {
    test(`without preflight, ${what}: QEMU refuses and the VM does not start`, async () => {
      const domain = world.spec(`qemu-refuses-${port()}`, "pc", "bios");
      const result = await world.boot(
        domain,
        isoUrl(port(), world.isos.httpsBios),
        [MARK.httpsBios, MARK.localBios],
        world.noPreflight,
      );
      log(`${what}: ${qemuReason(result.error) ?? `guest printed ${result.marker}`}`);
      assert.match(result.error ?? "", words);
    });
  }
}
