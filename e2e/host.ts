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
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { log } from "./steps.ts";
import { STATE } from "./leftovers.ts";

/** Debian's bundle, then EL's (a symbolic link, which a bind mount follows). */
const BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];
const HOST_MOUNT = join(STATE, "host-mount");

export interface Host {
  /** How the test CA is trusted: "mount namespace" or "bundle edited and restored". */
  trust: string;
  stop(): void;
}

function running(name: string): number | undefined {
  const found = spawnSync("pgrep", ["-x", name], { encoding: "utf8" });
  const pid = Number(found.stdout.trim().split("\n")[0]);
  return pid > 0 ? pid : undefined;
}

function waitGone(pid: number): void {
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    spawnSync("sleep", ["0.1"]);
  }
}

function stopPid(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch { /* already gone */ }
  waitGone(pid);
}

function waitForLibvirt(): void {
  for (let i = 0; i < 240; i++) {
    if (spawnSync("virsh", ["-c", "qemu:///system", "uri"], { stdio: "ignore" }).status === 0) return;
    spawnSync("sleep", ["0.25"]);
  }
  throw new Error("libvirtd did not answer on qemu:///system within 60 s");
}

function bundlePath(): string {
  const found = BUNDLES.find((path) => existsSync(path));
  if (!found) throw new Error(`no system trust bundle at ${BUNDLES.join(" or ")}`);
  return found;
}

/** Undoes the host-namespace mount of a run that was killed before its stop(). */
function unmountStale(): void {
  if (!existsSync(HOST_MOUNT)) return;
  const path = readFileSync(HOST_MOUNT, "utf8");
  spawnSync("umount", [path]);
  rmSync(HOST_MOUNT, { force: true });
  log(`unmounted the trust bundle an interrupted run left over ${path}`);
}

/** Starts what the e2e needs and trusts `caCert` for QEMU until stop(). */
export function startHost(dir: string, caCert: string): Host {
  mkdirSync(STATE, { recursive: true });
  // A libvirtd left by an interrupted run still trusts that run's CA only.
  const stale = existsSync(join(STATE, "libvirtd.pid")) ? Number(readFileSync(join(STATE, "libvirtd.pid"), "utf8")) : 0;
  if (stale && stale === running("libvirtd")) {
    log("stopping the libvirtd an interrupted run left behind");
    stopPid(stale);
  }
  unmountStale();
  if (existsSync("/dev/kvm")) spawnSync("sh", ["-c", "chgrp kvm /dev/kvm && chmod 660 /dev/kvm"]);

  const startedVirtlogd = !running("virtlogd");
  if (startedVirtlogd) execFileSync("virtlogd", ["-d"]);
  const bundle = bundlePath();
  const trusted = readFileSync(bundle, "utf8") + "\n" + readFileSync(caCert, "utf8");

  const mounted = join(dir, "trust-bundle.crt");
  writeFileSync(mounted, trusted, { mode: 0o644 });
  if (!running("libvirtd")) {
    execFileSync("unshare", ["--mount", "--propagation", "private", "sh", "-c",
      `mount --bind '${mounted}' '${bundle}' && exec libvirtd -d`]);
    waitForLibvirt();
    const pid = running("libvirtd")!;
    writeFileSync(join(STATE, "libvirtd.pid"), String(pid));
    return {
      trust: `mount namespace (libvirtd ${pid} sees the test CA in ${bundle}; the host's file is untouched)`,
      stop() {
        stopPid(pid);
        rmSync(join(STATE, "libvirtd.pid"), { force: true });
        if (startedVirtlogd) stopPid(running("virtlogd"));
      },
    };
  }

  execFileSync("mount", ["--bind", mounted, bundle]);
  writeFileSync(HOST_MOUNT, bundle);
  return {
    trust: `bind mount over ${bundle} in the host's namespace until the end of the run (libvirtd was already running)`,
    stop() {
      spawnSync("umount", [bundle]);
      rmSync(HOST_MOUNT, { force: true });
      if (startedVirtlogd) stopPid(running("virtlogd"));
    },
  };
}
