// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The libvirt host for the e2e: virtlogd and libvirtd, and trust in the
 * run's test CA for QEMU, whose curl uses GnuTLS with the system trust store.
 *
 * The trust bundle with the test CA added is bind-mounted over the system
 * bundle; no file under /etc is ever written. When libvirtd is not running,
 * the suite starts it in a private mount namespace that holds the mount, so
 * the host never sees it; QEMU, started by libvirtd, inherits it. When a
 * libvirtd the suite did not start is already running, the mount is made in
 * the host's namespace until stop(); one left by a killed run is undone at
 * the next start.
 */
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { log } from "./steps.ts";
import { systemTrustBundle } from "../edge/http/trust.ts";
import { STATE } from "./leftovers.ts";
import { stopProcess } from "../test/support/processes.ts";

/** Debian's bundle, then EL's (a symbolic link, which a bind mount follows). */
const HOST_MOUNT = join(STATE, "host-mount");
/**
 * EL's GnuTLS reads trust through p11-kit from the anchors directory, not
 * from the PEM bundle, so there the anchors directory is mounted too.
 */
const EL_ANCHORS = "/etc/pki/ca-trust/source/anchors";

export interface Host {
  /** How the test CA is trusted. */
  trust: string;
  /**
   * The command line that runs `command` with the same trust as QEMU: inside
   * libvirtd's mount namespace when the suite made one. On a real host VDSM's
   * hook and QEMU read the same trust store; this keeps it so.
   */
  withQemuTrust(command: string[]): string[];
  stop(): void;
}

function running(name: string): number | undefined {
  const found = spawnSync("pgrep", ["-x", name], { encoding: "utf8" });
  const pid = Number(found.stdout.trim().split("\n")[0]);
  return pid > 0 ? pid : undefined;
}

function stopPid(pid: number | undefined): void {
  if (pid) stopProcess(pid);
}

function waitForLibvirt(): void {
  for (let i = 0; i < 240; i++) {
    if (spawnSync("virsh", ["-c", "qemu:///system", "uri"], { stdio: "ignore" }).status === 0) return;
    spawnSync("sleep", ["0.25"]);
  }
  throw new Error("libvirtd did not answer on qemu:///system within 60 s");
}

/** The bundle QEMU's GnuTLS reads: the same one the hook's preflight reads. */
function bundlePath(): string {
  return systemTrustBundle();
}

/** Undoes the host-namespace mount of a run that was killed before its stop(). */
function unmountStale(): void {
  if (!existsSync(HOST_MOUNT)) return;
  for (const path of readFileSync(HOST_MOUNT, "utf8").split("\n")) {
    spawnSync("umount", [path]);
    log(`unmounted the trust an interrupted run left over ${path}`);
  }
  rmSync(HOST_MOUNT, { force: true });
}

/** Starts what the e2e needs and trusts `caCert` for QEMU until stop(). */
export function startHost(dir: string, caCert: string): Host {
  clearStaleRun();
  const startedVirtlogd = !running("virtlogd");
  if (startedVirtlogd) execFileSync("virtlogd", ["-d"]);
  const mounts = trustMounts(dir, caCert);
  return running("libvirtd")
    ? trustInHostNamespace(mounts, startedVirtlogd)
    : startPrivateLibvirtd(mounts, startedVirtlogd);
}

/** Stops a libvirtd and undoes a mount that an interrupted run left, and makes /dev/kvm usable. */
function clearStaleRun(): void {
  mkdirSync(STATE, { recursive: true });
  // A libvirtd left by an interrupted run still trusts that run's CA only.
  const stale = existsSync(join(STATE, "libvirtd.pid")) ? Number(readFileSync(join(STATE, "libvirtd.pid"), "utf8")) : 0;
  if (stale && stale === running("libvirtd")) {
    log("stopping the libvirtd an interrupted run left behind");
    stopPid(stale);
  }
  unmountStale();
  if (existsSync("/dev/kvm")) spawnSync("sh", ["-c", "chgrp kvm /dev/kvm && chmod 660 /dev/kvm"]);
}

/** The files to bind-mount over the trust store: the bundle with the test CA, and EL's anchors when present. */
function trustMounts(dir: string, caCert: string): Array<[string, string]> {
  const bundle = bundlePath();
  const mounted = join(dir, "trust-bundle.crt");
  writeFileSync(mounted, readFileSync(bundle, "utf8") + "\n" + readFileSync(caCert, "utf8"), { mode: 0o644 });
  const mounts: Array<[string, string]> = [[mounted, bundle]];
  if (existsSync(EL_ANCHORS)) {
    const anchors = join(dir, "trust-anchors");
    cpSync(EL_ANCHORS, anchors, { recursive: true });
    copyFileSync(caCert, join(anchors, "httpsisoboot-e2e-ca.crt"));
    mounts.push([anchors, EL_ANCHORS]);
  }
  return mounts;
}

/** A libvirtd of the suite's own, in a private mount namespace where the test CA is trusted. */
function startPrivateLibvirtd(mounts: Array<[string, string]>, startedVirtlogd: boolean): Host {
  const binds = mounts.map(([from, to]) => `mount --bind '${from}' '${to}'`).join(" && ");
  execFileSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", `${binds} && exec libvirtd -d`]);
  waitForLibvirt();
  const pid = running("libvirtd")!;
  writeFileSync(join(STATE, "libvirtd.pid"), String(pid));
  const where = mounts.map(([, to]) => to).join(" and ");
  return {
    trust: `mount namespace (libvirtd ${pid} sees the test CA in ${where}; the host's files are untouched)`,
    withQemuTrust: (command) => ["nsenter", "--target", String(pid), "--mount", "--", ...command],
    stop() {
      stopPid(pid);
      rmSync(join(STATE, "libvirtd.pid"), { force: true });
      if (startedVirtlogd) stopPid(running("virtlogd"));
    },
  };
}

/** With a libvirtd already running: the same mounts in the host's namespace, until the end of the run. */
function trustInHostNamespace(mounts: Array<[string, string]>, startedVirtlogd: boolean): Host {
  for (const [from, to] of mounts) execFileSync("mount", ["--bind", from, to]);
  writeFileSync(HOST_MOUNT, mounts.map(([, to]) => to).join("\n"));
  const where = mounts.map(([, to]) => to).join(" and ");
  return {
    trust: `bind mount over ${where} in the host's namespace until the end of the run (libvirtd was already running)`,
    withQemuTrust: (command) => command,
    stop() {
      for (const [, to] of mounts) spawnSync("umount", [to]);
      rmSync(HOST_MOUNT, { force: true });
      if (startedVirtlogd) stopPid(running("virtlogd"));
    },
  };
}
