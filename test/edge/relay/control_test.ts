// SPDX-License-Identifier: GPL-2.0-or-later
/** How the hook finds and starts relays; starting and stopping real ones is in integration/relay_test.ts. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";
import { checkRelayDirs, launcher, relayState, stopRelay } from "../../../edge/relay/control.ts";
import { relayPaths } from "../../../lib/paths.ts";
import { RelayError } from "../../../lib/errors.ts";
import { workDir } from "../../support/mod.ts";

const UUID = "7a3c1f52-4d1e-4b7a-9c2e-5f0e8a6b1d21";
/** A group that is not kvm: the relay's directory must not be kvm's. */
const NOT_KVM = 36 + Number(spawnSync("getent", ["group", "36"], { encoding: "utf8" }).stdout.startsWith("kvm:"));

describe("the relay's control", () => {
  const work = workDir("control");
  const dirs = { run: join(work, "run"), cache: join(work, "cache") };
  mkdirSync(dirs.run);
  mkdirSync(dirs.cache);
  // As the RPM makes it: not root's (a relay never runs as root), and not group kvm.
  if (process.getuid?.() === 0) { for (const dir of [dirs.run, dirs.cache]) chownSync(dir, 36, NOT_KVM); }
  const paths = relayPaths(dirs, UUID);

  test("launcher() starts relays detached where systemd is not PID 1, as this program with --relay", () => {
    const systemd = existsSync("/run/systemd/system");
    const start = launcher(["/usr/libexec/vdsm/httpsisoboot"], UUID);
    if (systemd) {
      assert.equal(
        start.kind,
        existsSync("/usr/lib/systemd/system/httpsisoboot-relay@.service") ? "systemd" : "detached",
      );
    } else assert.deepEqual(start, { kind: "detached", command: ["/usr/libexec/vdsm/httpsisoboot", "--relay", UUID] });
  });

  test("relayState() trusts a pid file only when that process is this VM's relay: pids are reused", async () => {
    const other = spawn("sleep", ["5"]);
    try {
      writeFileSync(paths.pid, `${other.pid}\n`);
      writeFileSync(paths.config, "{}");
      assert.deepEqual(relayState(paths, UUID), { pid: undefined, config: "{}" });
      // stopRelay() then signals nothing, and only removes the files.
      assert.equal(await stopRelay(paths, UUID, launcher(["/x"], UUID)), true);
      assert.equal(other.exitCode, null, "the other process was not signalled");
      assert.equal(existsSync(paths.pid) || existsSync(paths.config), false);
      assert.equal(await stopRelay(paths, UUID, launcher(["/x"], UUID)), false, "nothing left to stop");
    } finally {
      other.kill();
    }
  });

  test("checkRelayDirs() refuses a missing directory, or a file in its place, naming tmpfiles.d and relay = off", () => {
    const file = join(work, "a-file");
    writeFileSync(file, "");
    for (const run of [join(work, "missing"), file]) {
      assert.throws(
        () => checkRelayDirs({ run, cache: dirs.cache }),
        (error: Error) =>
          error instanceof RelayError &&
          error.message ===
            `the relay directory ${run} is missing; the RPM's tmpfiles.d makes it at boot (systemd-tmpfiles --create), ` +
              "or make it owned by the user VDSM runs as, mode 0750, or set relay = off",
      );
    }
    checkRelayDirs(dirs);
  });

  test("checkRelayDirs() refuses a run directory of root's, or of group kvm, whose users could read every VM's ISO", {
    skip: process.getuid?.() === 0 ? undefined : "needs root, to give the directory away",
  }, () => {
    const kvm = Number(spawnSync("getent", ["group", "kvm"], { encoding: "utf8" }).stdout.split(":")[2]);
    for (
      const [uid, gid, words] of [[0, NOT_KVM, /is owned by root, and a relay never runs as root/], [
        36,
        kvm,
        /is group kvm, so any user in kvm could read every VM's ISO from its socket; make it group qemu/,
      ]] as const
    ) {
      const run = join(work, `run-${uid}-${gid}`);
      mkdirSync(run);
      chownSync(run, uid, gid);
      assert.throws(() => checkRelayDirs({ run, cache: dirs.cache }), words);
    }
  });

  test("checkRelayDirs() refuses a cache directory of another owner than the run directory's, who runs the relays", {
    skip: process.getuid?.() === 0 ? undefined : "needs root, to give the directory away",
  }, () => {
    const run = join(work, "run-36");
    const cache = join(work, "cache-root");
    mkdirSync(run);
    mkdirSync(cache);
    chownSync(run, 36, NOT_KVM);
    assert.throws(
      () => checkRelayDirs({ run, cache }),
      new RegExp(`^RelayError: ${run} and ${cache} have different owners, but the first's owner runs the relays`),
    );
    chownSync(cache, 36, NOT_KVM);
    checkRelayDirs({ run, cache });
  });
});
