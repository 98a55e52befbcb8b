// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `--check URL`: what the ISO server answers to QEMU's questions, and
 * whether and how relays run on this host.
 *
 * This module asks the server and probes the host.
 *
 * @module
 */
import { spawnSync } from "node:child_process";

import { checkReport, checkUrl, EXIT_FAILURE, EXIT_OK, type Host } from "../lib/run.ts";
import { HookError, HostError, printable } from "../lib/errors.ts";
import { nbdkitProbeArgs, nbdkitProblem, RELAY_FILTERS } from "../lib/relay/plan.ts";
import { groupName, userName } from "./io/files.ts";
import { statSync } from "node:fs";
import { print } from "./io/output.ts";
import { checkCurlDriver, findNbdkit, libvirtVersion } from "./io/probes.ts";
import { Environment, readSettings, runPreflight, selfCommand } from "./host.ts";
import { allowWarning } from "../lib/policy.ts";
import { proxyFor } from "../lib/proxy.ts";
import { describeSelinux } from "../lib/selinux.ts";
import { selinuxState } from "./selinux.ts";

/** `--check URL`: what the server answers to QEMU's questions. */
export async function check(url: string, env: Environment): Promise<number> {
  const host = readSettings(env);
  const iso = checkUrl(url, host);
  const relayMode = host.settings.relay === "nbdkit";
  const driver = relayMode ? curlDriverNote() : checkCurlDriver();
  const report = await runPreflight(iso, host);
  const relay = relayMode
    ? await relayReadiness(host)
    : { lines: ["off: QEMU's curl driver reads the ISO, without retries"], ok: true };
  const { describeExpiry, signedUrlExpiry } = await import("../lib/expiry.ts");
  const expiry = signedUrlExpiry(iso.query);
  const selinux = relayMode ? describeSelinux(selinuxState(host.dirs!.run), host.dirs!.run) : undefined;
  const warning = allowWarning(host.settings.allow, host.file);
  const { proxy, noProxy } = host.settings;
  const through = proxyFor(iso, proxy, noProxy);
  print(checkReport(report, {
    driver,
    relay: relay.lines,
    signature: expiry && describeExpiry(expiry, new Date()),
    selinux: selinux?.line,
    warnings: warning ? [warning] : [],
    proxy: proxy &&
      (through ? `${through.shown}, which tunnelled to the server` : `not used for ${iso.host} (no_proxy)`),
  }));
  return relay.ok && (selinux?.ok ?? true) ? EXIT_OK : EXIT_FAILURE;
}

/** A directory as --check shows it: path, owner:group and mode, as ls -ld says them. */
function describeDir(path: string): string {
  const stats = statSync(path);
  return `${path} (${userName(stats.uid)}:${groupName(stats.gid)} ${
    (stats.mode & 0o7777).toString(8).padStart(4, "0")
  })`;
}

/** In relay mode QEMU's curl driver is not needed: say where it is, or that only relay = off would need it. */
export function curlDriverNote(): string {
  try {
    return checkCurlDriver();
  } catch (error) {
    if (!(error instanceof HostError)) throw error;
    return "not installed; only relay = off needs it";
  }
}

/**
 * Whether relays can run on this host, as --check reports it: nbdkit loads
 * its curl plugin and the filters (as libvirt probes it), the relays'
 * directories are there and writable, and how the hook starts a relay.
 */
export async function relayReadiness(host: Host): Promise<{ lines: string[]; ok: boolean }> {
  const refuse = (why: string) => ({ lines: [`cannot run here: ${why}`], ok: false });
  const found = findNbdkit();
  const problem = nbdkitProblem(found, host.file);
  if (problem) return refuse(problem);
  const probe = spawnSync(found.binary!, nbdkitProbeArgs(), {
    encoding: "utf8",
    timeout: 10_000,
  });
  if (probe.status !== 0) {
    return refuse(
      `${found.binary} cannot load its curl plugin and filters: ${printable(probe.stderr.split("\n")[0], 200)}`,
    );
  }
  const { checkRelayDirs, launcher } = await import("./relay/control.ts");
  try {
    checkRelayDirs(host.dirs!);
  } catch (error) {
    if (!(error instanceof HookError)) throw error;
    return refuse(error.message);
  }
  const version = printable(probe.stdout.split("\n")[0], 40);
  const start = launcher(selfCommand(), "00000000-0000-0000-0000-000000000000").kind === "systemd"
    ? "by systemd, as httpsisoboot-relay@<uuid>.service"
    : "detached by the hook (systemd is not PID 1 here, or the unit is not installed)";
  const { describeReconnect } = await import("../lib/libvirt_version.ts");
  return {
    lines: [
      `${version}, ${found.binary}, with the curl plugin and the ${RELAY_FILTERS.slice(0, -1).join(", ")} and ${
        RELAY_FILTERS.at(-1)
      } filters`,
      `directories: ${describeDir(host.dirs!.run)} and ${describeDir(host.dirs!.cache)}; relays run as ${
        userName(statSync(host.dirs!.run).uid)
      }`,
      `started ${start}`,
      `reconnect: ${describeReconnect(libvirtVersion())}`,
    ],
    ok: true,
  };
}
