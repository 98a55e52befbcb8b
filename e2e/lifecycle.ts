// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The VM's life with its relay, with real VMs and the hook run through
 * VDSM's hooks.py as uid 36: the relay outlives a vdsmd restart (the
 * runner's whole session killed right after the hook), survives hibernation
 * and resume (virsh save and restore, after_vm_hibernate and
 * before_vm_dehibernate), and is gone, process, socket and cache, within 2 s
 * of after_vm_destroy. Migration needs two hosts; the relay's suite
 * (test/integration/relay_test.ts) stands one in with a mount namespace.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { create, PREFIX, serialText, virsh, waitForMarker } from "./domain.ts";
import { log } from "./steps.ts";
import { MARK, type World } from "./world.ts";

const WAIT_MS = 90_000;

export function lifecycleSuite(world: World): void {
  test("vdsmd restart: the relay outlives the killing of the hook's whole session, and the guest reads every byte right", async () => {
    const domain = world.spec("life-restart", "q35", "bios");
    const path = world.domainFile(domain);
    const hooked = world.runHook(path, `https://localhost:${world.ports.trusted}/payload.iso`, world.defaults, {
      killSession: true,
    });
    assert.equal(hooked.status, 0, hooked.stderr);
    assert.equal(world.relayLeft(domain).processes.length, 2, "the front and nbdkit run on");
    assert.equal(create(path), undefined);
    await waitForMarker(domain.serialLog, [MARK.payload, "error:"], WAIT_MS);
    assert.match(serialText(domain.serialLog), new RegExp(`${world.payloadHash}\\s+/payload\\.bin`));
    const took = world.destroy(domain, path);
    log(`after_vm_destroy: relay gone in ${took} ms, VDSM's runner included`);
    assert.deepEqual(world.relayLeft(domain), { processes: [], files: [] }, "no process, socket or cache file left");
    assert.ok(took < 2000, `within 2 s: ${took} ms`);
    world.timings.push(["life: destroy", `relay gone ${took} ms after after_vm_destroy began`]);
  });

  test("hibernation and resume: the relay stops with the saved VM and starts for the restore, which reads every byte right", async () => {
    const domain = world.spec("life-hibernate", "pc", "bios");
    const path = world.domainFile(domain);
    const saved = join(world.work, "life-hibernate.save");
    const hooked = world.runHook(path, `https://localhost:${world.ports.trusted}/payload-paused.iso`, world.defaults);
    assert.equal(hooked.status, 0, hooked.stderr);
    assert.equal(create(path), undefined);
    assert.ok(
      await waitForMarker(domain.serialLog, [MARK.paused], WAIT_MS),
      "the guest paused before reading the payload",
    );
    try {
      assert.equal(virsh("save", `${PREFIX}${domain.name}`, saved).status, 0, "virsh save");
      assert.equal(world.runPoint("after_vm_hibernate", path).status, 0);
      assert.deepEqual(world.relayLeft(domain), { processes: [], files: [] }, "the relay stopped with the VM");
      assert.equal(world.runPoint("before_vm_dehibernate", path).status, 0);
      assert.equal(world.relayLeft(domain).processes.length, 2, "and started for the resume");
      const restored = virsh("restore", saved);
      assert.equal(restored.status, 0, restored.stderr);
      await waitForMarker(domain.serialLog, [MARK.payload, "error:"], WAIT_MS);
      assert.match(serialText(domain.serialLog), new RegExp(`${world.payloadHash}\\s+/payload\\.bin`));
    } finally {
      world.destroy(domain, path);
      rmSync(saved, { force: true });
    }
    assert.deepEqual(world.relayLeft(domain), { processes: [], files: [] });
  });
}
