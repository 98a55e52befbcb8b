// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * What a run leaves while it runs, recorded under /run so that the next run
 * can clear it even when this one was killed outright (SIGKILL, power loss).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { log } from "./steps.ts";

export const STATE = "/run/httpsisoboot-e2e";
const WORKDIR = join(STATE, "workdir");

/** Remembers this run's temp dir. */
export function rememberWorkDir(dir: string): void {
  mkdirSync(STATE, { recursive: true });
  writeFileSync(WORKDIR, dir);
}

export function forgetWorkDir(): void {
  rmSync(WORKDIR, { force: true });
}

/** Stops the nginx of an earlier run that did not clean up, and deletes its temp dir. */
export function clearLeftovers(): void {
  if (!existsSync(WORKDIR)) return;
  const dir = readFileSync(WORKDIR, "utf8").trim();
  const pidFile = join(dir, "nginx", "nginx.pid");
  if (existsSync(pidFile)) {
    try {
      process.kill(Number(readFileSync(pidFile, "utf8").trim()), "SIGQUIT");
      log(`stopped the nginx an interrupted run left behind`);
    } catch { /* already gone */ }
  }
  if (dir.startsWith("/tmp/httpsisoboot-e2e-")) rmSync(dir, { recursive: true, force: true });
  forgetWorkDir();
}
