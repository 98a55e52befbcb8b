// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * The command line: which mode to run, with which inputs. Parsing is pure;
 * `hook.ts` reads the files and the environment.
 *
 * @module
 */
import { printable, UsageError } from "./errors.ts";
import { parseArgs } from "node:util";

/** What the command line asks for. */
export type Command =
  | { mode: "hook" }
  | { mode: "dry-run"; url?: string; file?: string; diff: boolean }
  | { mode: "check"; url: string }
  | { mode: "relay"; uuid: string }
  | { mode: "status" }
  | { mode: "install"; root: string }
  | { mode: "uninstall"; root: string; dryRun?: true }
  | { mode: "help" }
  | { mode: "version" };

/**
 * Parses the hook's arguments. With none, it runs as VDSM's hook.
 *
 * @param args The arguments after the program name.
 * @returns The command to run.
 * @throws {UsageError} If an option is unknown or misused; the message says which.
 * @example
 * ```ts
 * import { parseCommand } from "./cli.ts";
 * import { assertEquals } from "./_assert.ts";
 * assertEquals(parseCommand(["--dry-run", "--diff", "domain.xml"]), { mode: "dry-run", file: "domain.xml", diff: true });
 * ```
 */
export function parseCommand(args: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (error) {
    throw new UsageError(`${usageProblem(error)}; see --help`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { mode: "help" };
  if (values.version) return { mode: "version" };
  if (values.relay !== undefined) return relayCommand(values.relay, Object.keys(values).length, positionals);
  if (values.status) {
    if (Object.keys(values).some((key) => key !== "status" && key !== "debug") || positionals.length > 0) {
      throw new UsageError("--status takes nothing else; see --help");
    }
    return { mode: "status" };
  }
  if (values.install || values.uninstall) return installCommand(values, positionals);
  if (values.root !== undefined) throw new UsageError("--root goes with --install or --uninstall; see --help");
  if (values.check !== undefined) {
    if (values["dry-run"] || positionals.length > 0) throw new UsageError("--check takes only a URL; see --help");
    return { mode: "check", url: values.check };
  }
  if (values["dry-run"]) {
    if (positionals.length > 1) throw new UsageError(`--dry-run takes one FILE, not ${positionals.length}; see --help`);
    return { mode: "dry-run", url: values.url, file: positionals[0], diff: values.diff ?? false };
  }
  const misplaced = values.url !== undefined ? "--url" : values.diff ? "--diff" : positionals[0];
  if (misplaced !== undefined) {
    throw new UsageError(
      `'${misplaced}' only works with --dry-run; in hook mode VDSM passes everything through the environment`,
    );
  }
  return { mode: "hook" };
}

/** The options every mode shares one parser for. */
const OPTIONS = {
  "dry-run": { type: "boolean" },
  check: { type: "string" },
  relay: { type: "string" },
  status: { type: "boolean" },
  url: { type: "string" },
  diff: { type: "boolean" },
  install: { type: "boolean" },
  uninstall: { type: "boolean" },
  root: { type: "string" },
  // Read by hook.ts from the raw arguments, so it works even when parsing fails.
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

/** `--relay UUID`, as the hook or the relay's unit starts it: nothing else on the line. */
function relayCommand(uuid: string, options: number, positionals: string[]): Command {
  if (options > 1 || positionals.length > 0) {
    throw new UsageError("--relay takes only the VM's UUID; the hook starts it, see --help");
  }
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) {
    throw new UsageError("--relay takes a VM's UUID in lower case with dashes; see --help");
  }
  return { mode: "relay", uuid };
}

/** `--install` or `--uninstall`, on this host or under `--root DIR` (an absolute path: a staging root). */
function installCommand(values: Record<string, unknown>, positionals: string[]): Command {
  const others = Object.keys(values).filter((key) => !["install", "uninstall", "root", "debug"].includes(key));
  const dryRun = values.uninstall === true && values["dry-run"] === true && others.length === 1;
  if ((values.install && values.uninstall) || (others.length > 0 && !dryRun) || positionals.length > 0) {
    throw new UsageError("--install takes only --root DIR, and --uninstall --root DIR and --dry-run; see --help");
  }
  const root = (values.root as string | undefined) ?? "";
  if (root === "/" || /^\/+$/.test(root)) {
    throw new UsageError("--root takes a staging root, not '/': leave --root out to install on this host");
  }
  if (root !== "" && !root.startsWith("/")) {
    const shown = printable(root, 200);
    throw new UsageError(
      `--root takes an absolute path, not '${shown}': give the staging root from /, such as "$PWD/${shown}"`,
    );
  }
  const staged = root.replace(/\/+$/, "");
  if (values.install) return { mode: "install", root: staged };
  return dryRun ? { mode: "uninstall", root: staged, dryRun: true } : { mode: "uninstall", root: staged };
}

/** parseArgs's complaint, in our words: it names the option and nothing else. */
function usageProblem(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const option = /'(-[^']*)'/.exec(String(message))?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option) return `unknown option '${option}'`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option) return `option '${option.split(" ")[0]}' needs a value`;
  return String(message ?? error).split("\n")[0].replace(/\.$/, "");
}
