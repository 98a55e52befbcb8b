/**
 * httpsisoboot: the VDSM before_vm_start hook and its command line.
 *
 * This is the only module that reads the environment, arguments, files or
 * stdin, writes output and sets the exit code. What it calls in `lib/` is
 * pure, except preflight.ts, which asks the ISO server and is loaded only
 * when it runs. It runs unchanged under Deno (`deno run -A hook.ts`),
 * bundled under Node, and compiled by Bun into the single binary.
 *
 * @module
 */
import process from "node:process";
import {
  chownSync,
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { Buffer } from "node:buffer";
import { addHttpsCdrom, type CdromResult } from "./lib/add_https_cdrom.ts";
import { parseIsoUrl, redactQuery } from "./lib/url.ts";
import { checkAllowed } from "./lib/policy.ts";
import { DEFAULT_SETTINGS, parseSettings, SETTINGS_FILE, type Settings } from "./lib/settings.ts";
import { type Command, EXIT_FAILURE, EXIT_OK, parseCommand } from "./lib/cli.ts";
import { VERSION } from "./lib/version.ts";

type Environment = Record<string, string | undefined>;

/**
 * Runs the hook or the CLI. Tests run this file as a process, never import it.
 *
 * @param args The arguments after the program name.
 * @param env The environment.
 * @returns The exit code.
 */
export async function main(args: string[], env: Environment): Promise<number> {
  try {
    const command: Command = parseCommand(args);
    switch (command.mode) {
      case "help":
        process.stdout.write((await import("./lib/help.ts")).HELP);
        return EXIT_OK;
      case "version":
        process.stdout.write(`httpsisoboot ${VERSION}\n`);
        return EXIT_OK;
      case "dry-run":
        return await dryRun(command, env);
      case "check":
        return await check(command.url, env);
      case "hook":
        return await runHook(env);
    }
  } catch (error) {
    const debug = args.includes("--debug");
    process.stderr.write(`httpsisoboot: ${oneLine(error)}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return EXIT_FAILURE;
  }
}

/** What VDSM runs: rewrite the file named by `_hook_domxml` in place. */
async function runHook(env: Environment): Promise<number> {
  const url = env.httpsisoboot;
  if (url === undefined || url === "") return EXIT_OK;
  const path = env._hook_domxml;
  if (!path) {
    throw new Error(
      "_hook_domxml is not set; VDSM sets it when it runs the hook. To try the hook by hand, use --dry-run FILE",
    );
  }
  const result = await transform(readDomain(path), url, env, { preflight: true });
  if (result.changed) replaceFile(path, result.xml);
  process.stderr.write(`httpsisoboot: ${describe(result)}\n`);
  return EXIT_OK;
}

/** Prints what the hook would write, or the diff, and never writes. */
async function dryRun(command: Extract<Command, { mode: "dry-run" }>, env: Environment): Promise<number> {
  const url = command.url ?? env.httpsisoboot;
  if (!url) throw new TypeError("no URL: give --url URL or set httpsisoboot");
  const file = command.file ?? env._hook_domxml;
  if (!file) throw new TypeError("no domain XML: give FILE (or - for stdin) or set _hook_domxml");
  const text = file === "-" ? await readStdin() : readDomain(file);
  const result = await transform(text, url, env, { preflight: false });
  // What it prints shows the query's values as ***, like every other output:
  // a signed URL's query is a credential, and terminals and CI logs keep it.
  const shown = result.changed ? await transform(text, url, env, { preflight: false, redactQuery: true }) : result;
  if (command.diff) {
    const { unifiedDiff } = await import("./lib/diff.ts");
    const name = file === "-" ? "stdin" : file;
    process.stdout.write(unifiedDiff(text, shown.xml, { fromName: name, toName: `${name} (with httpsisoboot)` }));
  } else {
    process.stdout.write(shown.xml);
  }
  process.stderr.write(`httpsisoboot: ${describe(result)}\n`);
  return EXIT_OK;
}

/**
 * The URL checked against the host's settings, the domain rewritten with
 * them, and then, in hook mode unless they turn it off, the server itself:
 * the quick local checks come first, so a bad URL or domain is reported as
 * such whatever the server does.
 */
async function transform(
  domainXml: string,
  url: string,
  env: Environment,
  mode: { preflight: boolean; redactQuery?: boolean },
): Promise<CdromResult> {
  const parsed = parseIsoUrl(url);
  const iso = mode.redactQuery && parsed.query !== undefined ? { ...parsed, query: redactQuery(parsed.query) } : parsed;
  const { settings, file } = readSettings(env);
  checkAllowed(iso, settings.allow, file);
  const result = addHttpsCdrom(domainXml, iso, { timeout: settings.timeout, readahead: settings.readahead });
  if (mode.preflight && settings.preflight) {
    const { preflight } = await import("./lib/preflight.ts");
    await preflight(iso.href, { timeoutMs: settings.preflightTimeout * 1000 });
  }
  return result;
}

/** `--check URL`: what the server answers to QEMU's questions. */
async function check(url: string, env: Environment): Promise<number> {
  const iso = parseIsoUrl(url);
  const { settings, file } = readSettings(env);
  checkAllowed(iso, settings.allow, file);
  const { preflight } = await import("./lib/preflight.ts");
  const report = await preflight(iso.href, { timeoutMs: settings.preflightTimeout * 1000 });
  process.stdout.write(
    `url: ${report.finalUrl}${report.redirects ? ` (after ${report.redirects} redirect${report.redirects > 1 ? "s" : ""})` : ""}\n` +
      `tls: trusted by this host, issuer ${report.issuer || "unknown"}\n` +
      `size: ${report.size} bytes\n` +
      `byte ranges: yes\n` +
      `image: ${report.format}${report.label ? `, volume label '${report.label}'` : ""}\n`,
  );
  return EXIT_OK;
}

/** The host's settings; every default when the file does not exist. */
function readSettings(env: Environment): { settings: Settings; file: string } {
  const file = env.HTTPSISOBOOT_CONFIG || SETTINGS_FILE;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return { settings: DEFAULT_SETTINGS, file };
    throw new Error(`cannot read the settings file '${file}': ${errorCode(error)}`);
  }
  return { settings: parseSettings(text, file), file };
}

function describe(result: CdromResult): string {
  const where = `CD-ROM ${result.target.dev} (${result.target.bus}) from ${result.url.redacted}`;
  return result.changed
    ? `added ${where} as boot device 1`
    : `the domain already has ${where}; nothing to do`;
}

function readDomain(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`cannot read the domain XML '${path}': ${errorCode(error)}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Uint8Array);
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/**
 * Replaces a file by writing a temporary file in the same directory and
 * renaming it over the original, so a crash leaves either the old domain or
 * the new one, never half of one. Keeps the original's mode and owner.
 */
function replaceFile(path: string, text: string): void {
  const original = statSync(path);
  const temp = join(dirname(path), `.${basename(path)}.httpsisoboot-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, "wx", original.mode & 0o7777);
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (process.getuid?.() === 0) chownSync(temp, original.uid, original.gid);
    renameSync(temp, path);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch { /* it was never created */ }
    throw new Error(`cannot replace the domain XML '${path}': ${errorCode(error)}; the hook needs write access to ${dirname(path)}`);
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: string }).code;
  return code ?? oneLine(error);
}

function oneLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split("\n")[0];
}

// No top-level await: Bun's --bytecode compiles to CommonJS, which has none.
main(process.argv.slice(2), process.env).then((code) => {
  process.exitCode = code;
});
