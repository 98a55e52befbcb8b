// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `--dry-run`: what the hook would write, or the diff, query values hidden;
 * it never writes and never asks the server.
 *
 * This module reads the domain and settings and writes to stdout.
 *
 * @module
 */

import { checkUrl, EXIT_OK, planDryRun, planHook, type RelayCommands, type RelayStart } from "../lib/run.ts";

import type { Command } from "../lib/cli.ts";

import { UsageError } from "../lib/errors.ts";

import { type RelayDirs, relayPaths } from "../lib/paths.ts";

import { nbdkitArgs } from "../lib/relay/plan.ts";

import { print, say } from "./io/output.ts";

import { findNbdkit, libvirtVersion, selinuxEnabled } from "./io/probes.ts";

import { decodeDomain, namingDomain, readDomain, readStdin } from "./io/domain_file.ts";

import { Environment, readSettings, selfCommand } from "./host.ts";

/** What starting the VM's relay would run, for --dry-run; the nbdkit command holds nothing of the URL. */
export async function relayCommands(relay: RelayStart, dirs: RelayDirs): Promise<RelayCommands> {
  const { launcher } = await import("./relay/control.ts");
  const paths = relayPaths(dirs, relay.uuid);
  const nbdkit = findNbdkit().binary ?? "nbdkit";
  const selinux = selinuxEnabled();
  return {
    start: launcher(selfCommand(), relay.uuid).command,
    nbdkit: [nbdkit, ...nbdkitArgs(paths, relay.config, { selinux })],
  };
}

/** Prints what the hook would write, or the diff, query values hidden; never writes, never asks the server. */
export async function dryRun(command: Extract<Command, { mode: "dry-run" }>, env: Environment): Promise<number> {
  const url = command.url ?? env.httpsisoboot;
  if (!url) throw new UsageError("no URL: give --url URL or set httpsisoboot");
  const file = command.file ?? env._hook_domxml;
  if (!file) throw new UsageError("no domain XML: give FILE (or - for stdin) or set _hook_domxml");
  const host = readSettings(env);
  if (host.settings.relay === "nbdkit") host.libvirt = libvirtVersion(host.dirs!.run);
  const iso = checkUrl(url, host);
  const text = file === "-"
    ? decodeDomain(await readStdin(), "stdin")
    : readDomain(file, { followSymlinks: true }).text;
  const name = file === "-" ? "stdin" : file;
  const relay = namingDomain(name, () => planHook(text, iso, host)).relay;
  const plan = planDryRun(text, iso, host, {
    diff: command.diff,
    name,
    relay: relay && await relayCommands(relay, host.dirs!),
  });
  print(plan.stdout);
  say(`httpsisoboot: ${plan.message}\n`);
  return EXIT_OK;
}
