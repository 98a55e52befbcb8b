// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `httpsisoboot --install` and `--uninstall`: the bare binary dropped onto a
 * node puts itself where VDSM runs hooks, with everything its relays need,
 * or takes all of that away again. What goes where is lib/host_files.ts's
 * plan, the same files the RPM packages.
 *
 * On the host itself (no `--root`) it runs as root, refuses with one line a
 * host that lacks what relays need (nbdkit with its curl plugin and filters,
 * the vdsm user, QEMU's group), makes the relays' directories with
 * systemd-tmpfiles, and reloads systemd. With `--root DIR` it stages the
 * files under DIR and asks nothing of the host: what the RPM build does.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { HookError, HostError, RelayError, UsageError } from "../lib/errors.ts";
import { allowWarning } from "../lib/policy.ts";
import { SETTINGS_FILE } from "../lib/settings.ts";
import { readSettings } from "./host.ts";
import { loadModule, removeModule } from "./selinux.ts";
import { BINARY_PATH, type HostFile, installPlan, type InstallStep, TMPFILES } from "../lib/host_files.ts";
import { randomHex, writeAtomic } from "./io/files.ts";
import { type RelayDirs, relayPaths } from "../lib/paths.ts";
import { relayState } from "./relay/control.ts";

/** What installing needs from the caller. */
export interface InstallContext {
  /** Why relays cannot run here (nbdkitProblem), or undefined. */
  nbdkit: () => string | undefined;
  /** Where this host's relays keep their files. */
  dirs: RelayDirs;
}

/**
 * Installs this binary and the host files under `root` ("" for this host).
 *
 * @returns What it did, as one line.
 * @throws {UsageError} Not run as the single binary, or not as root on the host.
 * @throws {HostError} If the host lacks what relays need; nothing is installed then.
 */
export function install(root: string, context: InstallContext): string[] {
  const self = singleBinary();
  if (root === "") checkHost(context);
  const plan = installPlan(root);
  const done: string[] = [];
  for (const step of plan) {
    const did = carryOut(step, self);
    if (did) done.push(did);
  }
  if (root === "") prepareHost();
  const kept = plan.filter((step) => step.kind === "file" && step.file.config && !done.includes(step.file.path));
  const installed = `installed ${plan.length - kept.length} files under ${root || "/"} (the binary, ${
    plan.filter((step) => step.kind === "link").length
  } hook points, the relay's unit, polkit rule, tmpfiles.d, SELinux module and man page)${
    kept.length ? `; kept the settings in ${kept.map((step) => (step as { file: HostFile }).file.path).join(", ")}` : ""
  }`;
  const selinux = root === "" ? loadModule(context.dirs.run) : {};
  if (selinux.failed) throw new HostError(`${installed}; but ${selinux.failed}`);
  return [selinux.did ? `${installed}; ${selinux.did}` : installed, ...settingsWarnings(`${root}${SETTINGS_FILE}`)];
}

/** What the settings file installed (or kept) leaves open: `allow` unset, or a file the hook would refuse. */
function settingsWarnings(file: string): string[] {
  let settings;
  try {
    ({ settings } = readSettings({ HTTPSISOBOOT_CONFIG: file }));
  } catch (error) {
    if (!(error instanceof HookError)) throw error;
    return [`warning: ${error.message}; every VM with the property will be refused until it is fixed`];
  }
  const warning = allowWarning(settings.allow, file);
  return warning ? [`warning: ${warning}`] : [];
}

/**
 * Removes what install() put under `root`, but the settings, which are the
 * admin's; refuses while relays run on this host, since their VMs read
 * through them. On the host it also removes the relays' directories: what
 * dead relays left in /run, and the cache, with the shared blocks of every
 * ISO (up to relay_shared_cache, 4 GiB by default), which only relays read.
 *
 * @throws {RelayError} If relays run.
 */
export function uninstall(root: string, dirs: RelayDirs, options: { dryRun?: boolean } = {}): string {
  if (root === "") {
    requireRoot("--uninstall");
    const running = runningRelays(dirs);
    if (running.length > 0) {
      throw new RelayError(
        `${running.length} relay${running.length === 1 ? " runs" : "s run"} here (VM ${
          running.join(", ")
        }); their VMs read their CD-ROMs through them: stop or migrate those VMs first`,
      );
    }
  }
  if (options.dryRun) return `no relay runs under ${root || "/"}: it can be uninstalled`;
  let removed = 0;
  for (const step of installPlan(root).reverse()) {
    if (step.kind === "file" && step.file.config) continue;
    const path = step.kind === "file" ? step.file.path : step.path;
    if (step.kind === "link" && !isOurLink(step)) continue;
    if (!existsOrLink(path)) continue;
    rmSync(path, { force: true });
    removed++;
  }
  if (root === "" && existsSync("/run/systemd/system")) run("systemctl", ["daemon-reload"]);
  const gone = root === "" ? [dirs.run, dirs.cache].filter(removeTree) : [];
  const selinux = root === "" ? removeModule() : undefined;
  return `removed ${removed} files under ${root || "/"}${gone.length ? ` and the relays' ${gone.join(" and ")}` : ""}${
    selinux ? `; ${selinux}` : ""
  }; kept the settings in ${root}${SETTINGS_FILE}`;
}

/**
 * Removes a directory and all in it; false when there was none. A symbolic
 * link in its place, or in it, is removed itself, never followed.
 */
function removeTree(path: string): boolean {
  let stats;
  try {
    stats = lstatSync(path);
  } catch {
    return false;
  }
  rmSync(path, { recursive: stats.isDirectory(), force: true });
  return true;
}

/** The path of this program, which must be the single binary: a script's path would not run as a hook. */
function singleBinary(): string {
  if (!process.argv[1]?.startsWith("/$bunfs/")) {
    throw new UsageError(
      "--install copies the single binary into place; run it from the binary (npm run binary builds dist/httpsisoboot)",
    );
  }
  return process.execPath;
}

function requireRoot(option: string): void {
  if (process.getuid?.() !== 0) {
    throw new UsageError(`${option} writes ${BINARY_PATH} and systemd's files: run it as root, or give --root DIR`);
  }
}

