// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The hook points VDSM runs the binary at: before_vm_start, which adds the
 * CD-ROM and starts the VM's relay; the points where a VM arrives
 * (migration, resume), which start its relay; and the points where it
 * leaves, which stop it.
 *
 * This module does I/O: it reads the domain and settings, starts and stops
 * relays, and writes the domain.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";

import {
  checkUrl,
  EXIT_OK,
  type HookPlan,
  type Host,
  planHook,
  planIncoming,
  type RelayStart,
  vmUuid,
} from "../lib/run.ts";

import type { ServerReport } from "./preflight.ts";

import { HookError, HostError, RelayError, UsageError } from "../lib/errors.ts";

import { RELAY_READY_MS } from "../lib/limits.ts";

import { lockFileName, type RelayDirs, relayPaths } from "../lib/paths.ts";

import { type HookPoint, hookPointOf } from "../lib/hook_point.ts";

import { relayConfigText } from "../lib/relay/config.ts";

import { nbdkitProblem } from "../lib/relay/plan.ts";

import { takeLock } from "./io/lock.ts";

import { type Environment, invokedAs, readSettings, relayDirs, runPreflight, selfCommand } from "./host.ts";

import { mark, say } from "./io/output.ts";

import { checkCurlDriver, findNbdkit, libvirtVersion } from "./io/probes.ts";

import { namingDomain, readDomain, replaceFile } from "./io/domain_file.ts";

/** What VDSM runs, at the hook point whose directory holds the path it ran. */
export function runHookPoint(env: Environment): Promise<number> {
  const point = hookPointOf(invokedAs());
  if (point === "before_vm_start") return beforeVmStart(env);
  if (point === "before_vm_migrate_destination" || point === "before_vm_dehibernate") return incomingVm(env, point);
  return vmGone(env, point);
}

/**
 * before_vm_start: rewrite the file named by `_hook_domxml` in place, after
 * starting the VM's relay in relay mode. If the write fails, the relay is
 * stopped again: no relay outlives a VM that did not start.
 */
export async function beforeVmStart(env: Environment): Promise<number> {
  const url = env.httpsisoboot;
  if (url === undefined || url === "") return EXIT_OK;
  const path = domainPath(env);
  mark("start");
  const host = readSettings(env);
  const iso = checkUrl(url, host);
  mark("settings");
  if (host.settings.relay === "off") checkCurlDriver();
  else host.libvirt = libvirtVersion(host.dirs!.run);
  mark("host");
  const original = readDomain(path, { followSymlinks: false });
  mark("read");
  const plan = namingDomain(path, () => planHook(original.text, iso, host));
  mark("transform");
  const report = plan.preflight ? await runPreflight(iso, host) : undefined;
  if (plan.relay) await startVmRelay(plan.relay, host, env, report);
  let message: string;
  try {
    message = plan.write === undefined
      ? plan.message
      : writeUnderLock(path, original.text, plan, (text) => planHook(text, iso, host));
  } catch (error) {
    if (plan.relay) await stopVmRelay(plan.relay.uuid, host.dirs!);
    throw error;
  }
  say(`httpsisoboot: ${message}\n`);
  mark("done");
  return EXIT_OK;
}

/**
 * before_vm_migrate_destination and before_vm_dehibernate: a VM that
 * arrives with the relay CD-ROM gets its relay started on this host, from
 * the URL in its custom property (its metadata records which, query values
 * hidden), under this host's settings. The domain is
 * not changed; a VM without the relay is none of the hook's business.
 */
export async function incomingVm(env: Environment, point: HookPoint): Promise<number> {
  const path = domainPath(env);
  const text = readDomain(path, { followSymlinks: false }).text;
  const host = readSettings(env);
  const incoming = namingDomain(path, () => planIncoming(text, host, env.httpsisoboot));
  if (!incoming) return EXIT_OK;
  const report = host.settings.preflight ? await runPreflight(incoming.url, host) : undefined;
  await startVmRelay(incoming, host, env, report);
  say(`httpsisoboot: started the relay of VM ${incoming.uuid} for ${incoming.url.redacted} (${point})\n`);
  return EXIT_OK;
}

