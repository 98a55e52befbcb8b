// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * SELinux on this host: asks `selinuxenabled`, `getenforce`, `semodule`
 * and `stat` (the tools every EL host has), loads and removes the module.
 * What the answers mean is lib/selinux.ts's.
 *
 * This module runs programs.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { printable } from "../lib/errors.ts";
import { readFileSync } from "node:fs";
import { isExecutable } from "./io/probes.ts";
import { moduleLoadFailed, SELINUX_MODULE_NAME, SELINUX_MODULE_PATH, type SelinuxState } from "../lib/selinux.ts";

/** How long one SELinux tool may take: semodule rebuilds the whole policy, tens of seconds on a small host. */
const SELINUX_TOOL_MS = 120_000;

/**
 * Where the SELinux tools are looked for, not $PATH: vdsmd's environment
 * varies, and --install runs as root, where a planted tool must not run.
 */
const SELINUX_TOOL_DIRS = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

function run(command: string, args: string[]): { installed: boolean; ok: boolean; out: string; why: string } {
  const path = SELINUX_TOOL_DIRS.map((dir) => `${dir}/${command}`).find(isExecutable);
  if (path === undefined) return { installed: false, ok: false, out: "", why: `${command} is not installed` };
  const done = spawnSync(path, args, { encoding: "utf8", timeout: SELINUX_TOOL_MS });
  const firstLine = (text: string | undefined) => printable((text ?? "").trim().split("\n")[0], 200);
  const why = done.error
    ? `${command}: ${String(done.error)}`
    : firstLine(done.stderr) || firstLine(done.stdout) || `${command} exited ${done.status ?? done.signal}`;
  return { installed: true, ok: done.status === 0, out: done.stdout ?? "", why };
}

/** Enforcing, permissive or disabled: as the SELinux tools say, or without them as the kernel says. */
export function selinuxMode(): SelinuxState["mode"] {
  const enabled = run("selinuxenabled", []);
  if (enabled.installed) {
    if (!enabled.ok) return "disabled";
    return /^enforcing$/i.test(run("getenforce", []).out.trim()) ? "enforcing" : "permissive";
  }
  try {
    return readFileSync("/sys/fs/selinux/enforce", "latin1").trim() === "1" ? "enforcing" : "permissive";
  } catch {
    return "disabled";
  }
}

/** The loaded modules' names, as `semodule -l` lists them, or why they could not be listed. */
function loadedModules(): string[] | { error: string } {
  const listed = run("semodule", ["-l"]);
  return listed.ok ? listed.out.split("\n").map((line) => line.trim().split(/\s+/)[0]) : { error: listed.why };
}

/** The whole state --check reports; modules and label only where SELinux is on. */
export function selinuxState(runDir: string): SelinuxState {
  const mode = selinuxMode();
  if (mode === "disabled") return { mode };
  const stat = run("stat", ["-c", "%C", runDir]);
  return { mode, modules: loadedModules(), runLabel: stat.ok ? stat.out.trim() : { error: stat.why } };
}

/**
 * Loads the module where SELinux is on, and labels the relays' directory.
 *
 * @returns What it did, for --install's line; undefined where SELinux is off.
 * @throws {Error} Never; a failure is returned as `failed`, one line to print.
 */
export function loadModule(runDir: string): { did?: string; failed?: string } {
  const mode = selinuxMode();
  if (mode === "disabled") return {};
  const loaded = run("semodule", ["-i", SELINUX_MODULE_PATH]);
  if (!loaded.ok) return { failed: moduleLoadFailed(mode, loaded.why) };
  run("restorecon", ["-R", runDir]);
  return { did: `loaded the SELinux module ${SELINUX_MODULE_NAME} (${mode})` };
}

/** Removes the module where it is loaded; what it did, or undefined. */
export function removeModule(): string | undefined {
  if (selinuxMode() === "disabled") return undefined;
  const modules = loadedModules();
  if (!Array.isArray(modules) || !modules.includes(SELINUX_MODULE_NAME)) return undefined;
  const removed = run("semodule", ["-r", SELINUX_MODULE_NAME]);
  return removed.ok
    ? `removed the SELinux module ${SELINUX_MODULE_NAME}`
    : `could not remove the SELinux module ${SELINUX_MODULE_NAME} (${removed.why}): semodule -r ${SELINUX_MODULE_NAME}`;
}
