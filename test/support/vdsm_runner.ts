// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * VDSM's own hook runner, for tests: `hooks.py` from ../shared/reference
 * (copied into a throwaway package at run time, never into the project), with
 * the three small stand-ins it imports, run by /usr/bin/python3 as vdsm:kvm
 * (uid and gid 36), as vdsmd runs hooks: a mkstemp file named by
 * _hook_domxml, vdsmd's environment plus the custom properties, and taskset.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { ROOT } from "./mod.ts";

/** Where the reference runner is, when ../shared is there. */
export const HOOKS_PY = join(ROOT, "..", "shared", "reference", "vdsm-hooks-runner", "hooks.py");

/** Why the runner cannot be used here, or undefined. */
export function runnerMissing(): string | undefined {
  if (!existsSync(HOOKS_PY)) return `VDSM's hooks.py is not at ${HOOKS_PY} (../shared/reference is absent)`;
  if (process.getuid?.() !== 0) return "running hooks as uid 36 needs root (setpriv)";
  if (!existsSync("/usr/bin/python3")) return "/usr/bin/python3 is missing";
  return undefined;
}

const STAND_INS: Record<string, string> = {
  "vdsm/__init__.py": "",
  "vdsm/hook/__init__.py": "",
  "vdsm/common/__init__.py": "",
  "vdsm/common/exception.py": "class HookError(Exception):\n    pass\n",
  "vdsm/common/commands.py": `import contextlib
import os
import subprocess


def start(args, stdout=None, stderr=None, env=None, **kw):
    cpus = "0-%d" % (os.cpu_count() - 1)
    return subprocess.Popen(["taskset", "--cpu-list", cpus] + list(args), stdout=stdout, stderr=stderr, env=env)


@contextlib.contextmanager
def terminating(proc):
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
`,
};

const DRIVER = `import json, sys
from vdsm.common import hooks, exception
request = json.load(sys.stdin)
vmconf = {"vmId": request["vmId"], "custom": request["custom"]}
try:
    xml = getattr(hooks, request["point"])(request["xml"], vmconf)
    print(json.dumps({"xml": xml}))
except exception.HookError as error:
    print(json.dumps({"error": error.args[0].decode("utf-8", "replace") if isinstance(error.args[0], bytes) else str(error.args[0])}))
`;

/** The hook points the runner can run: VDSM's functions of the same names. */
export type RunnerPoint =
  | "before_vm_start"
  | "before_vm_migrate_destination"
  | "before_vm_dehibernate"
  | "after_vm_destroy"
  | "after_vm_migrate_source"
  | "after_vm_hibernate";

/** A runner whose hook directory is `hooksDir` (holding before_vm_start/ and the other points). */
export interface VdsmRunner {
  /** Runs before_vm_start as uid 36: the XML VDSM would hand libvirt, or the HookError's text. */
  beforeVmStart(
    xml: string,
    custom: Record<string, string>,
    env?: Record<string, string>,
  ): { xml?: string; error?: string };
  /**
   * Runs any hook point as uid 36, as VDSM does, with `vmId` from the
   * domain; `prefix` runs the runner inside another command (a mount
   * namespace standing for another host); `killSession` kills the runner's
   * whole session right after it has answered, as a restart of vdsmd kills
   * its cgroup. The after_* points never raise.
   */
  run(
    point: RunnerPoint,
    xml: string,
    options?: {
      custom?: Record<string, string>;
      env?: Record<string, string>;
      prefix?: string[];
      killSession?: boolean;
    },
  ): { xml?: string; error?: string };
}

/**
 * The throwaway vdsm package in a new directory under `dir`, for hooks
 * under `hooksDir`, with driver.py, which reads one request as JSON on stdin
 * ({ point, xml, custom, vmId }) and prints the answer ({ xml } or
 * { error }). Its paths are absolute: a host that runs it (a container)
 * must see `dir` at the same path.
 */
export function runnerPackage(dir: string, hooksDir: string): string {
  const packageDir = mkdtempSync(join(dir, "vdsm-runner-"));
  chmodSync(packageDir, 0o755);
  const files: Record<string, string> = { ...STAND_INS, "vdsm/common/hooks.py": readFileSync(HOOKS_PY, "utf8") };
  files["vdsm/common/constants.py"] = `P_VDSM_HOOKS = ${JSON.stringify(hooksDir.replace(/\/?$/, "/"))}\n` +
    `P_VDSM_RUN = ${JSON.stringify(join(packageDir, "run") + "/")}\n`;
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(packageDir, name, ".."), { recursive: true, mode: 0o755 });
    writeFileSync(join(packageDir, name), text, { mode: 0o644 });
  }
  writeFileSync(join(packageDir, "driver.py"), DRIVER, { mode: 0o644 });
  return packageDir;
}

/**
 * Makes the throwaway vdsm package in `dir` for hooks under `hooksDir`. Both
 * must be readable by uid 36. `gid` is vdsmd's group: 36 (kvm on EL) unless
 * given; `groups`, its supplementary groups (none unless given): a test that
 * needs QEMU to reach the relay's socket gives QEMU's group, which vdsm is
 * in on an oVirt host.
 */
export function vdsmRunner(
  dir: string,
  hooksDir: string,
  options: { command?: string[]; gid?: number; groups?: number[] } = {},
): VdsmRunner {
  const packageDir = runnerPackage(dir, hooksDir);
  const run: VdsmRunner["run"] = (point, xml, runOptions = {}) => {
    // In a session of its own, killed whole once the runner has printed its answer.
    const killer = runOptions.killSession ? ["setsid", "--wait", "sh", "-c", '"$@"; pkill -KILL -s 0', "sh"] : [];
    const command = [
      ...killer,
      ...(runOptions.prefix ?? options.command ?? []),
      "setpriv",
      "--reuid=36",
      `--regid=${options.gid ?? 36}`,
      // vdsm's own groups: on an oVirt host kvm and qemu (QEMU's, which the relay's socket takes).
      ...(options.groups ? [`--groups=${options.groups.join(",")}`] : ["--clear-groups"]),
      "/usr/bin/python3",
      join(packageDir, "driver.py"),
    ];
    const vmId = /<uuid>\s*([^<\s]+)\s*<\/uuid>/.exec(xml)?.[1] ?? "3f8c2a56-httpsisoboot-test";
    const result = spawnSync(command[0], command.slice(1), {
      input: JSON.stringify({ point, xml, custom: runOptions.custom ?? {}, vmId }),
      encoding: "utf8",
      cwd: "/",
      env: { PATH: process.env.PATH, PYTHONPATH: packageDir, ...runOptions.env },
      timeout: 120_000,
    });
    const killed = runOptions.killSession && result.stdout.trim() !== "";
    if (result.status !== 0 && !killed) throw new Error(`the runner failed (${result.status}): ${result.stderr}`);
    return JSON.parse(result.stdout);
  };
  return {
    beforeVmStart: (xml, custom, env = {}) => run("before_vm_start", xml, { custom, env }),
    run,
  };
}
