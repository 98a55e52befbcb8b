// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The faults suite (issue 13's proof): real boots of a GRUB ISO whose
 * guest hashes a 16 MiB file on it, through the fault proxy, on i440fx and
 * q35, each with the relay (the default) and with QEMU's curl reading the
 * URL (relay = off, the control): no fault, one reset at 4 MB and at 12 MB,
 * a reset every 3 MB, one 503, a 10 s stall. The relay must give the right
 * hash in every case; the control must fail in at least one, or the faults
 * did not bite. And two faults that preflight must catch before any VM
 * starts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { create, type DomainSpec, PREFIX, serialText, waitForMarker } from "./domain.ts";
import type { Fault, ProxyStats } from "../test/support/fault_proxy.ts";
import { log } from "./steps.ts";
import { MARK, type World } from "./world.ts";

const MACHINES: Array<[string, DomainSpec["machine"]]> = [["i440fx", "pc"], ["q35", "q35"]];

const FAULTS: Array<[string, string, Fault]> = [
  ["none", "no fault", { mode: "none" }],
  ["reset-4m", "one reset at 4 MB", { mode: "reset", afterBytes: 4 << 20 }],
  ["reset-12m", "one reset at 12 MB", { mode: "reset", afterBytes: 12 << 20 }],
  ["reset-every-3m", "a reset every 3 MB", { mode: "reset", afterBytes: 3 << 20, every: 3 << 20 }],
  ["503", "one 503", { mode: "status", afterBytes: 4 << 20, code: 503 }],
  ["stall-10s", "a 10 s stall", { mode: "stall", afterBytes: 4 << 20, seconds: 10 }],
];

/** How long a boot may take: the relay's worst case (a reset every 3 MB, retried 2 s apart) is under a minute. */
const RELAY_WAIT_MS = 120_000;
/** The control: a hung guest is called hung after this; a working one hashes in under 20 s, stall included. */
const DIRECT_WAIT_MS = 45_000;

/** What a boot through the proxy showed. */
export interface FaultBoot {
  outcome: string;
  seconds: number;
  gets: number;
  /** Body bytes the server sent through the proxy. */
  bytes: number;
  fired: number;
  curl?: string;
  serial: string;
}

export function faultSuite(world: World): void {
  const control: string[] = [];
  for (const [machineName, machine] of MACHINES) {
    for (const [id, label, fault] of FAULTS) {
      for (const mode of ["relay", "direct"] as const) {
        test(`faults, ${machineName}, ${label}, ${mode === "relay" ? "through the relay" : "QEMU's curl (relay = off)"}`, async () => {
          const name = `fault-${machineName}-${id}-${mode}`;
          const settings = mode === "relay" ? world.defaults : world.direct;
          const boot = await bootThroughFault(
            world,
            name,
            machine,
            settings,
            fault,
            mode === "relay" ? RELAY_WAIT_MS : DIRECT_WAIT_MS,
          );
          const line = `${machineName}, ${label}, ${mode}: ${boot.outcome} in ${boot.seconds.toFixed(1)} s, ` +
            `${boot.gets} ranged GETs${boot.curl ? `; QEMU logged "${boot.curl}"` : ""}`;
          world.faultReport.push(line);
          log(line);
          if (fault.mode !== "none") assert.ok(boot.fired > 0, "the fault happened");
          if (mode === "relay") assert.equal(boot.outcome, "right hash", boot.serial.slice(-2000));
          else control.push(boot.outcome);
        });
      }
    }
  }

  test("the control: QEMU's curl, reading the URL itself, fails in at least one of these cases, so the faults bite", () => {
    assert.equal(control.length, MACHINES.length * FAULTS.length);
    assert.ok(control.some((outcome) => outcome !== "right hash"), control.join("; "));
  });

  test("faults: a server that resets every answer mid-body is refused by preflight, before any VM starts", async () => {
    const result = await hookThroughFault(world, "fault-reset", world.defaults, {
      mode: "reset",
      afterBytes: 100,
      every: 100,
    });
    world.faultReport.push(`a reset in every answer, preflight: ${result.stderr.trim()}`);
    assert.ok(result.fired);
    assert.match(result.stderr, /closed the connection/);
  });

  test("faults: a server trickling 2 KB/s runs preflight out of time, before any VM starts", async () => {
    const settings = world.settings("quick-preflight", "preflight_timeout = 1\n");
    const result = await hookThroughFault(world, "fault-trickle", settings, { mode: "trickle", bytesPerSecond: 2000 });
    world.faultReport.push(`trickle at 2 KB/s, preflight_timeout 1 s: ${result.stderr.trim()}`);
    assert.match(result.stderr, /did not answer within 1 s \(preflight_timeout\)/);
  });
}

