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
import {
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
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
} from "./lib/run.ts";
import type { ServerReport } from "./lib/preflight/preflight.ts";
import type { Command } from "./lib/cli.ts";
import { DomainError, errorLine, FileError, HookError, HostError, LimitError, UsageError } from "./lib/errors.ts";
import { CURL_MODULE, curlDriverProblem, QEMU_MODULE_DIRS } from "./lib/curl_driver.ts";
import { HOOK_GRACE_MS, LOCK_POLL_MS, LOCK_WAIT_MS, MAX_DOMAIN_BYTES, MAX_SETTINGS_BYTES } from "./lib/limits.ts";
import { lockFileName, tempFileName } from "./lib/paths.ts";
import { VERSION } from "./lib/version.ts";

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
        return await runHook(env);
    }
  } catch (error) {
    say(`httpsisoboot: ${errorLine(error)}\n`);
    if (args.includes("--debug") && error instanceof Error && error.stack) say(`${error.stack}\n`);
    return EXIT_FAILURE;
  }
}

/** What VDSM runs: rewrite the file named by `_hook_domxml` in place. */
async function runHook(env: Environment): Promise<number> {
  const url = env.httpsisoboot;
  if (url === undefined || url === "") return EXIT_OK;
  const path = env._hook_domxml;
  if (!path) {
    throw new UsageError(
      "_hook_domxml is not set; VDSM sets it when it runs the hook. To try the hook by hand, use --dry-run FILE",
    );
  }
  mark("start");
  const host = readSettings(env);
  const iso = checkUrl(url, host);
  mark("settings");
  checkCurlDriver();
  mark("host");
  const original = readDomain(path, { followSymlinks: false });
  mark("read");
  const plan = planHook(original.text, iso, host);
  mark("transform");
  if (plan.preflight) await runPreflight(iso, host);
  const message = plan.write === undefined
    ? plan.message
    : writeUnderLock(path, original.text, plan, (text) => planHook(text, iso, host));
  say(`httpsisoboot: ${message}\n`);
  mark("done");
  return EXIT_OK;
}

/**
 * Writes the hook's change under the domain file's lock. The file is read
 * again once the lock is held: another httpsisoboot that held it may have
 * changed it, and then the change is planned anew on what that one wrote,
 * so nothing it did is lost and a CD-ROM it added is not added twice.
 * Returns the line to log.
 */
function writeUnderLock(path: string, read: string, plan: HookPlan, replan: (text: string) => HookPlan): string {
  const unlock = lock(path);
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
  const iso = checkUrl(url, host);
  const text = file === "-"
    ? decodeDomain(await readStdin(), "stdin")
    : readDomain(file, { followSymlinks: true }).text;
  const plan = planDryRun(text, iso, host, { diff: command.diff, name: file === "-" ? "stdin" : file });
  print(plan.stdout);
  say(`httpsisoboot: ${plan.message}\n`);
  return EXIT_OK;
}

/** `--check URL`: what the server answers to QEMU's questions. */
async function check(url: string, env: Environment): Promise<number> {
  const host = readSettings(env);
  const iso = checkUrl(url, host);
  const driver = checkCurlDriver();
  const report = await runPreflight(iso, host);
  const { describeExpiry, signedUrlExpiry } = await import("./lib/expiry.ts");
  const expiry = signedUrlExpiry(iso.query);
  print(checkReport(report, { driver, signature: expiry && describeExpiry(expiry, new Date()) }));
  return EXIT_OK;
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
    return await preflight(iso, { timeoutMs, allow: settings.allow, settingsFile: file });
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
    return { settings: DEFAULT_SETTINGS, file };
  }
  const { bytes } = readRegularFile(file, {
    maxBytes: MAX_SETTINGS_BYTES,
    followSymlinks: true,
    what: "the settings file",
  });
  return { settings: parseSettings(decodeUtf8(bytes, `the settings file '${file}'`), file), file };
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

/**
 * Reads a regular file, at most `maxBytes`. A FIFO, device, socket or
 * directory is refused before a byte is read (the open does not block on a
 * FIFO), and so is a symbolic link unless `followSymlinks`.
 */
function readRegularFile(
  path: string,
  options: { maxBytes: number; followSymlinks: boolean; what: string },
): { bytes: Uint8Array; stats: Stats } {
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (options.followSymlinks ? 0 : constants.O_NOFOLLOW);
  let fd: number;
  try {
    fd = openSync(path, flags);
  } catch (error) {
    const code = errorCode(error);
    const hint = code === "ELOOP"
      ? " (a symbolic link; VDSM passes a regular file)"
      : code === "EACCES"
      ? accessHint(path, "read")
      : "";
    throw new FileError(`cannot read ${options.what} '${path}': ${code}${hint}`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      throw new FileError(`${options.what} '${path}' is not a regular file; give the path of a file`);
    }
    if (stats.size > options.maxBytes) {
      throw new LimitError(
        `${options.what} '${path}' is larger than ${options.maxBytes} bytes, the most the hook reads`,
      );
    }
    return { bytes: readAtMost(fd, options.maxBytes, `${options.what} '${path}'`), stats };
  } finally {
    closeSync(fd);
  }
}

