// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A real systemd host for the relay's production path: a Debian root made
 * with debootstrap (cached in the work tree's ignored .cache/, made anew
 * when its package list or set-up changes), booted by systemd-nspawn with
 * systemd as PID 1, dbus and polkitd. It shares this machine's loopback, so
 * the test nginx on 127.0.0.1 is its ISO server; its root is overlaid with
 * a tmpfs (--volatile=overlay), so every boot starts from the cached root
 * and leaves it as it was.
 *
 * The root has the users an oVirt host has: vdsm (uid 36, in kvm and qemu)
 * and qemu (QEMU's own, in group qemu). The binary is bound in read-only;
 * the suite installs it with `--install`, as an admin would.
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { ROOT } from "../test/support/mod.ts";
import { isProcess, processStart, readHolder, sleepMs } from "../edge/io/processes.ts";
import { killNaming, stopProcess } from "../test/support/processes.ts";

/** What the root holds beyond debootstrap's minbase: systemd as init, dbus, polkit, nbdkit, QEMU's NBD client. */
export const ROOT_PACKAGES = [
  "systemd",
  "systemd-sysv",
  "dbus",
  "libpam-systemd",
  "polkitd",
  "nbdkit",
  "qemu-utils",
  "python3",
  "procps",
  "ca-certificates",
];

/** The users and groups of an oVirt host, made in the root once it is bootstrapped. */
const ROOT_SETUP = [
  "getent group kvm >/dev/null || groupadd -r kvm",
  "getent group qemu >/dev/null || groupadd -r qemu",
  "id qemu >/dev/null 2>&1 || useradd -r -g qemu -G kvm -M -d / -s /usr/sbin/nologin qemu",
  "id vdsm >/dev/null 2>&1 || useradd -u 36 -g kvm -G qemu -M -d /var/lib/vdsm -s /usr/sbin/nologin vdsm",
  // debootstrap writes no /etc/hosts: localhost is the test nginx's name.
  "printf '127.0.0.1 localhost\\n::1 localhost ip6-localhost\\n' > /etc/hosts",
  // No console to log in on, and nothing to wait for at boot.
  "systemctl mask console-getty.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true",
].join("\n");

const SUITE = "bookworm";

/** How long the container may take to boot, and to shut down. */
const BOOT_MS = 90_000;
const SHUTDOWN_MS = 20_000;

/** Why there can be no systemd host here, or undefined. */
export function systemdHostMissing(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root: debootstrap and systemd-nspawn";
  for (const tool of ["debootstrap", "systemd-nspawn", "nsenter"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      return `${tool} is not installed; test/host.sh installs it`;
    }
  }
  if (!debianMirror()) return "no Debian mirror in /etc/apt's sources for debootstrap";
  return undefined;
}

/**
 * The Debian mirror apt uses here, from /etc/apt (deb822 .sources or
 * sources.list): debootstrap asks the same one, so nothing new is reached.
 */
export function debianMirror(): string | undefined {
  const texts: string[] = [];
  for (const file of ["/etc/apt/sources.list"]) if (existsSync(file)) texts.push(readFileSync(file, "utf8"));
  const dir = "/etc/apt/sources.list.d";
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).filter((name) => /\.(sources|list)$/.test(name))) {
      texts.push(readFileSync(join(dir, name), "utf8"));
    }
  }
  for (const text of texts) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.*)$/m.exec(stanza)?.[1] ?? "";
      if (uri && suites.split(/\s+/).includes(SUITE) && !/security/.test(uri)) return uri;
    }
    const line = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+)\\s+${SUITE}\\s`, "m").exec(text);
    if (line) return line[1];
  }
  return undefined;
}

/**
 * The cached root, made first if need be (about 90 s): .cache/systemd-host/
 * SUITE-HASH, where HASH covers the package list and the set-up, so a
 * change to either makes a new root. Made under a temporary name and
 * renamed into place, so a run cut short never leaves half a root.
 */
export function cachedRoot(log: (line: string) => void): string {
  const hash = createHash("sha256").update(JSON.stringify([SUITE, ROOT_PACKAGES, ROOT_SETUP])).digest("hex");
  const cache = join(ROOT, ".cache", "systemd-host");
  const root = join(cache, `${SUITE}-${hash.slice(0, 12)}`);
  if (existsSync(join(root, "usr", "lib", "systemd", "systemd"))) return root;
  mkdirSync(cache, { recursive: true });
  for (const old of readdirSync(cache)) rmSync(join(cache, old), { recursive: true, force: true });
  const building = `${root}.building`;
  const logFile = join(cache, "debootstrap.log");
  log(`building the systemd host's root with debootstrap (${SUITE}); its log: ${logFile}`);
  const out = openSync(logFile, "w");
  try {
    const made = spawnSync(
      "debootstrap",
      ["--variant=minbase", `--include=${ROOT_PACKAGES.join(",")}`, SUITE, building, debianMirror()!],
      { stdio: ["ignore", out, out], timeout: 15 * 60_000 },
    );
    if (made.status !== 0) throw new Error(`debootstrap failed (${made.status ?? made.signal}); see ${logFile}`);
  } finally {
    closeSync(out);
  }
  const setup = spawnSync("chroot", [building, "sh", "-ec", ROOT_SETUP], { encoding: "utf8" });
  if (setup.status !== 0) throw new Error(`setting up the root failed: ${setup.stderr}`);
  renameSync(building, root);
  return root;
}

