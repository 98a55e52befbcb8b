// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * End to end: real libvirt, QEMU (TCG), firmware, nginx and TLS. The hook
 * artifact a host would get is installed as 50_httpsisoboot and run the way
 * VDSM runs it; the guest's own serial output proves what it booted.
 *
 * One world (world.ts) is set up for four suites: boot.ts, preflight.ts,
 * lifecycle.ts and faults.ts; systemd.ts has a host of its own, booted with
 * systemd as PID 1 (systemd_host.ts). HTTPSISOBOOT_ARTIFACT picks the artifact (default:
 * dist/httpsisoboot when it exists, else dist/httpsisoboot.mjs).
 */
import { after, before, describe } from "node:test";
import process from "node:process";
import { log } from "./steps.ts";
import { whyNot, World } from "./world.ts";
import { bootSuite } from "./boot.ts";
import { preflightSuite } from "./preflight.ts";
import { faultSuite } from "./faults.ts";
import { lifecycleSuite } from "./lifecycle.ts";
import { systemdSuite } from "./systemd.ts";
import { stopSystemdHosts } from "./systemd_host.ts";

const world = new World();

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    world.tearDown();
    stopSystemdHosts();
    process.exit(130);
  });
}

describe("e2e: VMs boot the https ISO first", { skip: whyNot() }, () => {
  before(() => world.setUp());
  after(() => {
    world.tearDown();
    world.report();
  });
  bootSuite(world);
  preflightSuite(world);
  lifecycleSuite(world);
  faultSuite(world);
});

systemdSuite();
