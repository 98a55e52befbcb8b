// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The faults suite: the 8 MiB payload ISO booted through a fault-injecting
 * proxy (stalls, latency), with QEMU's defaults and ours; and faults that
 * preflight must catch before any VM starts (reset, trickle).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { create, PREFIX, serialText, virsh, waitForMarker } from "./domain.ts";
import type { FaultProxy } from "./fault_proxy.ts";
import { MARK, type World } from "./world.ts";

const QEMU_DEFAULTS = "timeout = 5\nreadahead = 262144\n";
// GRUB reads its own modules first, then the 8 MiB payload: 4 MiB into the
// stream is inside the payload whatever the readahead.
const STALL_AFTER = 4 << 20;
const READAHEADS = [["256k", "QEMU's default 256 KiB readahead", 262144], [
  "1m",
  "our default 1 MiB readahead",
  1048576,
], ["4m", "4 MiB readahead", 4194304]] as const;

/** What a boot through the proxy showed. */
interface FaultBoot {
  outcome: string;
  seconds: number;
  gets: number;
  stats: Awaited<ReturnType<FaultProxy["stats"]>>;
  marker: boolean;
  serial: string;
  curl?: string;
  lastLine: string;
}

export function faultSuite(world: World): void {
  test("faults: with no fault, the guest hashes the 8 MB payload right (baseline)", async () => {
    const result = await bootThroughFaults(world, "fault-baseline", "", { mode: "none" });
    world.faultReport.push(
      `baseline, our defaults: ${result.outcome} in ${result.seconds.toFixed(1)} s, ${result.gets} ranged GETs, ${
        (result.stats.serverBytes / 1048576).toFixed(1)
      } MiB through the proxy`,
    );
    assert.equal(result.outcome, "right hash", result.serial);
  });

  test("faults: a 10 s stall mid-boot (2x QEMU's 5 s timeout) breaks the guest with QEMU's defaults", async () => {
    // Working, this boot prints its marker in about 14 s; 45 s is plenty.
    const result = await bootThroughFaults(world, "fault-stall-qemu", QEMU_DEFAULTS, {
      mode: "stall",
      afterBytes: STALL_AFTER,
      seconds: 10,
    }, 45_000);
    world.faultReport.push(
      `10 s stall after ${
        (STALL_AFTER / 1048576).toFixed(1)
      } MiB, QEMU defaults (timeout 5 s, readahead 256 KiB): ${result.outcome}, ` +
        `marker ${result.marker ? "printed" : `missing after ${result.seconds.toFixed(0)} s`}; QEMU logged "${
          result.curl ?? "nothing"
        }"; the guest's last line: "${result.lastLine.slice(-80)}"`,
    );
    assert.ok(result.stats.fired, "the stall happened");
    assert.notEqual(result.outcome, "right hash", "with a 5 s timeout a 10 s stall cannot pass unnoticed");
  });

  test("faults: the same stall with our defaults: the boot completes and the hash is right", async () => {
    const result = await bootThroughFaults(world, "fault-stall-ours", "", {
      mode: "stall",
      afterBytes: STALL_AFTER,
      seconds: 10,
    });
    world.faultReport.push(
      `10 s stall after ${
        (STALL_AFTER / 1048576).toFixed(1)
      } MiB, our defaults (timeout 30 s, readahead 1 MiB): ${result.outcome}, ${result.seconds.toFixed(1)} s`,
    );
    assert.ok(result.stats.fired, "the stall happened");
    assert.equal(result.outcome, "right hash", result.serial);
    assert.ok(result.marker);
  });

  for (const [id, label, bytes] of READAHEADS) {
    test(`faults: 20 ms per request, ${label}: the hash is right; time and ranged GETs printed`, async () => {
      const result = await bootThroughFaults(world, `fault-latency-${id}`, `readahead = ${bytes}\n`, {
        mode: "latency",
        ms: 20,
      });
      world.faultReport.push(
        `20 ms per request, ${label}: ${result.outcome}, marker after ${
          result.seconds.toFixed(1)
        } s, ${result.gets} ranged GETs, ${(result.stats.serverBytes / 1048576).toFixed(1)} MiB`,
      );
      assert.equal(result.outcome, "right hash", result.serial);
    });
  }

  test("faults: a connection reset during preflight is its own refusal, before any VM starts", async () => {
    const result = await hookThroughFault(world, "fault-reset", world.defaults, { mode: "reset", afterBytes: 100 });
    world.faultReport.push(`reset after 100 bytes, preflight: ${result.stderr.trim()}`);
    assert.ok(result.fired);
    assert.match(result.stderr, /closed the connection|did not answer with TLS/);
  });

  test("faults: a server trickling 2 KB/s runs preflight out of time, before any VM starts", async () => {
    const settings = world.settings("quick-preflight", "preflight_timeout = 1\n");
    const result = await hookThroughFault(world, "fault-trickle", settings, { mode: "trickle", bytesPerSecond: 2000 });
    world.faultReport.push(`trickle at 2 KB/s, preflight_timeout 1 s: ${result.stderr.trim()}`);
    assert.match(result.stderr, /did not answer within 1 s \(preflight_timeout\)/);
  });
}

