// SPDX-License-Identifier: GPL-2.0-or-later
/** Shared by the tests: fixtures, work directories, settings files, the built artifacts, and real libvirt. */
import { after } from "node:test";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const FIXTURES = join(ROOT, "test", "fixtures");
export const BUNDLE = join(ROOT, "dist", "httpsisoboot.mjs");
export const BINARY = join(ROOT, "dist", "httpsisoboot");
/** VDSM's sample domains, in ../shared when it is there (GPL, never copied into the project). */
export const VDSM_SAMPLES = join(ROOT, "..", "shared", "reference", "vdsm-samples");

/**
 * A new temporary directory that other users may enter: the hook runs as
 * uid 36 or 1000 in some tests. The caller removes it.
 */
export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `httpsisoboot-${name}-`));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * A test file's work directory, removed after its tests. For module scope;
 * a suite that makes its own in before() uses tempDir().
 */
export function workDir(name: string): string {
  const dir = tempDir(name);
  // after(), not process.on("exit"): the latter never fires under deno test.
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Host settings files in `dir`:
 * - `defaults`: empty, every default (relay mode, preflight on);
 * - `direct`: QEMU's curl reads the ISO (relay = off), preflight on: for
 *   tests of preflight against real servers;
 * - `noPreflight`: relay = off and preflight = no: the hook asks no server
 *   and starts no relay, for tests of everything else with made-up URLs.
 */
export function settingsFiles(dir: string): { defaults: string; direct: string; noPreflight: string } {
  const files = { defaults: "", direct: "relay = off\n", noPreflight: "preflight = no\nrelay = off\n" };
  const paths = { defaults: "", direct: "", noPreflight: "" };
  for (const [name, text] of Object.entries(files) as Array<[keyof typeof files, string]>) {
    paths[name] = join(dir, `${name}.conf`);
    writeFileSync(paths[name], text);
  }
  return paths;
}

/** The URL every golden fixture is given, unless GOLDEN_URLS names another. */
export const GOLDEN_URL = "https://isos.example.org/el9/boot%20disk.iso?sig=c2VjcmV0&expires=1700000000";
export const GOLDEN_URLS: Record<string, string> = {
  "aarch64-virt": "https://[2001:db8::10]:8443/arm/boot.iso",
  "ppc64le-pseries": "https://192.0.2.10:4443/power/boot.iso",
};

/** Names of the golden cases: test/fixtures/<case>.in.xml. */
export function fixtureCases(): string[] {
  return readdirSync(FIXTURES)
    .filter((name) => name.endsWith(".in.xml"))
    .map((name) => name.slice(0, -".in.xml".length))
    .sort();
}

/** The golden cases that also have a relay output, `<case>.relay.out.xml`: those whose domain has a UUID. */
export function relayCases(): string[] {
  return fixtureCases().filter((name) => /<uuid>/.test(readFixture(`${name}.in.xml`)));
}

export function readFixture(name: string): string {
  return readFileSync(join(FIXTURES, name), "utf8");
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion. */
export function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string | undefined>; input?: string } = {},
): Run {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    env: options.env as NodeJS.ProcessEnv | undefined,
    input: options.input,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Why `virsh` cannot be used here, or undefined when it can. */
export function virshMissing(): string | undefined {
  const found = spawnSync("virsh", ["--version"], { encoding: "utf8" });
  return found.error
    ? "virsh is not installed (apt-get install libvirt-clients); run `npm test` as root to install it"
    : undefined;
}

/** Why qemu:///system cannot be used here, or undefined when it can. */
export function systemLibvirtMissing(): string | undefined {
  const missing = virshMissing();
  if (missing) return missing;
  const probe = spawnSync("virsh", ["-c", "qemu:///system", "uri"], { encoding: "utf8", timeout: 120_000 });
  return probe.status === 0
    ? undefined
    : `libvirtd is not reachable at qemu:///system (${
      (probe.stderr || "").trim().split("\n")[0]
    }); run \`npm test\` as root, which starts it`;
}

/**
 * Makes a domain definable on this host's qemu:///system without changing
 * what the hook wrote: TCG instead of KVM (no usable /dev/kvm here), this
 * host's emulator and machine types, a test name and no UUID.
 */
export function localizeForThisHost(xml: string, name: string): string {
  return xml
    .replace(/<domain([^>]*?)\btype=(['"])kvm\2/, "<domain$1type='qemu'")
    .replace(/<emulator>[^<]*<\/emulator>/, "<emulator>/usr/bin/qemu-system-x86_64</emulator>")
    .replace(/machine=(['"])pc-q35-[^'"]*\1/, "machine='q35'")
    .replace(/machine=(['"])(pc-i440fx-[^'"]*|rhel[0-9.]*)\1/, "machine='pc'")
    .replace(/<name>[^<]*<\/name>/, `<name>${name}</name>`)
    .replace(/\s*<uuid>[^<]*<\/uuid>/, "");
}

/** Defines a domain on qemu:///system and undefines it again; returns virsh's error, if any. */
export function defineOnSystem(path: string, name: string): string | undefined {
  const defined = run("virsh", ["-c", "qemu:///system", "define", path]);
  if (defined.status !== 0) return defined.stderr.trim();
  run("virsh", ["-c", "qemu:///system", "undefine", "--nvram", name]);
  return undefined;
}
