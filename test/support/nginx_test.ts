// SPDX-License-Identifier: GPL-2.0-or-later
/** The test nginx leaves no process behind, whatever the run's cleanup kills first. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, type TLSSocket } from "node:tls";
import { join } from "node:path";
import process from "node:process";
import { freePort, startNginx } from "./nginx.ts";
import { makeAuthority, makeServerCert } from "./tls.ts";
import { killNaming, processesHolding } from "./processes.ts";
import { tempDir } from "./mod.ts";

const noNginx = spawnSync("sh", ["-c", "command -v nginx"]).status === 0
  ? undefined
  : "nginx is not installed; npm test installs it as root";

async function started(name: string) {
  const work = tempDir(`nginx-${name}`);
  const www = join(work, "www");
  mkdirSync(www);
  writeFileSync(join(www, "big"), new Uint8Array(64 << 20));
  const cert = makeServerCert(work, "nginx", makeAuthority(work, "nginx test CA"));
  const port = await freePort();
  const nginx = startNginx(work, www, [{ port, ...cert }]);
  return { work, nginx, port, logs: join(work, "nginx") };
}

/** A download that has begun and then stops reading: nginx's graceful stop would wait for it. */
function stalledDownload(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      socket.write("GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n");
    });
    socket.once("data", () => {
      socket.pause();
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

describe("the test nginx", { skip: noNginx }, () => {
  test("stop() ends nginx before it returns, even while a download it would wait for is stalled", async () => {
    const { work, nginx, port, logs } = await started("stop");
    const download = await stalledDownload(port);
    try {
      assert.notDeepEqual(processesHolding(logs), [], "nginx runs");
      nginx.stop();
      assert.deepEqual(processesHolding(logs), []);
    } finally {
      download.destroy();
      for (const pid of processesHolding(logs)) process.kill(pid, "SIGKILL");
      rmSync(work, { recursive: true, force: true });
    }
  });

  test("a sweep that SIGKILLs every process naming the run's dir, then stop(), leaves no nginx process (finding: one orphaned worker a run)", async () => {
    const { work, nginx, logs } = await started("sweep");
    try {
      // What the e2e's and relay_test's cleanup do first, for relays a failed case left.
      killNaming(work);
      nginx.stop();
      assert.deepEqual(processesHolding(logs), []);
    } finally {
      for (const pid of processesHolding(logs)) process.kill(pid, "SIGKILL");
      rmSync(work, { recursive: true, force: true });
    }
  });
});
