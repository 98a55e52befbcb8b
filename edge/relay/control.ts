// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * How the hook starts, finds and stops a VM's relay.
 *
 * - Where systemd is PID 1 and the relay's unit is installed, the relay is
 *   httpsisoboot-relay@UUID.service, started and stopped with systemctl
 *   (a polkit rule lets vdsm do that for these units only). It lives in its
 *   own cgroup, so a restart of vdsmd, which kills vdsmd's whole cgroup,
 *   leaves it running.
 * - Elsewhere the hook starts it itself, detached: a session of its own,
 *   its output in its log, reparented to init when the hook exits.
 *
 * Either way the hook then waits, RELAY_READY_MS at most, until the relay
 * answers an NBD handshake with the ISO's size. A relay that does not is
 * stopped again, and the hook fails with the relay's own last word.
 *
 * This module does I/O: files, processes and a Unix socket.
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { connect } from "node:net";
import process from "node:process";
import { printable, RelayError } from "../../lib/errors.ts";
import { accessHint, errorCode, groupName, readRegularFile, writeAtomic } from "../io/files.ts";
import { isProcess, isRunning, pause, type ProcessId, readHolder, stopProcess } from "../io/processes.ts";
import { takeLock } from "../io/lock.ts";
import { RELAY_STOP_MS } from "../../lib/limits.ts";
import { type RelayDirs, type RelayPaths, relayUnit } from "../../lib/paths.ts";
import { NbdInfo } from "../../lib/relay/nbd.ts";
import { budgetProblem, cacheBudget, relayReservation, type Reservation, sharedBound } from "../../lib/relay/budget.ts";
import { parseRelayConfig, type RelayConfig, relayConfigText } from "../../lib/relay/config.ts";

/** The unit's file, where the RPM puts it (or an admin). */
const UNIT_FILES = [
  "/usr/lib/systemd/system/httpsisoboot-relay@.service",
  "/etc/systemd/system/httpsisoboot-relay@.service",
];

/** The lock on the host's cache budget, in the run directory. */
const BUDGET_LOCK = "cache-budget.lock";

/** How a relay is started on this host. */
export type Launcher =
  | { kind: "systemd"; command: string[] }
  | { kind: "detached"; command: string[] };

/**
 * How relays start here: through systemd when it is PID 1 and the unit is
 * installed, else detached.
 *
 * @param self The command that runs this program (the hook binary).
 * @param uuid The VM's UUID.
 */
export function launcher(self: string[], uuid: string): Launcher {
  const booted = existsSync("/run/systemd/system") && UNIT_FILES.some((file) => existsSync(file));
  return booted
    ? { kind: "systemd", command: ["systemctl", "start", relayUnit(uuid)] }
    : { kind: "detached", command: [...self, "--relay", uuid] };
}

/**
 * Refuses, with what to do, a host where relays cannot keep their files:
 * each directory must exist and be writable by the user the hook runs as.
 *
 * @throws {RelayError} Naming the directory, and the package or setting that fixes it.
 */
export function checkRelayDirs(dirs: RelayDirs): void {
  for (const dir of [dirs.run, dirs.cache]) {
    let code = "";
    try {
      if (!statSync(dir).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
      // Root may write any directory, as access(2) says; Deno's node:fs judges root by the mode bits alone.
      if (process.getuid?.() !== 0) accessSync(dir, constants.W_OK | constants.X_OK);
      continue;
    } catch (error) {
      code = errorCode(error);
    }
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new RelayError(
        `the relay directory ${dir} is missing; the RPM's tmpfiles.d makes it at boot (systemd-tmpfiles --create), ` +
          `or make it owned by the user VDSM runs as, mode 0750, or set relay = off`,
      );
    }
    throw new RelayError(`cannot use the relay directory ${dir}: ${code}${accessHint(dir, "write")}`);
  }
  const run = statSync(dirs.run);
  if (run.uid === 0) {
    throw new RelayError(
      `the relay directory ${dirs.run} is owned by root, and a relay never runs as root (it reads what the ISO ` +
        `server sends); make it owned by the user VDSM runs as, as the RPM's tmpfiles.d does (vdsm, group qemu)`,
    );
  }
  if (groupName(run.gid) === "kvm") {
    throw new RelayError(
      `the relay directory ${dirs.run} is group kvm, so any user in kvm could read every VM's ISO from its socket; ` +
        `make it group qemu (QEMU's own group, as libvirt's qemu.conf names it), as the RPM's tmpfiles.d does`,
    );
  }
  if (statSync(dirs.cache).uid !== run.uid) {
    throw new RelayError(
      `${dirs.run} and ${dirs.cache} have different owners, but the first's owner runs the relays and writes ` +
        `both: make both owned by vdsm, as the RPM's tmpfiles.d does`,
    );
  }
}

