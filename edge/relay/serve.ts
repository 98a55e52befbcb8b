// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * A VM's relay, as a process: `httpsisoboot --relay UUID`, started by the
 * hook (detached, where systemd is not PID 1) or by systemd as
 * httpsisoboot-relay@UUID.service. It reads the config the hook wrote,
 * starts the front (front.ts) and nbdkit (plan.ts) as its child, and runs
 * until it is told to stop:
 *
 * - SIGTERM or SIGINT: stops nbdkit, and removes the socket, the config,
 *   the pid file, the private directory and the cache; exit 0.
 * - nbdkit exits by itself: removes what nbdkit used, keeps the config so
 *   that systemd's Restart=on-failure can start it again; exit 1.
 *
 * Every line it prints starts with `httpsisoboot-relay UUID:` and hides the
 * URL's query values; nbdkit, which never has the URL, prints its own.
 *
 * This module does I/O; `hook.ts` loads it only for --relay.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { errorLine, RelayError } from "../../lib/errors.ts";
import { MAX_RELAY_CONFIG_BYTES, RELAY_STOP_MS } from "../../lib/limits.ts";
import { connectionSlotsDir, type RelayDirs, type RelayPaths, relayPaths, sharedCacheDir } from "../../lib/paths.ts";
import { systemTrustBundle } from "../http/trust.ts";
import { pause, processStart, readHolder, stopProcess } from "../io/processes.ts";
import { parseIsoUrl } from "../../lib/url.ts";
import { parseRelayConfig, type RelayConfig } from "../../lib/relay/config.ts";
import { type Front, startFront } from "./front.ts";
import { Slots } from "./slots.ts";
import { writeAtomic } from "../io/files.ts";
import { relayStatusText } from "../../lib/relay/status.ts";
import { frontSocket, NBDKIT_BINARIES, nbdkitArgs } from "../../lib/relay/plan.ts";
import { findNbdkit, selinuxEnabled } from "../io/probes.ts";
import { readSettings } from "../host.ts";

/**
 * Runs the relay of the VM `uuid` until it is stopped.
 *
 * @returns The exit code: 0 when stopped, 1 when nbdkit failed, 2 when it could not start.
 */
export async function serveRelay(uuid: string, dirs: RelayDirs): Promise<number> {
  const paths = relayPaths(dirs, uuid);
  const say = (line: string) => process.stderr.write(`httpsisoboot-relay ${uuid}: ${line}\n`);
  let front: Front | undefined;
  if (process.getuid?.() === 0) {
    say(
      "refused: a relay never runs as root, since it reads what the ISO server sends; the hook starts it as the owner of " +
        `${dirs.run} (vdsm), and so does its systemd unit`,
    );
    return 2;
  }
  normalJitPolicy();
  try {
    const config = readConfig(paths.config);
    // By pid and start time: a pid reused after this relay is gone is never taken for it.
    writeFileSync(paths.pid, `${process.pid} ${processStart(process.pid)}\n`, { mode: 0o600 });
    prepareDirectories(paths);
    const url = parseIsoUrl(config.url);
    // The proxy, credentials and all, is read from the settings file here: it is never in the relay's config.
    const { settings } = readSettings({ HTTPSISOBOOT_CONFIG: config.settingsFile });
    front = await startFront(frontSocket(paths), {
      url,
      allow: config.allow,
      settingsFile: config.settingsFile,
      timeoutMs: config.timeout * 1000,
      ca: readFileSync(systemTrustBundle()),
      log: say,
      expect: config.expect,
      readaheadBlocks: config.readaheadBlocks,
      store: { sharedRoot: sharedCacheDir(dirs), sharedBound: config.sharedCache, privateRoot: `${paths.cache}/front` },
      slots: new Slots(connectionSlotsDir(dirs), config.hostConnections),
      proxy: settings.proxy,
      noProxy: settings.noProxy,
    });
    const reporting = reportStatus(paths, url.redacted, front, config.name);
    const nbdkit = startNbdkit(paths, config);
    await openToGroup(paths.socket, nbdkit);
    say(`serving ${url.redacted} on ${paths.socket} (nbdkit pid ${nbdkit.pid})`);
    try {
      return await untilStopped(nbdkit, paths, front, say);
    } finally {
      clearInterval(reporting);
      rmSync(paths.status, { force: true });
    }
  } catch (error) {
    say(errorLine(error));
    await front?.close();
    removeRuntime(paths);
    removeOwnPid(paths);
    return 2;
  }
}

/**
 * Writes what the front has done to the relay's status file every
 * STATUS_EVERY_MS, for `httpsisoboot --status`: a JSON object, mode 0640
 * (the relays' group: VDSM and root read it), replaced atomically. It
 * names the server with the query's values hidden.
 */
