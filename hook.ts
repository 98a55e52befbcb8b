// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * httpsisoboot: the VDSM hook and its command line, the one entry.
 *
 * It reads the arguments and hands each mode to its own module in edge/,
 * the one room of I/O adapters: the hook points (points.ts), --dry-run,
 * --check, --relay, --status, --install; it sets the exit code, and turns any error
 * into one line. Everything in lib/ is pure. The modes a VM start does not
 * need are loaded only when asked for. It runs unchanged under Deno
 * (`deno run -A hook.ts`), bundled under Node, and compiled by Bun into
 * the single binary.
 *
 * @module
 */
import process from "node:process";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { SETTINGS_FILE } from "./lib/settings.ts";
import { EXIT_FAILURE, EXIT_OK } from "./lib/run.ts";
import type { Command } from "./lib/cli.ts";

import { errorLine } from "./lib/errors.ts";
import { nbdkitProblem } from "./lib/relay/plan.ts";
import { VERSION } from "./lib/version.ts";
import { runHookPoint } from "./edge/points.ts";
import { type Environment, relayDirs } from "./edge/host.ts";
import { print, printTimings, say, startTimings } from "./edge/io/output.ts";
import { findNbdkit } from "./edge/io/probes.ts";

/**
 * Runs the hook or the CLI.
 *
 * @param args The arguments after the program name.
 * @param env The environment.
 * @returns The exit code.
 */
export async function main(args: string[], env: Environment): Promise<number> {
  startTimings(env.HTTPSISOBOOT_TIMINGS === "1");
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
        return await (await import("./edge/dry_run.ts")).dryRun(command, env);
      case "check":
        return await (await import("./edge/check.ts")).check(command.url, env);
      case "hook":
        return await runHookPoint(env);
      case "relay":
        return await (await import("./edge/relay/serve.ts")).serveRelay(command.uuid, relayDirs(env));
      case "status":
        print((await import("./edge/status.ts")).relayStatus(relayDirs(env)));
        return EXIT_OK;
      case "install": {
        const { install } = await import("./edge/install.ts");
        const nbdkit = () => nbdkitProblem(findNbdkit(), env.HTTPSISOBOOT_CONFIG || SETTINGS_FILE);
        for (const line of install(command.root, { nbdkit, dirs: relayDirs(env) })) say(`httpsisoboot: ${line}\n`);
        return EXIT_OK;
      }
      case "uninstall": {
        const { uninstall } = await import("./edge/install.ts");
        say(`httpsisoboot: ${uninstall(command.root, relayDirs(env), { dryRun: command.dryRun })}\n`);
        return EXIT_OK;
      }
    }
  } catch (error) {
    say(`httpsisoboot: ${errorLine(error)}\n`);
    if (args.includes("--debug") && error instanceof Error && error.stack) say(`${error.stack}\n`);
    return EXIT_FAILURE;
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