/**
 * Who a relay runs as: the owner of the run directory, in its group, which
 * is QEMU's own (the socket takes that group, mode 0660). The hook, run as
 * root, starts it as them; run as that user, as itself.
 */
export function relayOwner(dirs: RelayDirs): { uid: number; gid: number } {
  const { uid, gid } = statSync(dirs.run);
  return { uid, gid };
}

/** The relay's state as the hook finds it. */
export interface RelayState {
  /** The process its pid file names, when that is a relay of this VM, of the relays' user. */
  pid?: ProcessId;
  /** Its config's text, when there is one. */
  config?: string;
}

/**
 * Starts the VM's relay with `configText`, or finds one already serving it,
 * and waits until it answers. Under the relay's lock: two hooks for one VM
 * never start two relays.
 *
 * @returns The ISO's size, as the relay reports it.
 * @throws {RelayError} If it cannot start or does not answer in time; no relay is left then.
 */
export async function startRelay(
  paths: RelayPaths,
  uuid: string,
  configText: string,
  options: { launcher: Launcher; env: Record<string, string | undefined>; deadline: number; cacheDir: string },
): Promise<number> {
  const unlock = takeLock(paths.lock, `the relay of VM ${uuid}`);
  try {
    const state = relayState(paths, uuid);
    if (state.pid !== undefined && sameConfig(state.config, configText)) {
      return await exportSize(paths, uuid, { deadline: options.deadline, pid: state.pid.pid });
    }
    await stopLocked(paths, uuid, options.launcher, state);
    reserveCache(paths, uuid, parseRelayConfig(configText, paths.config), options.cacheDir);
    const pid = launch(paths, options.launcher, options.env);
    try {
      return await exportSize(paths, uuid, { deadline: options.deadline, pid });
    } catch (error) {
      await stopLocked(paths, uuid, options.launcher, relayState(paths, uuid));
      throw error;
    }
  } finally {
    unlock();
  }
}

/**
 * Stops the VM's relay, if it has one, and removes every file it had.
 *
 * @returns Whether there was anything to stop or remove.
 */
export async function stopRelay(paths: RelayPaths, uuid: string, launcher: Launcher): Promise<boolean> {
  const unlock = takeLock(paths.lock, `the relay of VM ${uuid}`);
  try {
    return await stopLocked(paths, uuid, launcher, relayState(paths, uuid));
  } finally {
    unlock();
  }
}

/**
 * Whether the running relay serves what the hook would start it with: the
 * same fields, read back the same way (the key order of a text is not the
 * config), but the shared cache's bound, which reserveCache set from the
 * room the budget had when that relay started.
 */
function sameConfig(running: string | undefined, wanted: string): boolean {
  if (running === undefined) return false;
  try {
    const [was, now] = [parseRelayConfig(running, "the running config"), parseRelayConfig(wanted, "the new config")];
    return relayConfigText({ ...was, sharedCache: now.sharedCache }) === relayConfigText(now);
  } catch {
    return false;
  }
}

/**
 * Writes the relay's config, which is its reservation of the host's cache
 * budget, under the host's budget lock: two relays starting at once never
 * both fit where only one does.
 *
 * @throws {RelayError} If the relays' caches would pass relay_cache_total.
 */
function reserveCache(paths: RelayPaths, uuid: string, config: RelayConfig, cacheDir: string): void {
  const runDir = dirname(paths.config);
  const unlock = takeLock(join(runDir, BUDGET_LOCK), "the relays' cache budget");
  try {
    const free = statfsSync(cacheDir);
    const budget = cacheBudget(config.cacheTotal, free.bavail * free.bsize);
    const how = "percent" in config.cacheTotal
      ? `relay_cache_total (${config.cacheTotal.percent}% of what ${cacheDir} has free, in ${config.settingsFile})`
      : `relay_cache_total (in ${config.settingsFile})`;
    const mine = { uuid, bytes: relayReservation(config) };
    const others = reservations(runDir);
    const problem = budgetProblem(mine, others, budget, how);
    if (problem) throw new RelayError(problem);
    const shared = sharedBound(config.sharedCache, mine, others, budget);
    writePrivate(paths.config, relayConfigText({ ...config, sharedCache: shared }));
  } finally {
    unlock();
  }
}