/** Runs the hook against the proxy with `fault` on: it must refuse with exit 2 and leave the domain unchanged. */
async function hookThroughFault(world: World, name: string, settings: string, fault: Parameters<FaultProxy["set"]>[0]) {
  const path = world.domainFile(world.spec(name, "pc", "bios"));
  const xml = readFileSync(path, "utf8");
  await world.proxy.set(fault);
  const result = world.runHook(path, `https://localhost:${world.proxy.port}/payload.iso`, settings);
  const { fired } = await world.proxy.stats();
  await world.proxy.set({ mode: "none" });
  assert.equal(result.status, 2, result.stderr);
  assert.equal(readFileSync(path, "utf8"), xml);
  return { stderr: result.stderr, fired };
}

/** Boots the payload ISO through the proxy with `fault`, the hook given `settingsText`; says what the guest printed. */
async function bootThroughFaults(
  world: World,
  name: string,
  settingsText: string,
  fault: Parameters<FaultProxy["set"]>[0],
  waitMs = 120_000,
): Promise<FaultBoot> {
  const domain = world.spec(name, "pc", "bios");
  const path = world.domainFile(domain);
  const hooked = world.runHook(
    path,
    `https://localhost:${world.proxy.port}/payload.iso`,
    world.settings(name, settingsText),
  );
  assert.equal(hooked.status, 0, hooked.stderr);
  const logStart = readFileSync(world.nginx.accessLog, "utf8").length;
  await world.proxy.set(fault);
  const started = Date.now();
  const error = create(path);
  assert.equal(error, undefined, error);
  await waitForMarker(domain.serialLog, [MARK.payload, "error:"], waitMs);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const seconds = (Date.now() - started) / 1000;
  virsh("destroy", `${PREFIX}${name}`);
  const serial = serialText(domain.serialLog);
  const boot = { seconds, serial, stats: await world.proxy.stats(), ...readOutcome(world, serial, name, logStart) };
  await world.proxy.set({ mode: "none" });
  world.timings.push([name, `${boot.outcome}, marker ${boot.marker ? "printed" : "missing"}, ${seconds.toFixed(1)} s`]);
  return boot;
}

/** What the guest printed, the ranged GETs nginx saw, and QEMU's last curl complaint. */
function readOutcome(world: World, serial: string, name: string, logStart: number) {
  const printed = /([0-9a-f]{64})\s+\/payload\.bin/.exec(serial)?.[1];
  const errors = serial.match(/error:[^\r\n]*/g) ?? [];
  const gets = readFileSync(world.nginx.accessLog, "utf8").slice(logStart).split("\n")
    .filter((line) => /^\d+ 206 GET \/payload\.iso/.test(line)).length;
  const outcome = printed === world.payloadHash
    ? "right hash"
    : printed
    ? "WRONG hash, no error"
    : errors.length
    ? `no hash: ${errors.join("; ")}`
    : "no hash, no marker";
  const qemuLog = `/var/log/libvirt/qemu/${PREFIX}${name}.log`;
  const curl = existsSync(qemuLog) ? readFileSync(qemuLog, "utf8").match(/curl: [^\n]*/g)?.at(-1) : undefined;
  return {
    outcome,
    gets,
    marker: serial.includes(MARK.payload),
    curl,
    lastLine: serial.trim().split(/\r?\n/).at(-1)?.trim() ?? "",
  };
}