/** Runs the hook against the proxy with `fault` on: it must refuse with exit 2 and leave the domain unchanged. */
async function hookThroughFault(world: World, name: string, settings: string, fault: Fault) {
  const path = world.domainFile(world.spec(name, "pc", "bios"));
  const xml = readFileSync(path, "utf8");
  await world.proxy.set(fault);
  const result = world.runHook(path, `https://localhost:${world.proxy.port}/payload.iso`, settings);
  const { fired } = await world.proxy.stats();
  await world.proxy.set({ mode: "none" });
  assert.equal(result.status, 2, result.stderr);
  assert.equal(readFileSync(path, "utf8"), xml);
  return { stderr: result.stderr, fired: fired > 0 };
}

/**
 * Boots the payload ISO through the proxy, the hook given `settings`, with
 * `fault` set once the hook (and its preflight and relay) are done; says what
 * the guest printed, then destroys the VM as VDSM would.
 */
export async function bootThroughFault(
  world: World,
  name: string,
  machine: DomainSpec["machine"],
  settings: string,
  fault: Fault,
  waitMs: number,
  options: { iso?: string; whileRunning?: (domain: DomainSpec) => void } = {},
): Promise<FaultBoot> {
  const iso = options.iso ?? "payload.iso";
  const domain = world.spec(name, machine, "bios");
  const path = world.domainFile(domain);
  world.forgetSharedBlocks();
  const hooked = world.runHook(path, `https://localhost:${world.proxy.port}/${iso}`, settings);
  assert.equal(hooked.status, 0, hooked.stderr);
  await world.proxy.set(fault);
  let seconds: number;
  let stats: ProxyStats;
  try {
    const started = Date.now();
    const error = create(path);
    assert.equal(error, undefined, error);
    await waitForMarker(domain.serialLog, [MARK.payload, "error:"], waitMs);
    await new Promise((resolve) => setTimeout(resolve, 500));
    seconds = (Date.now() - started) / 1000;
    stats = await world.proxy.stats();
    options.whileRunning?.(domain);
  } finally {
    world.destroy(domain, path);
    await world.proxy.set({ mode: "none" }); // the next test starts without a fault, whatever this one did
  }
  const serial = serialText(domain.serialLog);
  const outcome = readOutcome(world, serial);
  world.timings.push([name, `${outcome}, ${seconds.toFixed(1)} s`]);
  return {
    outcome,
    seconds,
    gets: stats.requests["GET range"] ?? 0,
    bytes: stats.bodyBytes,
    fired: stats.fired,
    curl: curlComplaint(name),
    serial,
  };
}

/** What the guest printed: the right hash, a wrong one, an error, or nothing (hung). */
function readOutcome(world: World, serial: string): string {
  const printed = /([0-9a-f]{64})\s+\/payload\.bin/.exec(serial)?.[1];
  const errors = serial.match(/error:[^\r\n]*/g) ?? [];
  if (printed === world.payloadHash) return "right hash";
  if (printed) return "WRONG hash, no error";
  if (errors.length) return `no hash: ${errors.join("; ")}`;
  return "no hash, no marker (hung)";
}

/** QEMU's last complaint from its curl driver, when it read the URL itself. */
function curlComplaint(name: string): string | undefined {
  const qemuLog = `/var/log/libvirt/qemu/${PREFIX}${name}.log`;
  return existsSync(qemuLog) ? readFileSync(qemuLog, "utf8").match(/curl: [^\n]*/g)?.at(-1) : undefined;
}