/**
 * after_vm_destroy, after_vm_migrate_source and after_vm_hibernate: the VM
 * is gone from this host, so its relay stops and its files go. It needs
 * neither the settings nor a domain that parses: VDSM's `vmId` will do.
 */
export async function vmGone(env: Environment, point: HookPoint): Promise<number> {
  let text: string | undefined;
  try {
    text = env._hook_domxml ? readDomain(env._hook_domxml, { followSymlinks: false }).text : undefined;
  } catch (error) {
    if (!(error instanceof HookError)) throw error;
  }
  const uuid = vmUuid(text, env.vmId);
  if (uuid === undefined) return EXIT_OK;
  if (await stopVmRelay(uuid, relayDirs(env))) say(`httpsisoboot: stopped the relay of VM ${uuid} (${point})\n`);
  return EXIT_OK;
}

export function domainPath(env: Environment): string {
  const path = env._hook_domxml;
  if (!path) {
    throw new UsageError(
      "_hook_domxml is not set; VDSM sets it when it runs the hook. To try the hook by hand, use --dry-run FILE",
    );
  }
  return path;
}

/**
 * Starts (or finds running) the VM's relay and waits until it answers; a
 * relay that reports another size than preflight saw is stopped again. The
 * relay takes only answers of the size and validator preflight saw.
 */
export async function startVmRelay(
  relay: RelayStart,
  host: Host,
  env: Environment,
  report?: ServerReport,
): Promise<void> {
  const expectedSize = report?.size;
  const config = report?.validator
    ? { ...relay.config, expect: { size: report.size, validator: report.validator, at: report.at } }
    : relay.config;
  const { checkRelayDirs, launcher, startRelay, stopRelay } = await import("./relay/control.ts");
  const problem = nbdkitProblem(findNbdkit(), host.file);
  if (problem) throw new HostError(problem);
  const dirs = host.dirs!;
  checkRelayDirs(dirs);
  const paths = relayPaths(dirs, relay.uuid);
  const start = launcher(selfCommand(), relay.uuid);
  const size = await startRelay(paths, relay.uuid, relayConfigText(config), {
    launcher: start,
    env,
    deadline: Date.now() + RELAY_READY_MS,
    cacheDir: dirs.cache,
  });
  if (expectedSize !== undefined && size !== expectedSize) {
    await stopRelay(paths, relay.uuid, start);
    throw new RelayError(
      `the relay of VM ${relay.uuid} reads ${size} bytes where preflight saw ${expectedSize}; the ISO changed on the server`,
    );
  }
}

/** Stops the VM's relay and removes its files; whether there was one. */
export async function stopVmRelay(uuid: string, dirs: RelayDirs): Promise<boolean> {
  const { launcher, stopRelay } = await import("./relay/control.ts");
  return await stopRelay(relayPaths(dirs, uuid), uuid, launcher(selfCommand(), uuid));
}

/**
 * Writes the hook's change under the domain file's lock. The file is read
 * again once the lock is held: another httpsisoboot that held it may have
 * changed it, and then the change is planned anew on what that one wrote,
 * so nothing it did is lost and a CD-ROM it added is not added twice.
 * Returns the line to log.
 */
export function writeUnderLock(path: string, read: string, plan: HookPlan, replan: (text: string) => HookPlan): string {
  const unlock = takeLock(join(dirname(path), lockFileName(basename(path))), `the domain XML '${path}'`);
  try {
    const current = readDomain(path, { followSymlinks: false });
    const final = current.text === read ? plan : replan(current.text);
    if (final.write !== undefined) replaceFile(path, final.write, current.stats);
    return final.message;
  } finally {
    unlock();
  }
}
