// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * SELinux, said out loud: what `--check` reports of the host's mode, the
 * httpsisoboot module and the label of the relays' directory, and the one
 * line `--install` and the RPM print when the module cannot be loaded.
 *
 * On an enforcing EL host QEMU runs as `svirt_t` and may reach its relay's
 * socket only through the module's file context (docs/security.md). The
 * first symptom of a missing module would be a VM that does not start, so
 * every way onto a host says where the module stands.
 *
 * This module is pure: the probes are edge/selinux.ts's.
 *
 * @module
 */

/** The module's name, as `semodule -l` lists it and `semodule -r` takes it. */
export const SELINUX_MODULE_NAME = "httpsisoboot";

/** Where the module's CIL is installed, and what `semodule -i` loads. */
export const SELINUX_MODULE_PATH = "/usr/share/selinux/packages/httpsisoboot.cil";

/** The type the module gives the relays' directory, which QEMU (svirt_t) may enter and write sockets in. */
export const RUN_DIR_TYPE = "svirt_image_t";

/** What the host says of SELinux. */
export interface SelinuxState {
  /** `disabled` also where there is no SELinux at all (Debian, a container). */
  mode: "enforcing" | "permissive" | "disabled";
  /** The loaded modules' names, or why they could not be listed. */
  modules?: string[] | { error: string };
  /** The relays' directory's context, such as `system_u:object_r:svirt_image_t:s0`, or why it is unknown. */
  runLabel?: string | { error: string };
}

/**
 * The `--check` line of SELinux, and whether relays can work under it.
 *
 * @example
 * ```ts
 * import { describeSelinux } from "./selinux.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(describeSelinux({ mode: "disabled" }, "/run/httpsisoboot"), { line: "disabled (nothing to load)", ok: true });
 * const missing = describeSelinux({ mode: "enforcing", modules: ["virt"] }, "/run/httpsisoboot");
 * assertEquals(missing.ok, false);
 * ```
 */
export function describeSelinux(state: SelinuxState, runDir: string): { line: string; ok: boolean } {
  if (state.mode === "disabled") return { line: "disabled (nothing to load)", ok: true };
  const problems = [moduleProblem(state), labelProblem(state, runDir)].filter((p): p is string => p !== undefined);
  const label = typeof state.runLabel === "string" ? `, ${runDir} is ${state.runLabel}` : "";
  if (problems.length === 0) return { line: `${state.mode}, module ${SELINUX_MODULE_NAME} loaded${label}`, ok: true };
  const said = `${state.mode}: ${problems.join("; ")}`;
  return state.mode === "enforcing"
    ? {
      line: `${said}; until then QEMU cannot reach its relay's socket and VMs with the property will not start`,
      ok: false,
    }
    : { line: `${said}; permissive only logs the denials now, enforcing would stop the VMs`, ok: true };
}

function moduleProblem(state: SelinuxState): string | undefined {
  const modules = state.modules;
  if (modules === undefined) return undefined;
  if (!Array.isArray(modules)) return `cannot list the loaded modules (${modules.error})`;
  if (modules.includes(SELINUX_MODULE_NAME)) return undefined;
  return `the ${SELINUX_MODULE_NAME} module is not loaded: semodule -i ${SELINUX_MODULE_PATH}`;
}

function labelProblem(state: SelinuxState, runDir: string): string | undefined {
  const label = state.runLabel;
  if (label === undefined) return undefined;
  if (typeof label !== "string") return `cannot read the label of ${runDir} (${label.error})`;
  if (label.split(":")[2] === RUN_DIR_TYPE) return undefined;
  return `${runDir} is labelled ${label}, not ${RUN_DIR_TYPE}: restorecon -R ${runDir}`;
}

/**
 * The one line `--install` and the RPM's %post print when SELinux is on
 * and `semodule -i` failed.
 *
 * @example
 * ```ts
 * import { moduleLoadFailed } from "./selinux.ts";
 * import { assertEquals } from "./_assert.ts";
 * const line = moduleLoadFailed("enforcing", "libsemanage: out of memory");
 * assertEquals(line.includes("failed (libsemanage: out of memory) while SELinux is enforcing: VMs"), true);
 * ```
 */
export function moduleLoadFailed(mode: "enforcing" | "permissive", why: string): string {
  return `semodule -i ${SELINUX_MODULE_PATH} failed (${why}) while SELinux is ${mode}: ${
    mode === "enforcing" ? "VMs with the httpsisoboot property will not start" : "enforcing would stop VMs"
  } until it loads; run that command as root and read its error`;
}
