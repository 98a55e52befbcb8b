// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The processes a test, the e2e or the bench started, found in /proc: a
 * relay by its VM's UUID, whatever a run left by its work dir. Zombies do
 * not count: they have ended (lib/io/files.ts's isRunning).
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import process from "node:process";
import { spawn } from "node:child_process";
import { isRunning, sleepMs } from "../../edge/io/processes.ts";

/** Each process's pid, while it runs. */
function runningPids(): number[] {
  return readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number).filter(isRunning);
}

/** Running processes whose command line names `text`. */
export function processesNaming(text: string): number[] {
  return runningPids().filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "latin1").includes(text);
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** Running processes with a file open under `dir`. */
export function processesHolding(dir: string): number[] {
  return runningPids().filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(dir));
    } catch {
      return false; // gone meanwhile, or not ours to read
    }
  });
}

/** SIGKILLs every process whose command line names `text`: what a failed case left. */
export function killNaming(text: string): void {
  for (const pid of processesNaming(text)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/**
 * Stops a process and returns once it has ended: `signal`, `graceMs` to
 * end, then SIGKILL. For daemons the tests start, so that nothing outlives
 * them, and their dirs can be deleted next.
 */
export function stopProcess(pid: number, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): void {
  try {
    process.kill(pid, signal);
  } catch {
    return; // already gone
  }
  for (let waited = 0; waited < graceMs && isRunning(pid); waited += 20) sleepMs(20);
  try {
    if (isRunning(pid)) process.kill(pid, "SIGKILL");
  } catch { /* ended just now */ }
}

/**
 * Runs a command without blocking the event loop, so that servers in this
 * process (a hostile ISO server) go on answering meanwhile; kills it after
 * `timeoutMs`.
 */
export function runAsync(
  command: string,
  args: string[],
  options: { timeoutMs: number; env?: Record<string, string | undefined> },
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: options.env as NodeJS.ProcessEnv | undefined });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A process's peak RSS in MiB (VmHWM), as /proc says. */
export function peakRssMiB(pid: number): number {
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
}

/**
 * The disk the largest file under `dir` that `pids` hold open takes: a
 * relay's cache file is unlinked, so only its open descriptor finds it.
 */
export function openFileBytes(pids: number[], dir: string): number {
  let most = 0;
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(dir)) {
          most = Math.max(most, statSync(`/proc/${pid}/fd/${fd}`).blocks * 512);
        }
      } catch { /* closed meanwhile */ }
    }
  }
  return most;
}