/** Refuses, before anything is written, a host where relays could not run. */
function checkHost(context: InstallContext): void {
  requireRoot("--install");
  const problem = context.nbdkit();
  if (problem) throw new HostError(`cannot install: ${problem}`);
  const group = /^d \S+ \S+ (\S+) (\S+)/m.exec(TMPFILES.text);
  const [user, qemuGroup] = [group?.[1] ?? "vdsm", group?.[2] ?? "qemu"];
  if (!hasEntry("/etc/passwd", user)) {
    throw new HostError(`cannot install: there is no user ${user}, which runs the hook and the relays; install vdsm`);
  }
  if (!hasEntry("/etc/group", qemuGroup)) {
    throw new HostError(
      `cannot install: there is no group ${qemuGroup}, QEMU's own, whose QEMU alone may read the relays' sockets; ` +
        `install qemu-kvm`,
    );
  }
}

function hasEntry(file: string, name: string): boolean {
  try {
    return readFileSync(file, "utf8").split("\n").some((line) => line.split(":")[0] === name);
  } catch {
    return false;
  }
}

/** One step; returns the path it wrote, or undefined when there was nothing to do. */
function carryOut(step: InstallStep, self: string): string | undefined {
  if (step.kind === "binary") {
    mkdirSync(dirname(step.path), { recursive: true, mode: 0o755 });
    if (existsSync(step.path) && realpathSync(step.path) === realpathSync(self)) return undefined;
    writeAtomic(step.path, readFileSync(self), { mode: 0o755 });
    return step.path;
  }
  if (step.kind === "link") {
    mkdirSync(dirname(step.path), { recursive: true, mode: 0o755 });
    if (isOurLink(step)) return undefined;
    // A new link beside it, renamed over: the hook point is never without its hook.
    const temp = join(dirname(step.path), `.httpsisoboot-${randomHex(8)}.link`);
    symlinkSync(step.target, temp);
    try {
      renameSync(temp, step.path);
    } catch (error) {
      rmSync(temp, { force: true });
      throw error;
    }
    return step.path;
  }
  const { file } = step;
  mkdirSync(dirname(file.path), { recursive: true, mode: 0o755 });
  if (file.config && existsSync(file.path)) return undefined;
  writeAtomic(file.path, file.text, { mode: file.mode });
  return file.path;
}

function isOurLink(step: Extract<InstallStep, { kind: "link" }>): boolean {
  try {
    return lstatSync(step.path).isSymbolicLink() && readlinkSync(step.path) === step.target;
  } catch {
    return false;
  }
}

function existsOrLink(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The relays' directories, now rather than at the next boot, and systemd told of the new unit. */
function prepareHost(): void {
  run("systemd-tmpfiles", ["--create", TMPFILES.path]);
  if (existsSync("/run/systemd/system")) run("systemctl", ["daemon-reload"]);
}

function run(command: string, args: string[]): void {
  const done = spawnSync(command, args, { encoding: "utf8", timeout: 30_000 });
  if (done.status !== 0) {
    throw new HostError(
      `installed, but ${command} ${args.join(" ")} failed: ${
        (done.stderr || String(done.error ?? "")).split("\n")[0].slice(0, 200)
      }`,
    );
  }
}

/** The VMs whose relays run on this host, known as the hook knows them (pid, start time, user). */
function runningRelays(dirs: RelayDirs): string[] {
  let names: string[];
  try {
    names = readdirSync(dirs.run);
  } catch {
    return []; // no run directory: no relay
  }
  return names.map((name) => /^([0-9a-f-]{36})\.pid$/.exec(name)?.[1])
    .filter((uuid): uuid is string => uuid !== undefined)
    .filter((uuid) => relayState(relayPaths(dirs, uuid), uuid).pid !== undefined);
}
