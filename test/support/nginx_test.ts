// SPDX-License-Identifier: GPL-2.0-or-later
/** The test nginx leaves no process behind, whatever the run's cleanup kills first. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { freePort, startNginx } from "./nginx.ts";
import { makeAuthority, makeServerCert } from "./tls.ts";

const noNginx = spawnSync("sh", ["-c", "command -v nginx"]).status === 0
  ? undefined
  : "nginx is not installed; npm test installs it as root";

/** Processes with a file open under `dir`: nginx's master and workers keep their logs open. */
function holding(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
      if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") continue;
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        if (readlinkSync(`/proc/${entry}/fd/${fd}`).startsWith(dir)) {
          found.push(Number(entry));
          break;
        }
      }
    } catch { /* gone meanwhile, or not ours to read */ }
  }
  return found;
}

async function started(name: string) {
  const work = mkdtempSync(join(tmpdir(), `httpsisoboot-nginx-${name}-`));
  const www = join(work, "www");
  mkdirSync(www);
  const cert = makeServerCert(work, "nginx", makeAuthority(work, "nginx test CA"));
  const nginx = startNginx(work, www, [{ port: await freePort(), ...cert }]);
  return { work, nginx, logs: join(work, "nginx") };
}

describe("the test nginx", { skip: noNginx }, () => {
  test("stop() ends every nginx process of the run before it returns", async () => {
    const { work, nginx, logs } = await started("stop");
    try {
      assert.notDeepEqual(holding(logs), [], "nginx runs");
      nginx.stop();
      assert.deepEqual(holding(logs), []);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test("a sweep that SIGKILLs every process naming the run's dir, then stop(), leaves no nginx process (finding: one orphaned worker a run)", async () => {
    const { work, nginx, logs } = await started("sweep");
    try {
      // What the e2e's and relay_test's cleanup do first, for relays a failed case left.
      for (const entry of readdirSync("/proc")) {
        try {
          if (/^\d+$/.test(entry) && readFileSync(`/proc/${entry}/cmdline`, "latin1").includes(work)) {
            process.kill(Number(entry), "SIGKILL");
          }
        } catch { /* gone */ }
      }
      nginx.stop();
      assert.deepEqual(holding(logs), []);
    } finally {
      for (const pid of holding(logs)) process.kill(pid, "SIGKILL");
      rmSync(work, { recursive: true, force: true });
    }
  });
});