/** A command's outcome inside the container. */
export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The machine name nspawn is given: how a container a killed run left is found. */
const MACHINE = "httpsisoboot-e2e";

/** Every host booted and not yet stopped, for a signal handler's cleanup. */
const booted = new Set<SystemdHost>();

/** Stops every systemd host this process booted: for the e2e's SIGINT and SIGTERM handler. */
export function stopSystemdHosts(): void {
  for (const host of booted) host.stop();
}

/**
 * Ends what a run killed outright left: a systemd-nspawn of MACHINE, and
 * the container's init, named with its start time in `stateFile` (nspawn
 * killed by SIGKILL leaves its container running).
 */
function killLeftovers(stateFile: string): void {
  killNaming(`--machine=${MACHINE}`);
  const left = existsSync(stateFile) ? readHolder(stateFile) : undefined;
  if (left && isProcess(left)) process.kill(left.pid, "SIGKILL");
  rmSync(stateFile, { force: true });
}

/** The booted container: run commands in it, and stop it. */
export class SystemdHost {
  private constructor(
    private readonly nspawn: ChildProcess,
    readonly leader: { pid: number; start?: string },
    private readonly stateFile: string,
  ) {}

  /**
   * Boots `root` with systemd as PID 1, `binds` (host paths, seen at the
   * same paths inside) read-write and `readOnly` ([host, inside]) read-only;
   * returns once systemd says the system is up.
   */
  static boot(root: string, options: { binds: string[]; readOnly: Array<[string, string]>; console: string }) {
    const stateFile = `${root}.running`;
    killLeftovers(stateFile);
    const out = openSync(options.console, "w");
    const nspawn = spawn("systemd-nspawn", [
      "--register=no",
      "--keep-unit",
      "--quiet",
      "--volatile=overlay",
      "--console=pipe",
      `--directory=${root}`,
      `--machine=${MACHINE}`,
      ...options.binds.map((path) => `--bind=${path}`),
      ...options.readOnly.map(([from, to]) => `--bind-ro=${from}:${to}`),
      "--boot",
    ], { stdio: ["ignore", out, out] });
    closeSync(out);
    let pid: number;
    try {
      pid = waitForLeader(nspawn);
    } catch (error) {
      stopProcess(nspawn.pid!, "SIGKILL", 1000);
      throw error;
    }
    const leader = { pid, start: processStart(pid) };
    writeFileSync(stateFile, `${leader.pid} ${leader.start}\n`);
    const host = new SystemdHost(nspawn, leader, stateFile);
    booted.add(host);
    // systemd's own socket first: systemctl cannot wait for a manager that does not listen yet.
    for (let waited = 0; !existsSync(`/proc/${pid}/root/run/systemd/private`) && waited < BOOT_MS; waited += 50) {
      sleepMs(50);
    }
    const up = host.run(["systemctl", "is-system-running", "--wait"], { timeoutMs: BOOT_MS });
    if (!/^(running|degraded)$/m.test(up.stdout)) {
      host.stop();
      const console = readFileSync(options.console, "utf8").trim().split("\n").slice(-3).join(" | ");
      throw new Error(`the systemd host did not come up: ${up.stdout.trim()} ${up.stderr.trim()}; console: ${console}`);
    }
    return host;
  }

  /** Runs a command in the container, as root or as `user` (with that user's groups). */
  run(command: string[], options: { user?: string; input?: string; timeoutMs?: number } = {}): Ran {
    const as = options.user
      ? ["setpriv", `--reuid=${options.user}`, `--regid=${groupOf(options.user)}`, "--init-groups"]
      : [];
    const ran = spawnSync("nsenter", ["--target", String(this.leader.pid), "--all", "--", ...as, ...command], {
      encoding: "utf8",
      input: options.input,
      timeout: options.timeoutMs ?? 60_000,
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
    });
    return { status: ran.status, stdout: ran.stdout ?? "", stderr: ran.stderr ?? String(ran.error ?? "") };
  }

  /**
   * Shuts the container down (nspawn turns SIGTERM into an orderly
   * shutdown), then kills what is left: nspawn, and the container's init,
   * which outlives an nspawn killed by SIGKILL.
   */
  stop(): void {
    booted.delete(this);
    if (this.nspawn.exitCode === null && this.nspawn.signalCode === null) {
      stopProcess(this.nspawn.pid!, "SIGTERM", SHUTDOWN_MS);
    }
    if (isProcess(this.leader)) process.kill(this.leader.pid, "SIGKILL");
    rmSync(this.stateFile, { force: true });
  }
}

/** The primary group of a user of the root: vdsm's is kvm, qemu's is qemu. */
function groupOf(user: string): string {
  return user === "vdsm" ? "kvm" : user;
}

/** The container's PID 1, as this machine sees it: nspawn's child. */
function waitForLeader(nspawn: ChildProcess): number {
  for (let waited = 0; waited < BOOT_MS; waited += 50) {
    if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn ended (${nspawn.exitCode}) before the container ran`);
    try {
      for (const task of readdirSync(`/proc/${nspawn.pid}/task`)) {
        for (const child of readFileSync(`/proc/${nspawn.pid}/task/${task}/children`, "utf8").trim().split(/\s+/)) {
          if (child && readFileSync(`/proc/${child}/comm`, "utf8").trim() === "systemd") return Number(child);
        }
      }
    } catch { /* not there yet */ }
    sleepMs(50);
  }
  throw new Error("the container's systemd did not start");
}
