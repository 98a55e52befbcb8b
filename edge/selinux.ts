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
import { isExecutable, selinuxEnabled } from "./io/probes.ts";
import { moduleLoadFailed, SELINUX_MODULE_NAME, SELINUX_MODULE_PATH, type SelinuxState } from "../lib/selinux.ts";

/** How long one SELinux tool may take: semodule rebuilds the whole policy, tens of seconds on a small host. */
const SELINUX_TOOL_MS = 120_000;

/**
 * Where the SELinux tools are looked for, not $PATH: vdsmd's environment
 * varies, and --install runs as root, where a planted tool must not run.
 */
export const SELINUX_TOOL_DIRS = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

function run(command: string, args: string[]): { ok: boolean; out: string; why: string } {
  const path = SELINUX_TOOL_DIRS.map((dir) => `${dir}/${command}`).find(isExecutable);
  if (path === undefined) return { ok: false, out: "", why: `${command} is not installed` };
  const done = spawnSync(path, args, { encoding: "utf8", timeout: SELINUX_TOOL_MS });
  const firstLine = (text: string | undefined) => printable((text ?? "").trim().split("\n")[0], 200);
  const why = done.error
    ? `${command}: ${String(done.error)}`
    : firstLine(done.stderr) || firstLine(done.stdout) || `${command} exited ${done.status ?? done.signal}`;
  return { ok: done.status === 0, out: done.stdout ?? "", why };
}

/** Enforcing, permissive or disabled; disabled where there are no SELinux tools at all. */
export function selinuxMode(): SelinuxState["mode"] {
  const enabled = run("selinuxenabled", []);
  if (!enabled.ok && !/not installed/.test(enabled.why)) return "disabled";
  if (!enabled.ok) return selinuxEnabled() ? "enforcing" : "disabled"; // no tools: ask the kernel, the strict guess
  return /^enforcing$/i.test(run("getenforce", []).out.trim()) ? "enforcing" : "permissive";
}

/** The whole state --check reports; modules and label only where SELinux is on. */
export function selinuxState(runDir: string): SelinuxState {
  const mode = selinuxMode();
  if (mode === "disabled") return { mode };
  const listed = run("semodule", ["-l"]);
  const modules = listed.ok ? listed.out.split("\n").map((line) => line.trim().split(/\s+/)[0]) : { error: listed.why };
  const stat = run("stat", ["-c", "%C", runDir]);
  const runLabel = stat.ok ? stat.out.trim() : { error: stat.why };
  return { mode, modules, runLabel };
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
  const listed = run("semodule", ["-l"]);
  if (!listed.ok || !listed.out.split("\n").some((line) => line.trim().split(/\s+/)[0] === SELINUX_MODULE_NAME)) {
    return undefined;
  }
  const removed = run("semodule", ["-r", SELINUX_MODULE_NAME]);
  return removed.ok
    ? `removed the SELinux module ${SELINUX_MODULE_NAME}`
    : `could not remove the SELinux module ${SELINUX_MODULE_NAME} (${removed.why}): semodule -r ${SELINUX_MODULE_NAME}`;
}