/** Reads until end of file, refusing more than `maxBytes` (a file that grows as it is read). */
function readAtMost(fd: number, maxBytes: number, what: string): Uint8Array {
  const buffer = new Uint8Array(Math.min(maxBytes + 1, 64 * 1024));
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (
    let read = readSync(fd, buffer, 0, buffer.length, null);
    read > 0;
    read = readSync(fd, buffer, 0, buffer.length, null)
  ) {
    total += read;
    if (total > maxBytes) throw new LimitError(`${what} is larger than ${maxBytes} bytes, the most the hook reads`);
    chunks.push(buffer.slice(0, read));
  }
  return concat(chunks);
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
 * Takes the lock on a domain file for the write: `.httpsisoboot-<digest>.lock`
 * beside it (paths.ts), created exclusively, holding the holder's pid. A
 * lock another httpsisoboot holds is waited for, LOCK_WAIT_MS at most; one
 * whose holder is gone (killed) is named with its pid, never broken here:
 * two waiters breaking one lock would both write. With replaceFile()'s check
 * that the file is still the one read, two runs on one file never both
 * write it blindly. Returns the function that releases it.
 */
function lock(path: string): () => void {
  const lockPath = join(dirname(path), lockFileName(basename(path)));
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const fd = tryCreate(lockPath, path);
    if (fd !== undefined) {
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lockPath);
        } catch { /* already gone: nothing to release */ }
      };
    }
    const holder = lockHolder(lockPath);
    if (holder !== undefined && !isRunning(holder)) {
      throw new FileError(
        `the lock ${lockPath} on '${path}' was left by pid ${holder}, which is not running (a killed httpsisoboot); remove it`,
      );
    }
    if (Date.now() >= until) {
      throw new FileError(
        `another httpsisoboot (pid ${holder ?? "unknown"}) held the lock ${lockPath} on '${path}' for more than ${
          LOCK_WAIT_MS / 1000
        } s; start the VM again`,
      );
    }
    sleepMs(LOCK_POLL_MS);
  }
}

/** The lock's descriptor, or undefined when another run holds it. */
function tryCreate(lockPath: string, path: string): number | undefined {
  try {
    return openSync(lockPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = errorCode(error);
    if (code === "EEXIST") return undefined;
    const hint = code === "EACCES"
      ? accessHint(dirname(path), "write")
      : `; the hook needs write access to ${dirname(path)}`;
    throw new FileError(`cannot lock the domain XML '${path}': ${code}${hint}`);
  }
}

/** The pid a lock file holds; undefined while its holder has not written it yet, or if it is not a pid. */
function lockHolder(lockPath: string): number | undefined {
  try {
    const { bytes } = readRegularFile(lockPath, { maxBytes: 16, followSymlinks: false, what: "the lock" });
    const text = new TextDecoder().decode(bytes);
    return /^[1-9][0-9]{0,9}\n$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === "EPERM";
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
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
  const temp = join(dirname(path), tempFileName(randomHex(12)));
  let fd: number | undefined;
  try {
    fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    mark("lock");
    writeAll(fd, new TextEncoder().encode(text));
    if (original.uid !== process.getuid?.() || original.gid !== process.getgid?.()) {
      fchownSync(fd, original.uid, original.gid);
    }
    fchmodSync(fd, original.mode & 0o7777);
    mark("write");
    fsyncSync(fd);
    mark("fsync");
    // The descriptor stays open until the end: while it is, no other file can get this inode number.
    const written = fstatSync(fd);
    checkUnchanged(path, temp, original, written);
    renameSync(temp, path);
    checkRenamed(path, written);
    mark("rename");
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch { /* it was never created */ }
    if (error instanceof HookError) throw error;
    const code = errorCode(error);
    throw new FileError(`cannot replace the domain XML '${path}': ${code}; the original is unchanged`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes every byte, looping on partial writes; a write that makes no progress is an error. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) {
    const wrote = writeSync(fd, bytes, at, bytes.length - at);
    if (wrote <= 0) throw Object.assign(new Error("write made no progress"), { code: "EIO" });
    at += wrote;
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

function randomHex(bytes: number): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
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

/** Joins byte chunks. Not Buffer.concat: node:buffer costs Bun about 1.5 ms to load, on every VM start. */
function concat(chunks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

/**
 * What an admin needs after EACCES: who the hook runs as (VDSM runs it as
 * vdsm, uid 36, not root), and the file's mode and owner. Read only on this
 * error path.
 */
function accessHint(path: string, access: "read" | "write" | "search"): string {
  const uid = process.getuid?.() ?? -1;
  let file = "";
  try {
    const stats = statSync(path);
    file = `; it is mode ${(stats.mode & 0o7777).toString(8).padStart(4, "0")}, owner ${
      userName(stats.uid)
    }:${stats.gid}`;
  } catch { /* not even stat-able: say what we know */ }
  const example = access === "read"
    ? `chmod 0644 '${path}'`
    : access === "search"
    ? `chmod 0755 '${path}'`
    : `chown ${userName(uid)} '${path}'`;
  return ` (the hook runs as ${userName(uid)}, uid ${uid}, and needs to ${access} it${file}); ` +
    `give ${userName(uid)} ${access} access, for example ${example}`;
}

/** A user's name from /etc/passwd, or the number. */
function userName(uid: number): string {
  try {
    const entry = readFileSync("/etc/passwd", "utf8").split("\n").find((line) => line.split(":")[2] === String(uid));
    return entry?.split(":")[0] || String(uid);
  } catch {
    return String(uid);
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^[A-Z0-9_]{1,32}$/.test(code) ? code : "EIO";
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
