// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The host as the hook sees it: its settings file, the relays'
 * directories, how this program was run (the hook point, the command that
 * runs it again), and preflight under its watchdog.
 *
 * This module reads the environment and the settings file.
 *
 * @module
 */
import process from "node:process";
import { realpathSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { IsoUrl } from "../lib/url.ts";

import { DEFAULT_SETTINGS, parseSettings, SETTINGS_FILE } from "../lib/settings.ts";

import { EXIT_FAILURE, type Host } from "../lib/run.ts";
import type { ServerReport } from "./preflight.ts";

import { FileError } from "../lib/errors.ts";
import { HOOK_GRACE_MS, MAX_SETTINGS_BYTES } from "../lib/limits.ts";
import { RELAY_DIRS, type RelayDirs } from "../lib/paths.ts";
import { accessHint, errorCode, readRegularFile } from "./io/files.ts";
import { decodeUtf8 } from "./io/domain_file.ts";
import { say } from "./io/output.ts";

export type Environment = Record<string, string | undefined>;

/** Where relays keep their files: RELAY_DIRS, or what the tests name. */
export function relayDirs(env: Environment): RelayDirs {
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
export function invokedAs(): string {
  const compiled = process.argv[1]?.startsWith("/$bunfs/");
  return resolve((compiled ? process.argv0 : process.argv[1]) ?? "");
}

/** The command that runs this program again, for a detached relay. */
export function selfCommand(): string[] {
  if (process.argv[1]?.startsWith("/$bunfs/")) return [process.execPath];
  const deno = (globalThis as { Deno?: { execPath(): string; mainModule: string } }).Deno;
  if (deno) return [deno.execPath(), "run", "-A", fileURLToPath(deno.mainModule)];
  return [process.execPath, realpathSync(process.argv[1])];
}

/**
 * Preflight, under a watchdog: whatever the server or DNS does, the process
 * ends within preflight_timeout plus HOOK_GRACE_MS, with exit 2.
 */
export async function runPreflight(iso: IsoUrl, { settings, file }: Host): Promise<ServerReport> {
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
    const { preflight } = await import("./preflight.ts");
    return await preflight(iso, {
      timeoutMs,
      allow: settings.allow,
      settingsFile: file,
      requireValidator: settings.relay === "nbdkit",
      needsHead: settings.relay === "off",
      proxy: settings.proxy,
      noProxy: settings.noProxy,
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
export function readSettings(env: Environment): Host {
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
export function settingsExist(file: string): boolean {
  try {
    return statSync(file, { throwIfNoEntry: false }) !== undefined;
  } catch (error) {
    const code = errorCode(error);
    const hint = code === "EACCES" ? accessHint(dirname(file), "search") : "";
    throw new FileError(`cannot read the settings file '${file}': ${code}${hint}`);
  }
}