function reportStatus(paths: RelayPaths, server: string, front: Front, name?: string): ReturnType<typeof setInterval> {
  const started = new Date().toISOString();
  let last = "";
  const write = () => {
    const text = relayStatusText({ pid: process.pid, server, started, ...front.stats(), ...(name && { name }) });
    if (text === last) return;
    last = text;
    try {
      writeAtomic(paths.status, new TextEncoder().encode(text), { mode: 0o640 });
    } catch { /* a full /run: the status waits for the next round */ }
  };
  write();
  const timer = setInterval(write, STATUS_EVERY_MS);
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

/** How often a relay rewrites its status file when it has changed: 1 s. */
const STATUS_EVERY_MS = 1_000;

/** The config the hook wrote: a regular file of this user's, readable by nobody else. */
function readConfig(path: string): RelayConfig {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw new RelayError(`cannot read the relay's config ${path} (${(error as { code?: string }).code ?? "EIO"})`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.uid !== process.getuid?.() || (stats.mode & 0o077) !== 0) {
      throw new RelayError(`the relay's config ${path} is not a file of this user's with mode 0600; refused`);
    }
    const bytes = new Uint8Array(MAX_RELAY_CONFIG_BYTES + 1);
    const length = readSync(fd, bytes, 0, bytes.length, 0);
    if (length > MAX_RELAY_CONFIG_BYTES) throw new RelayError(`the relay's config ${path} is too large`);
    return parseRelayConfig(new TextDecoder().decode(bytes.subarray(0, length)), path);
  } finally {
    closeSync(fd);
  }
}

/** A fresh private directory (the front's socket) and cache directory, both 0700; no stale socket. */
function prepareDirectories(paths: RelayPaths): void {
  for (const dir of [paths.private, paths.cache]) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: 0o700 });
  }
  rmSync(paths.socket, { force: true });
}

/** nbdkit as a child, in a clean environment: TMPDIR for its cache, no proxy or key-log variables. */
function startNbdkit(paths: RelayPaths, config: RelayConfig): ChildProcess {
  const binary = findNbdkit().binary;
  if (!binary) throw new RelayError(`nbdkit is not installed (${NBDKIT_BINARIES.join(" or ")})`);
  return spawn(binary, nbdkitArgs(paths, config, { selinux: selinuxEnabled() }), {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", TMPDIR: paths.cache, LC_ALL: "C" },
    stdio: ["ignore", "inherit", "inherit"],
  });
}

/**
 * Lets QEMU's own group, and no one else, connect to the NBD socket once
 * nbdkit has made it: the run directory's group (qemu on oVirt hosts, which
 * vdsm is in; never kvm, which other users may be in), mode 0660. nbdkit
 * sets its umask to 0022, so it makes its socket 0755, which only its owner
 * can connect to. The hook waits for exactly this before it calls the
 * relay ready.
 */
async function openToGroup(socket: string, nbdkit: ChildProcess): Promise<void> {
  while (!existsSync(socket)) {
    if (nbdkit.exitCode !== null || nbdkit.signalCode !== null) throw new RelayError("nbdkit ended at its start");
    await pause(5);
  }
  const group = statSync(dirname(socket)).gid;
  try {
    chownSync(socket, process.getuid!(), group);
  } catch (error) {
    throw new RelayError(
      `cannot give the relay's socket to the group of ${dirname(socket)} (gid ${group}): ${
        (error as { code?: string }).code ?? "EIO"
      }; the relay's user must be in that group (usermod -a -G qemu vdsm)`,
    );
  }
  chmodSync(socket, 0o660);
}

/** Waits for a stop signal or for nbdkit's end, and cleans up after either. */
function untilStopped(
  nbdkit: ChildProcess,
  paths: RelayPaths,
  front: Front,
  say: (line: string) => void,
): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      await stopProcess({ pid: nbdkit.pid!, start: processStart(nbdkit.pid!) }, RELAY_STOP_MS / 2);
      await front.close();
      removeRuntime(paths);
      rmSync(paths.config, { force: true });
      removeOwnPid(paths);
      say("stopped");
      resolve(0);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    nbdkit.on("exit", async (code, signal) => {
      if (stopping) return;
      stopping = true;
      say(`nbdkit ended (${signal ?? `exit ${code}`}); the VM's CD-ROM cannot be read until the relay starts again`);
      await front.close();
      removeRuntime(paths);
      removeOwnPid(paths);
      resolve(1);
    });
  });
}

/** The pid file goes with the process: removed when it is this relay's, never another's. */
function removeOwnPid(paths: RelayPaths): void {
  if (readHolder(paths.pid)?.pid === process.pid) rmSync(paths.pid, { force: true });
}

/** What a running relay uses, but not its config and pid file. */
function removeRuntime(paths: RelayPaths): void {
  for (const path of [paths.socket, paths.private, paths.cache]) {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch { /* already gone, or not ours to remove */ }
  }
}

/**
 * The binary starts with JavaScriptCore's JIT held back (scripts/binary.sh),
 * which suits a hook that runs for milliseconds; the relay runs for hours,
 * and its front's loops want the JIT as soon as they are hot. A no-op under
 * Node and Deno.
 */
function normalJitPolicy(): void {
  (globalThis as { Bun?: { unsafe?: { setJITPolicy?(scale: number): void } } }).Bun?.unsafe?.setJITPolicy?.(1);
}
