// SPDX-License-Identifier: GPL-2.0-or-later
/** One line per step, with its duration, so a person can follow a run. */
import process from "node:process";

const started = Date.now();

/** Runs a step, printing `[e2e 12.3s] what (0.45 s)` when it ends, or FAILED. */
export async function step<T>(what: string, action: () => T | Promise<T>): Promise<T> {
  const begin = Date.now();
  try {
    const result = await action();
    log(`${what} (${seconds(Date.now() - begin)})`);
    return result;
  } catch (error) {
    const detail = String((error as { stderr?: unknown }).stderr ?? "").trim() || (error as Error).message;
    log(`FAILED: ${what} (${seconds(Date.now() - begin)}): ${detail}`);
    throw error;
  }
}

export function log(line: string): void {
  process.stdout.write(`[e2e ${seconds(Date.now() - started).padStart(7)}] ${line}\n`);
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