/** What the relays of this host have reserved: every config file's cache size (a config that does not parse, none). */
function reservations(runDir: string): Reservation[] {
  const found: Reservation[] = [];
  for (const name of readdirSync(runDir)) {
    const uuid = /^([0-9a-f-]{36})\.relay$/.exec(name)?.[1];
    const text = uuid && readSmall(join(runDir, name));
    if (!text) continue;
    try {
      found.push({ uuid: uuid!, bytes: relayReservation(parseRelayConfig(text, name)) });
    } catch { /* not a config the hook wrote: it reserves nothing */ }
  }
  return found;
}

/**
 * The running relay of this VM, and its config. The pid file names it by
 * pid and start time; it counts only if that process still runs, started
 * then, is the relays' user's (the run directory's owner) and says
 * `--relay UUID`: another user's process, or a pid reused since, is never
 * taken for it, waited for or signalled.
 */
export function relayState(paths: RelayPaths, uuid: string): RelayState {
  const holder = readHolder(paths.pid);
  const config = readSmall(paths.config);
  const owner = statSync(dirname(paths.pid)).uid;
  const pid = holder && isProcess(holder) && isRelayOf(holder.pid, uuid, owner) ? holder : undefined;
  return { pid, config };
}

async function stopLocked(paths: RelayPaths, uuid: string, launcher: Launcher, state: RelayState): Promise<boolean> {
  const leftovers = [paths.socket, paths.config, paths.pid, paths.log, paths.private, paths.cache, paths.status].filter(
    (path) => existsSync(path),
  );
  if (launcher.kind === "systemd" && (state.pid !== undefined || leftovers.length > 0)) {
    spawnSync("systemctl", ["stop", relayUnit(uuid)], { stdio: "ignore", timeout: RELAY_STOP_MS * 2 });
  }
  try {
    if (state.pid !== undefined) await terminate(state.pid, uuid);
  } finally {
    for (const path of leftovers) rmSync(path, { recursive: true, force: true });
  }
  return state.pid !== undefined || leftovers.length > 0;
}

/**
 * SIGTERM, then SIGKILL once RELAY_STOP_MS have passed; gives up
 * RELAY_STOP_MS after the SIGKILL: every wait has a limit.
 *
 * @throws {RelayError} If it outlives the SIGKILL (a process stuck in the kernel).
 */
async function terminate(relay: ProcessId, uuid: string): Promise<void> {
  if (await stopProcess(relay, RELAY_STOP_MS)) return;
  throw new RelayError(
    `the relay of VM ${uuid} (pid ${relay.pid}) did not end within ${RELAY_STOP_MS / 1000} s of SIGKILL; ` +
      `its files are removed, but check the process (ps -o stat,wchan -p ${relay.pid})`,
  );
}

