// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * httpsisoboot: the VDSM before_vm_start hook and its command line.
 *
 * This is the only module that reads the environment, arguments, files or
 * stdin, writes output and sets the exit code. What it calls in `lib/` is
 * pure, except lib/preflight/, which asks the ISO server and is loaded only
 * when it runs. It runs unchanged under Deno (`deno run -A hook.ts`),
 * bundled under Node, and compiled by Bun into the single binary.
 *
 * @module
 */
import process from "node:process";
import { accessSync, constants, existsSync, lstatSync, realpathSync, type Stats, statSync, writeSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import type { IsoUrl } from "./lib/url.ts";
import { DEFAULT_SETTINGS, parseSettings, SETTINGS_FILE } from "./lib/settings.ts";
import {
  checkReport,
  checkUrl,
  EXIT_FAILURE,
  EXIT_OK,
  type HookPlan,
  type Host,
  planDryRun,
  planHook,
  planIncoming,
  type RelayCommands,
  type RelayStart,
  vmUuid,
} from "./lib/run.ts";
import type { ServerReport } from "./lib/preflight/preflight.ts";
import type { Command } from "./lib/cli.ts";
import {
  DomainError,
  errorLine,
  FileError,
  HookError,
  HostError,
  LimitError,
  printable,
  RelayError,
  UsageError,
} from "./lib/errors.ts";
import { CURL_MODULE, curlDriverProblem, QEMU_MODULE_DIRS } from "./lib/curl_driver.ts";
import { HOOK_GRACE_MS, MAX_DOMAIN_BYTES, MAX_SETTINGS_BYTES, RELAY_READY_MS } from "./lib/limits.ts";
import { lockFileName, RELAY_DIRS, type RelayDirs, relayPaths } from "./lib/paths.ts";
import { type HookPoint, hookPointOf } from "./lib/hook_point.ts";
import { relayConfigText } from "./lib/relay/config.ts";
import {
  NBDKIT_BINARIES,
  NBDKIT_MODULE_DIRS,
  NBDKIT_MODULES,
  nbdkitArgs,
  type NbdkitFound,
  nbdkitProbeArgs,
  nbdkitProblem,
  RELAY_FILTERS,
} from "./lib/relay/plan.ts";
import {
  accessHint,
  concat,
  errorCode,
  readRegularFile,
  sleepMs,
  takeLock,
  userName,
  writeAtomic,
} from "./lib/io/files.ts";
import { VERSION } from "./lib/version.ts";
import { type LibvirtVersion, parseLibvirtVersion } from "./lib/libvirt_version.ts";

type Environment = Record<string, string | undefined>;

/**
 * Runs the hook or the CLI.
 *
 * @param args The arguments after the program name.
 * @param env The environment.
 * @returns The exit code.
 */
export async function main(args: string[], env: Environment): Promise<number> {
  marks = env.HTTPSISOBOOT_TIMINGS === "1" ? [] : undefined;
  try {
    // VDSM passes no arguments: hook mode never loads the argument parser (node:util costs Bun 5 ms).
    const command: Command = args.length === 0 ? { mode: "hook" } : (await import("./lib/cli.ts")).parseCommand(args);
    switch (command.mode) {
      case "help":
        print((await import("./lib/help.ts")).HELP);
        return EXIT_OK;
      case "version":
        print(`httpsisoboot ${VERSION}\n`);
        return EXIT_OK;
      case "dry-run":
        return await dryRun(command, env);
      case "check":
        return await check(command.url, env);
      case "hook":
        return await runHookPoint(env);
      case "relay":
        return await (await import("./lib/relay/serve.ts")).serveRelay(command.uuid, relayDirs(env));
      case "install": {
        const { install } = await import("./edge/install.ts");
        const nbdkit = () => nbdkitProblem(findNbdkit(), env.HTTPSISOBOOT_CONFIG || SETTINGS_FILE);
        say(`httpsisoboot: ${install(command.root, { nbdkit, dirs: relayDirs(env) })}\n`);
        return EXIT_OK;
      }
      case "uninstall":
        say(`httpsisoboot: ${(await import("./edge/install.ts")).uninstall(command.root, relayDirs(env))}\n`);
        return EXIT_OK;
    }
  } catch (error) {
    say(`httpsisoboot: ${errorLine(error)}\n`);
    if (args.includes("--debug") && error instanceof Error && error.stack) say(`${error.stack}\n`);
    return EXIT_FAILURE;
  }
}

/** What VDSM runs, at the hook point whose directory holds the path it ran. */
function runHookPoint(env: Environment): Promise<number> {
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
async function beforeVmStart(env: Environment): Promise<number> {
  const url = env.httpsisoboot;
  if (url === undefined || url === "") return EXIT_OK;
  const path = domainPath(env);
  mark("start");
  const host = readSettings(env);
  const iso = checkUrl(url, host);
  mark("settings");
  if (host.settings.relay === "off") checkCurlDriver();
  else host.libvirt = libvirtVersion();
  mark("host");
  const original = readDomain(path, { followSymlinks: false });
  mark("read");
  const plan = planHook(original.text, iso, host);
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
async function incomingVm(env: Environment, point: HookPoint): Promise<number> {
  const path = domainPath(env);
  const text = readDomain(path, { followSymlinks: false }).text;
  const host = readSettings(env);
  const incoming = planIncoming(text, host, env.httpsisoboot);
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
async function vmGone(env: Environment, point: HookPoint): Promise<number> {
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

function domainPath(env: Environment): string {
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
async function startVmRelay(relay: RelayStart, host: Host, env: Environment, report?: ServerReport): Promise<void> {
  const expectedSize = report?.size;
  const config = report?.validator
    ? { ...relay.config, expect: { size: report.size, validator: report.validator } }
    : relay.config;
  const { checkRelayDirs, launcher, startRelay, stopRelay } = await import("./lib/relay/control.ts");
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

/** What starting the VM's relay would run, for --dry-run; the nbdkit command holds nothing of the URL. */
async function relayCommands(relay: RelayStart, dirs: RelayDirs): Promise<RelayCommands> {
  const { launcher } = await import("./lib/relay/control.ts");
  const paths = relayPaths(dirs, relay.uuid);
  const nbdkit = NBDKIT_BINARIES.find(isExecutable) ?? "nbdkit";
  const selinux = existsSync("/sys/fs/selinux/enforce");
  return {
    start: launcher(selfCommand(), relay.uuid).command,
    nbdkit: [nbdkit, ...nbdkitArgs(paths, relay.config, { selinux })],
  };
}

/** Stops the VM's relay and removes its files; whether there was one. */
async function stopVmRelay(uuid: string, dirs: RelayDirs): Promise<boolean> {
  const { launcher, stopRelay } = await import("./lib/relay/control.ts");
  return await stopRelay(relayPaths(dirs, uuid), uuid, launcher(selfCommand(), uuid));
}

/** What is there of nbdkit: the binary, and the plugin and filters the relay loads. */
function findNbdkit(): NbdkitFound {
  const binary = NBDKIT_BINARIES.find(isExecutable);
  const moduleDir = NBDKIT_MODULE_DIRS.find((dir) => existsSync(dir));
  const missing = moduleDir
    ? NBDKIT_MODULES.map(([name]) => name).filter((name) => !existsSync(join(moduleDir, name)))
    : [];
  return { binary, moduleDir, missing };
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Where relays keep their files: RELAY_DIRS, or what the tests name. */
function relayDirs(env: Environment): RelayDirs {
  return {
    run: env.HTTPSISOBOOT_RUN_DIR || RELAY_DIRS.run,
    cache: env.HTTPSISOBOOT_CACHE_DIR || RELAY_DIRS.cache,
  };
}

/**
 * The path this program was run by, links not followed: how VDSM names the
 * hook point. Bun's single binary has it in argv0; a script run by Node or
 * Deno, in argv[1].
 */
function invokedAs(): string {
  const compiled = process.argv[1]?.startsWith("/$bunfs/");
  return resolve((compiled ? process.argv0 : process.argv[1]) ?? "");
}

/** The command that runs this program again, for a detached relay. */
function selfCommand(): string[] {
  if (process.argv[1]?.startsWith("/$bunfs/")) return [process.execPath];
  const deno = (globalThis as { Deno?: { execPath(): string; mainModule: string } }).Deno;
  if (deno) return [deno.execPath(), "run", "-A", fileURLToPath(deno.mainModule)];
  return [process.execPath, realpathSync(process.argv[1])];
}

/**
 * Writes the hook's change under the domain file's lock. The file is read
 * again once the lock is held: another httpsisoboot that held it may have
 * changed it, and then the change is planned anew on what that one wrote,
 * so nothing it did is lost and a CD-ROM it added is not added twice.
 * Returns the line to log.
 */
function writeUnderLock(path: string, read: string, plan: HookPlan, replan: (text: string) => HookPlan): string {
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

/** Prints what the hook would write, or the diff, query values hidden; never writes, never asks the server. */
async function dryRun(command: Extract<Command, { mode: "dry-run" }>, env: Environment): Promise<number> {
  const url = command.url ?? env.httpsisoboot;
  if (!url) throw new UsageError("no URL: give --url URL or set httpsisoboot");
  const file = command.file ?? env._hook_domxml;
  if (!file) throw new UsageError("no domain XML: give FILE (or - for stdin) or set _hook_domxml");
  const host = readSettings(env);
  if (host.settings.relay === "nbdkit") host.libvirt = libvirtVersion();
  const iso = checkUrl(url, host);
  const text = file === "-"
    ? decodeDomain(await readStdin(), "stdin")
    : readDomain(file, { followSymlinks: true }).text;
  const relay = planHook(text, iso, host).relay;
  const plan = planDryRun(text, iso, host, {
    diff: command.diff,
    name: file === "-" ? "stdin" : file,
    relay: relay && await relayCommands(relay, host.dirs!),
  });
  print(plan.stdout);
  say(`httpsisoboot: ${plan.message}\n`);
  return EXIT_OK;
}

/** `--check URL`: what the server answers to QEMU's questions. */
async function check(url: string, env: Environment): Promise<number> {
  const host = readSettings(env);
  const iso = checkUrl(url, host);
  const relayMode = host.settings.relay === "nbdkit";
  const driver = relayMode ? curlDriverNote() : checkCurlDriver();
  const report = await runPreflight(iso, host);
  const relay = relayMode
    ? await relayReadiness(host)
    : { lines: ["off: QEMU's curl driver reads the ISO, without retries"], ok: true };
  const { describeExpiry, signedUrlExpiry } = await import("./lib/expiry.ts");
  const expiry = signedUrlExpiry(iso.query);
  print(checkReport(report, { driver, relay: relay.lines, signature: expiry && describeExpiry(expiry, new Date()) }));
  return relay.ok ? EXIT_OK : EXIT_FAILURE;
}

/** In relay mode QEMU's curl driver is not needed: say where it is, or that only relay = off would need it. */
function curlDriverNote(): string {
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
async function relayReadiness(host: Host): Promise<{ lines: string[]; ok: boolean }> {
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
  const { checkRelayDirs, launcher } = await import("./lib/relay/control.ts");
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
  const { describeReconnect } = await import("./lib/libvirt_version.ts");
  return {
    lines: [
      `${version}, ${found.binary}, with the curl plugin and the ${RELAY_FILTERS.slice(0, -1).join(", ")} and ${
        RELAY_FILTERS.at(-1)
      } filters`,
      `directories: ${host.dirs!.run} and ${host.dirs!.cache}, writable by ${userName(process.getuid?.() ?? -1)}`,
      `started ${start}`,
      `reconnect: ${describeReconnect(libvirtVersion())}`,
    ],
    ok: true,
  };
}

/** Where libvirt's QEMU daemon is: the modular daemon, then the monolithic one. */
const LIBVIRT_DAEMONS = ["/usr/sbin/virtqemud", "/usr/sbin/libvirtd"];

/**
 * The host's libvirt version, from its QEMU daemon's --version (about 15 ms,
 * only in relay mode); undefined when neither daemon is there or answers.
 */
function libvirtVersion(): LibvirtVersion | undefined {
  for (const daemon of LIBVIRT_DAEMONS.filter(isExecutable)) {
    const asked = spawnSync(daemon, ["--version"], { encoding: "utf8", timeout: 2000 });
    const version = asked.status === 0 ? parseLibvirtVersion(asked.stdout) : undefined;
    if (version) return version;
  }
  return undefined;
}

/**
 * Preflight, under a watchdog: whatever the server or DNS does, the process
 * ends within preflight_timeout plus HOOK_GRACE_MS, with exit 2.
 */
async function runPreflight(iso: IsoUrl, { settings, file }: Host): Promise<ServerReport> {
  const timeoutMs = settings.preflightTimeout * 1000;
  const watchdog = setTimeout(() => {
    say(
      `httpsisoboot: gave up after ${settings.preflightTimeout} s (preflight_timeout in ${file}) plus a grace of ${
        HOOK_GRACE_MS / 1000
      } s; check the ISO server\n`,
    );
    process.exit(EXIT_FAILURE);
  }, timeoutMs + HOOK_GRACE_MS);
  try {
    const { preflight } = await import("./lib/preflight/preflight.ts");
    return await preflight(iso, {
      timeoutMs,
      allow: settings.allow,
      settingsFile: file,
      requireValidator: settings.relay === "nbdkit",
    });
  } finally {
    clearTimeout(watchdog);
  }
}

/**
 * The host's settings; every default when the file does not exist. Asked
 * with a stat that returns nothing for a missing file: a thrown and caught
 * ENOENT costs a cold runtime milliseconds on every VM start.
 */
function readSettings(env: Environment): Host {
  const file = env.HTTPSISOBOOT_CONFIG || SETTINGS_FILE;
  if (!settingsExist(file)) {
    if (env.HTTPSISOBOOT_CONFIG) {
      throw new FileError(
        `HTTPSISOBOOT_CONFIG names '${file}', which does not exist; fix the variable or create the file`,
      );
    }
    return { settings: DEFAULT_SETTINGS, file, dirs: relayDirs(env) };
  }
  const { bytes } = readRegularFile(file, {
    maxBytes: MAX_SETTINGS_BYTES,
    followSymlinks: true,
    what: "the settings file",
  });
  return {
    settings: parseSettings(decodeUtf8(bytes, `the settings file '${file}'`), file),
    file,
    dirs: relayDirs(env),
  };
}

/** Whether the settings file exists; a directory the hook cannot search is an error, not "no file". */
function settingsExist(file: string): boolean {
  try {
    return statSync(file, { throwIfNoEntry: false }) !== undefined;
  } catch (error) {
    const code = errorCode(error);
    const hint = code === "EACCES" ? accessHint(dirname(file), "search") : "";
    throw new FileError(`cannot read the settings file '${file}': ${code}${hint}`);
  }
}

/**
 * Refuses, before the VM starts, a host whose QEMU loads modules but has no
 * curl block driver; says where the driver is, or that QEMU has no module
 * directory here (curl built in).
 */
function checkCurlDriver(): string {
  const dirs = QEMU_MODULE_DIRS.map((dir) => {
    const exists = existsSync(dir);
    return { dir, exists, hasCurl: exists && existsSync(join(dir, CURL_MODULE)) };
  });
  const problem = curlDriverProblem(dirs);
  if (problem) throw new HostError(problem);
  const found = dirs.find((dir) => dir.hasCurl);
  return found ? join(found.dir, CURL_MODULE) : "no module directory here: built into QEMU, or QEMU is elsewhere";
}

/** The domain XML and the stat of the file it came from. */
function readDomain(path: string, options: { followSymlinks: boolean }): { text: string; stats: Stats } {
  const { bytes, stats } = readRegularFile(path, { maxBytes: MAX_DOMAIN_BYTES, what: "the domain XML", ...options });
  return { text: decodeDomain(bytes, `'${path}'`), stats };
}

function decodeDomain(bytes: Uint8Array, name: string): string {
  if (bytes.length > MAX_DOMAIN_BYTES) {
    throw new LimitError(`the domain XML ${name} is larger than ${MAX_DOMAIN_BYTES} bytes, the most libvirt accepts`);
  }
  return decodeUtf8(bytes, `the domain XML ${name}`);
}

/** UTF-8 or a refusal: a byte that is not UTF-8 is never replaced. The BOM is kept. */
function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new DomainError(`${what} is not valid UTF-8; libvirt reads and writes UTF-8 only`);
  }
}

async function readStdin(): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    total += (chunk as Uint8Array).length;
    if (total > MAX_DOMAIN_BYTES) {
      throw new LimitError(
        `the domain XML on stdin is larger than ${MAX_DOMAIN_BYTES} bytes, the most libvirt accepts`,
      );
    }
    chunks.push(chunk as Uint8Array);
  }
  return concat(chunks);
}

/**
 * Replaces a file with new text, losslessly: a temporary file beside it,
 * created exclusively under a name nobody can predict and never through a
 * symbolic link, written completely, given the original's owner and mode on
 * its descriptor, fsynced, and renamed over the original only if the
 * original is still the file that was read. On any failure the original is
 * unchanged and the temporary file is gone.
 */
function replaceFile(path: string, text: string, original: Stats): void {
  try {
    const written = writeAtomic(path, text, {
      mode: original.mode & 0o7777,
      owner: { uid: original.uid, gid: original.gid },
      keep: (written, temp) => checkUnchanged(path, temp, original, written),
    });
    checkRenamed(path, written);
    mark("rename");
  } catch (error) {
    if (error instanceof HookError) throw error;
    const code = errorCode(error);
    throw new FileError(`cannot replace the domain XML '${path}': ${code}; the original is unchanged`);
  }
}

/** Refuses to rename when the original changed since it was read, or the temp file is no longer ours. */
function checkUnchanged(path: string, temp: string, original: Stats, written: Stats): void {
  const now = lstatSync(path);
  const same = now.ino === original.ino && now.dev === original.dev && now.size === original.size &&
    now.mtimeMs === original.mtimeMs && now.ctimeMs === original.ctimeMs;
  if (!same) throw new FileError(`the domain XML '${path}' changed while the hook ran; start the VM again`);
  if (!isSameFile(lstatSync(temp), written)) {
    throw new FileError(
      `the temporary file beside '${path}' was replaced while the hook ran; check who can write ${dirname(path)}`,
    );
  }
}

/**
 * After the rename, the file at `path` must be the one written: in a
 * directory others can write, a racer can swap the temp file between the
 * check and the rename. The hook then fails, so VDSM does not start the VM
 * from a file the hook did not write.
 */
function checkRenamed(path: string, written: Stats): void {
  if (!isSameFile(lstatSync(path), written)) {
    throw new FileError(
      `the domain XML '${path}' was replaced while the hook wrote it; check who can write ${dirname(path)}`,
    );
  }
}

function isSameFile(found: Stats, written: Stats): boolean {
  return found.isFile() && found.ino === written.ino && found.dev === written.dev;
}

/**
 * Writes all of `text` to stdout, synchronously, and refuses when it cannot:
 * a dry run whose output is lost must not exit 0.
 */
function print(text: string): void {
  writeAllTo(1, text, "standard output");
}

/**
 * Writes a line to stderr, synchronously. Not process.stderr: setting that
 * stream up costs Bun about 8 ms, on every VM start.
 */
function say(text: string): void {
  try {
    writeAllTo(2, text, "standard error");
  } catch { /* nowhere left to report it */ }
}

function writeAllTo(fd: number, text: string, name: string): void {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length;) {
    try {
      at += writeSync(fd, bytes, at, bytes.length - at);
    } catch (error) {
      const code = errorCode(error);
      if (code !== "EAGAIN") throw new FileError(`cannot write to ${name}: ${code}`);
      sleepMs(1); // a full pipe: wait 1 ms
    }
  }
}

/**
 * Phase timings for `npm run bench`, with HTTPSISOBOOT_TIMINGS=1: one line on
 * stderr at exit, milliseconds since the process started at each mark. The
 * first mark ("start") includes the runtime's start and the modules' loading.
 */
let marks: Array<[string, number]> | undefined;

function mark(name: string): void {
  marks?.push([name, performance.now()]);
}

function printTimings(): void {
  if (marks) {
    say(`httpsisoboot-timings: ${marks.map(([name, ms]) => `${name}=${ms.toFixed(2)}`).join(" ")}\n`);
  }
}

/** A bug that escapes main() still ends the hook with one line and exit 2, so the VM does not start. */
function onUncaught(error: unknown): void {
  say(`httpsisoboot: ${errorLine(error)}\n`);
  if (process.argv.includes("--debug") && error instanceof Error && error.stack) {
    say(`${error.stack}\n`);
  }
  process.exit(EXIT_FAILURE);
}

/** Whether this module is the program, not imported: Deno and Bun say so; Node 20 is asked by path. */
function isEntry(): boolean {
  const main = (import.meta as ImportMeta & { main?: boolean }).main;
  if (typeof main === "boolean") return main;
  const script = process.argv[1];
  try {
    return script !== undefined && realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
  // No top-level await: Bun's --bytecode compiles to CommonJS, which has none.
  // process.exit, not exitCode: a DNS lookup preflight gave up on must not keep the process alive.
  main(process.argv.slice(2), process.env).then((code) => {
    printTimings();
    process.exit(code);
  });
}