/** Starts the relay; returns its pid when the hook started it, else undefined (systemd's). */
function launch(paths: RelayPaths, launcher: Launcher, env: Record<string, string | undefined>): number | undefined {
  const [command, ...args] = launcher.command;
  if (launcher.kind === "systemd") {
    const started = spawnSync(command, args, { encoding: "utf8", timeout: 10_000 });
    if (started.status !== 0) {
      throw new RelayError(
        `systemctl could not start ${args.at(-1)}: ${printable(started.stderr || String(started.error ?? ""), 200)}`,
      );
    }
    return undefined;
  }
  const log = openSync(
    paths.log,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    const owner = statSync(dirname(paths.config));
    // As root, the relay starts as the run directory's owner: it never parses what the server sends as root.
    const user = process.getuid?.() === 0 ? { uid: owner.uid, gid: owner.gid } : {};
    const child = spawn(command, args, {
      detached: true,
      stdio: ["ignore", log, log],
      env: relayEnv(env),
      cwd: "/",
      ...user,
    });
    child.unref();
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** The relay's environment: only what it needs, so no proxy setting or key-log file reaches its TLS. */
function relayEnv(env: Record<string, string | undefined>): Record<string, string> {
  const kept: Record<string, string> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" };
  for (const name of ["HTTPSISOBOOT_RUN_DIR", "HTTPSISOBOOT_CACHE_DIR"]) {
    if (env[name]) kept[name] = env[name]!;
  }
  return kept;
}

/**
 * Waits until the relay's socket answers an NBD handshake with the export's
 * size; fails at once when the relay process ends, with its last word.
 */
async function exportSize(
  paths: RelayPaths,
  uuid: string,
  options: { deadline: number; pid?: number },
): Promise<number> {
  let last = "";
  for (;;) {
    if (options.pid !== undefined && !isRunning(options.pid)) {
      throw new RelayError(`the relay of VM ${uuid} ended before it answered${lastWord(paths)}`);
    }
    if (openToGroup(paths.socket)) {
      try {
        return await askSize(paths.socket, options.deadline);
      } catch (error) {
        if (error instanceof RelayError) {
          throw new RelayError(`the relay of VM ${uuid} could not read the ISO (${error.message})${lastWord(paths)}`);
        }
        last = errorCode(error);
      }
    }
    if (Date.now() >= options.deadline) {
      throw new RelayError(
        `the relay of VM ${uuid} did not answer on ${paths.socket} in time${last ? ` (${last})` : ""}${
          lastWord(paths)
        }`,
      );
    }
    await pause(20);
  }
}

/**
 * Whether the socket is there and only QEMU's group may connect to it (the
 * run directory's group, mode 0660): the relay makes it so once nbdkit made it.
 */
function openToGroup(socket: string): boolean {
  try {
    const stats = statSync(socket);
    return (stats.mode & 0o777) === 0o660 && stats.gid === statSync(dirname(socket)).gid;
  } catch {
    return false;
  }
}

/** One NBD handshake: NBD_OPT_INFO, for the export's size. */
function askSize(socketPath: string, deadline: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = new NbdInfo();
    const socket = connect({ path: socketPath });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }));
    }, Math.max(0, deadline - Date.now()));
    const done = (error?: Error, size?: number) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(size!);
    };
    socket.on("data", (chunk: Uint8Array) => {
      try {
        const step = client.push(chunk);
        if (step.send) socket.write(step.send);
        if (step.size !== undefined) {
          socket.end();
          done(undefined, step.size);
        }
      } catch (error) {
        done(error as Error);
      }
    });
    socket.on("error", (error) => done(error));
    socket.on("close", () => done(Object.assign(new Error("closed"), { code: "ECONNRESET" })));
  });
}

/**
 * The relay's last word in its log, as ": …": its own last complaint (which
 * names the server and what it did), else nbdkit's last error.
 */
function lastWord(paths: RelayPaths): string {
  const lines = (readSmall(paths.log, 256 * 1024) ?? "").split("\n");
  const own = lines.filter((line) => /^httpsisoboot-relay \S+: (?!serving )/.test(line)).at(-1);
  const line = own?.replace(/^httpsisoboot-relay \S+: /, "") ??
    lines.filter((line) => /nbdkit.*error/.test(line)).at(-1);
  return line ? `: ${printable(line, 300)}` : "";
}

/** Whether `pid` is a relay of this VM: the relays' user's, and its command line says `--relay UUID`. */
function isRelayOf(pid: number, uuid: string, owner: number): boolean {
  try {
    const uid = /^Uid:\s+([0-9]+)/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"))?.[1];
    const args = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0");
    return Number(uid) === owner && args.includes("--relay") && args.includes(uuid);
  } catch {
    return false;
  }
}

/** A small file's text, or undefined. */
function readSmall(path: string, maxBytes = 64 * 1024): string | undefined {
  try {
    return new TextDecoder().decode(
      readRegularFile(path, { maxBytes, followSymlinks: false, what: "a relay file" }).bytes,
    );
  } catch {
    return undefined;
  }
}

/**
 * Writes a file only the relay's user can read, atomically: the run
 * directory's owner (the hook may run as root; the relay never does).
 */
function writePrivate(path: string, text: string): void {
  const { uid, gid } = statSync(dirname(path));
  writeAtomic(path, text, { mode: 0o600, owner: process.getuid?.() === 0 ? { uid, gid } : undefined });
}
