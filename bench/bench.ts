// SPDX-License-Identifier: GPL-2.0-or-later
/**
 * `npm run bench`: what the hook costs on every VM start, each route measured
 * side by side in one run. Prints medians of BENCH_RUNS runs (default 15):
 * wall time and peak RSS of the hook on a realistic VDSM q35 domain and on
 * domains with 20, 200 and 2000 devices; the bare start of an empty program
 * on each route (its floor); and ratios against the Python reference, which
 * does the original hook's work with /usr/bin/python3 and minidom.
 *
 * The hook runs with `preflight = no`: preflight's cost is the ISO server's
 * round trips, which the Python original never made; this measures the rest.
 *
 * Then where the binary's time goes: /bin/true (what starting any process
 * costs this harness), the empty program built with the same bun flags (the
 * runtime's floor), and the hook's own phases, medians of its
 * HTTPSISOBOOT_TIMINGS marks (milliseconds since the process started).
 *
 * Then the hostile rows (issue 8), binary route only: each shape at half
 * and at full size, so that the growth shows whether time is linear, with
 * peak RSS; and, as root with openssl, a server that answers the ranged GET
 * with an endless 200, trusted in a private mount namespace.
 *
 * Then, as root, the relay (bench/relay.ts): real boots relay vs direct,
 * each relay's memory and cache, and twenty relays at once.
 *
 * A benchmark, not a test: it asserts nothing. It builds what it measures first.
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { MAX_DOMAIN_BYTES } from "../lib/limits.ts";
import { makeAuthority, makeServerCert, trustingPrefix } from "../test/support/tls.ts";

const ROOT = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const RUNS = Math.max(10, Number(process.env.BENCH_RUNS ?? 15));
const RSS_RUNS = 5;
const BIN = join(ROOT, "node_modules", ".bin");
const deno = join(BIN, "deno");
const PYTHON = "/usr/bin/python3";
const ISO_URL = "https://isos.example.org/el9/boot.iso?sig=abc";

interface Route {
  name: string;
  hook: string[];
  empty: string[];
}

/** Builds what is measured from this tree, every run: a stale artifact would be measured otherwise. */
function build(): void {
  spawnSync(deno, ["task", "--quiet", "bundle"], { cwd: ROOT, stdio: "inherit" });
  spawnSync("npm", ["run", "--silent", "binary"], { cwd: ROOT, stdio: "ignore" });
  // The floor: an empty program built by the same script, with the binary's flags, every run.
  spawnSync("bash", [
    "scripts/binary.sh",
    "bun-linux-x64-baseline",
    join(ROOT, "dist", "bench-empty"),
    "bench/empty.mjs",
  ], {
    cwd: ROOT,
    stdio: "ignore",
  });
}

const ROUTES: Route[] = [
  {
    name: "binary (bun --compile --bytecode)",
    hook: [join(ROOT, "dist", "httpsisoboot")],
    empty: [join(ROOT, "dist", "bench-empty")],
  },
  {
    name: "deno run -A bundle",
    hook: [deno, "run", "-A", join(ROOT, "dist", "httpsisoboot.mjs")],
    empty: [deno, "run", "-A", join(ROOT, "bench", "empty.mjs")],
  },
  {
    name: "node bundle",
    hook: [process.execPath, join(ROOT, "dist", "httpsisoboot.mjs")],
    empty: [process.execPath, join(ROOT, "bench", "empty.mjs")],
  },
  {
    name: "python reference (minidom)",
    hook: [PYTHON, join(ROOT, "bench", "python_reference.py")],
    empty: [PYTHON, join(ROOT, "bench", "empty.py")],
  },
];

/** The realistic domain, and the same domain grown to `count` devices with NICs that have boot orders. */
function domains(work: string): Array<[string, string]> {
  const q35 = readFileSync(join(ROOT, "test", "fixtures", "q35-vdsm.in.xml"), "utf8");
  const base = (q35.match(/<devices>[\s\S]*<\/devices>/)![0].match(/^ {8}<(?!\/)\S+/gm) ?? []).length;
  const out: Array<[string, string]> = [["VDSM q35", q35]];
  for (const count of [20, 200, 2000]) {
    const nics = Array.from(
      { length: Math.max(0, count - base) },
      (_, i) =>
        `        <interface type="bridge">\n            <mac address="56:6f:0d:${hex(i >> 16)}:${hex(i >> 8)}:${
          hex(i)
        }" />\n` +
        `            <model type="virtio" />\n            <source bridge="ovirtmgmt" />\n            <boot order="${
          i + 3
        }" />\n        </interface>\n`,
    ).join("");
    out.push([
      `${count} devices`,
      q35.replace('        <channel type="unix">', `${nics}        <channel type="unix">`),
    ]);
  }
  return out.map(([name, xml]) => {
    const path = join(work, `${name.replace(/\W+/g, "-")}.xml`);
    writeFileSync(path, xml);
    return [name, path];
  });
}

function hex(n: number): string {
  return (n & 255).toString(16).padStart(2, "0");
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Median wall time (ms), peak RSS (MiB) and minor page faults of a command,
 * run on a fresh copy of `domain` each time. Page faults are counted because
 * on some machines each is dear: where they are, they set the hook's time.
 */
function measure(
  command: string[],
  domain: string | undefined,
  work: string,
  options: { status?: number; env?: Record<string, string>; prefix?: string[]; runs?: number } = {},
): { ms: number; mib: number; faults: number } {
  const file = join(work, "domxml");
  const settings = join(work, "bench.conf");
  // The hook's own work, as the Python original did it: no server asked, no relay started (bench/relay.ts measures that).
  writeFileSync(settings, "preflight = no\nrelay = off\n");
  const env = {
    PATH: process.env.PATH,
    _hook_domxml: file,
    httpsisoboot: ISO_URL,
    HTTPSISOBOOT_CONFIG: settings,
    ...options.env,
  };
  const times: number[] = [];
  const run = (prefix: string[]) => {
    if (domain) copyFileSync(domain, file);
    const start = process.hrtime.bigint();
    const [program, ...args] = [...(options.prefix ?? []), ...prefix, ...command];
    const result = spawnSync(program, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.status !== (options.status ?? 0)) {
      throw new Error(`${command.join(" ")} exited ${result.status}: ${result.stderr}`);
    }
    return ms;
  };
  run([]);
  for (let i = 0; i < (options.runs ?? RUNS); i++) times.push(run([]));
  const rss: number[] = [];
  const faults: number[] = [];
  const rssFile = join(work, "rss");
  for (let i = 0; i < Math.min(RSS_RUNS, options.runs ?? RSS_RUNS); i++) {
    run(["/usr/bin/time", "-f", "%M %R", "-o", rssFile]);
    const [kib, minor] = readFileSync(rssFile, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number);
    rss.push(kib / 1024);
    faults.push(minor);
  }
  return { ms: median(times), mib: median(rss), faults: median(faults) };
}

function main(): void {
  build();
  const work = mkdtempSync(join(tmpdir(), "httpsisoboot-bench-"));
  try {
    const cases = domains(work);
    console.log(
      `httpsisoboot bench: medians of ${RUNS} runs (peak RSS: median of ${RSS_RUNS}), ${new Date().toISOString()}`,
    );
    console.log(`machine: ${spawnSync("nproc").stdout.toString().trim()} cores; python: ${PYTHON}\n`);

    const results = new Map<string, Map<string, { ms: number; mib: number; faults: number }>>();
    for (const route of ROUTES) {
      const row = new Map<string, { ms: number; mib: number; faults: number }>();
      row.set("empty program", measure(route.empty, undefined, work));
      for (const [name, path] of cases) row.set(name, measure(route.hook, path, work));
      results.set(route.name, row);
    }

    const python = results.get(ROUTES.at(-1)!.name)!;
    const columns = ["empty program", ...cases.map(([name]) => name)];
    console.log(
      `| route | ${
        columns.map((c) => `${c} wall`).join(" | ")
      } | VDSM q35 RSS | page faults, empty / VDSM q35 | VDSM q35 × python | VDSM q35 × floor | 2000 / 20 devices |`,
    );
    console.log(`|---|${columns.map(() => "---:").join("|")}|---:|---:|---:|---:|---:|`);
    for (const route of ROUTES) {
      const row = results.get(route.name)!;
      const q35 = row.get("VDSM q35")!;
      const cells = columns.map((c) => `${row.get(c)!.ms.toFixed(1)} ms`);
      console.log(
        `| ${route.name} | ${cells.join(" | ")} | ${q35.mib.toFixed(1)} MiB | ${
          row.get("empty program")!.faults
        } / ${q35.faults} | ${(q35.ms / python.get("VDSM q35")!.ms).toFixed(2)}× | ` +
          `${(q35.ms / row.get("empty program")!.ms).toFixed(2)}× | ${
            (row.get("2000 devices")!.ms / row.get("20 devices")!.ms).toFixed(2)
          }× |`,
      );
    }
    console.log("\nfloor: the bare start of an empty program on the same route.");
    breakdown(work, cases[0][1], results.get(ROUTES[0].name)!.get("empty program")!.ms, python.get("VDSM q35")!.ms);
    hostileRows(work, results.get(ROUTES[0].name)!.get("empty program")!.ms);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const PHASES = ["start", "settings", "host", "read", "transform", "lock", "write", "fsync", "rename", "done"];

/** The binary's floors and its phases on the VDSM q35 domain. */
function breakdown(work: string, domain: string, floor: number, python: number): void {
  const spawn = measure(["/bin/true"], undefined, work);
  const hook = measure(ROUTES[0].hook, domain, work);
  const marks = PHASES.map(() => [] as number[]);
  const file = join(work, "domxml");
  for (let i = 0; i < RUNS; i++) {
    copyFileSync(domain, file);
    const env = {
      PATH: process.env.PATH,
      _hook_domxml: file,
      httpsisoboot: ISO_URL,
      HTTPSISOBOOT_CONFIG: join(work, "bench.conf"),
      HTTPSISOBOOT_TIMINGS: "1",
    };
    const stderr = spawnSync(ROUTES[0].hook[0], [], { env, encoding: "utf8" }).stderr;
    const line = /httpsisoboot-timings: (.*)/.exec(stderr)?.[1] ?? "";
    for (const [index, name] of PHASES.entries()) {
      marks[index].push(Number(new RegExp(`\\b${name}=([0-9.]+)`).exec(line)?.[1]));
    }
  }
  const at = marks.map(median);
  console.log(`\nwhere the binary's time goes (VDSM q35, medians of ${RUNS}):\n`);
  console.log("| what | ms |\n|---|---:|");
  console.log(`| starting any process here (/bin/true), wall | ${spawn.ms.toFixed(1)} |`);
  console.log(`| empty program, same bun flags (the floor), wall | ${floor.toFixed(1)} |`);
  console.log(`| the hook, wall | ${hook.ms.toFixed(1)} |`);
  PHASES.forEach((name, index) => {
    const since = index === 0
      ? "process start to main(): runtime and module loading"
      : `${PHASES[index - 1]} → ${name}`;
    console.log(`| ${since} | ${(at[index] - (index === 0 ? 0 : at[index - 1])).toFixed(2)} |`);
  });
  console.log(`| last mark to exit (wall minus marks; includes the harness) | ${(hook.ms - at.at(-1)!).toFixed(1)} |`);
  console.log(`| hook ÷ python reference | ${(hook.ms / python).toFixed(2)}× |`);
  console.log(`| (hook − floor) ÷ (python − floor) | ${((hook.ms - floor) / (python - floor)).toFixed(2)}× |`);
}

/** Hostile shapes, at half and full size: [name, exit status, text of size n]. */
const SHAPES: Array<[string, number, (full: boolean) => string]> = [
  [
    "domain at the size limit (4 MiB, padded metadata)",
    0,
    (full) => padded(full ? MAX_DOMAIN_BYTES - 4096 : MAX_DOMAIN_BYTES / 2),
  ],
  ["60,000 attributes on one element", 0, (full) => attributes(full ? 60_000 : 30_000)],
  ["252 levels of nesting (accepted; the limit is 256)", 0, (full) => nested(full ? 250 : 125)],
  ["100,000 levels of nesting (refused)", 2, (full) => nested(full ? 100_000 : 50_000)],
  [
    "4 MiB of <a/> (refused at 100,000 elements)",
    2,
    (full) => `<domain>${"<a/>".repeat(full ? 1_000_000 : 500_000)}</domain>`,
  ],
];

function hostileRows(work: string, floor: number): void {
  const binary = ROUTES[0].hook;
  console.log(`\nhostile input, binary route (floor ${floor.toFixed(1)} ms):\n`);
  console.log(
    "| shape | exit | half size wall | full size wall | full size peak RSS | growth above floor, full / half |",
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const [name, status, make] of SHAPES) {
    const [half, full] = [false, true].map((isFull) => {
      const path = join(work, `hostile-${isFull}.xml`);
      writeFileSync(path, make(isFull));
      return measure(binary, path, work, { status, runs: 5 });
    });
    const growth = (full.ms - floor) / Math.max(0.1, half.ms - floor);
    console.log(
      `| ${name} | ${status} | ${half.ms.toFixed(1)} ms | ${full.ms.toFixed(1)} ms | ${full.mib.toFixed(1)} MiB | ${
        growth.toFixed(2)
      }× |`,
    );
  }
  endlessRow(work);
}

function padded(bytes: number): string {
  const q35 = readFileSync(join(ROOT, "test", "fixtures", "q35-vdsm.in.xml"), "utf8");
  const pad = bytes - q35.length - 40;
  return q35.replace("<metadata", `<description>${"x".repeat(pad)}</description>\n    <metadata`);
}

function attributes(count: number): string {
  const q35 = readFileSync(join(ROOT, "test", "fixtures", "q35-vdsm.in.xml"), "utf8");
  return q35.replace("<features>", `<features${Array.from({ length: count }, (_, i) => ` a${i}='${i}'`).join("")}>`);
}

/** `depth` more levels inside <features>, itself two levels deep. */
function nested(depth: number): string {
  const q35 = readFileSync(join(ROOT, "test", "fixtures", "q35-vdsm.in.xml"), "utf8");
  return q35.replace(
    "<features>",
    `<features>${"<x:a xmlns:x='urn:x'>".repeat(Math.min(depth, 250))}${"<a>".repeat(Math.max(0, depth - 250))}` +
      `${"</a>".repeat(Math.max(0, depth - 250))}${"</x:a>".repeat(Math.min(depth, 250))}`,
  );
}

/** A TLS server, in a child process, that answers HEAD well and the ranged GET with an endless 200. */
function endlessRow(work: string): void {
  if (process.getuid?.() !== 0 || spawnSync("sh", ["-c", "command -v openssl"]).status !== 0) {
    console.log("| server answering the ranged GET with an endless 200 | skipped: needs root and openssl |");
    return;
  }
  const authority = makeAuthority(work, "bench CA");
  const cert = makeServerCert(work, "bench-server", authority);
  const portFile = join(work, "endless.port");
  const server = spawn(process.execPath, [
    "--import",
    "tsx",
    join(ROOT, "test", "support", "endless.ts"),
    cert.cert,
    cert.key,
    portFile,
  ], {
    cwd: ROOT,
    stdio: "inherit",
  });
  try {
    const port = waitForPort(portFile);
    const settings = join(work, "endless.conf");
    writeFileSync(settings, "preflight_timeout = 5\n");
    // The test CA is trusted only in a private mount namespace, as in the e2e suite.
    const prefix = trustingPrefix(work, authority.cert);
    const q35 = join(ROOT, "test", "fixtures", "q35-vdsm.in.xml");
    const env = { httpsisoboot: `https://localhost:${port}/boot.iso`, HTTPSISOBOOT_CONFIG: settings };
    const result = measure(ROUTES[0].hook, q35, work, { status: 2, env, prefix, runs: 5 });
    console.log(
      `| server answering the ranged GET with an endless 200 (preflight_timeout 5 s) | 2 | | ${
        result.ms.toFixed(1)
      } ms | ${result.mib.toFixed(1)} MiB | |`,
    );
  } finally {
    server.kill();
  }
}

function waitForPort(file: string): number {
  for (let i = 0; i < 100; i++) {
    if (existsSync(file)) return Number(readFileSync(file, "utf8"));
    spawnSync("sleep", ["0.1"]);
  }
  throw new Error("the endless server did not start");
}

// BENCH_RELAY (relay.ts) names parts of the relay's bench to run alone, without the hook's; "none" runs only the hook's.
const relayParts = process.env.BENCH_RELAY;
if (relayParts && relayParts !== "none") build();
else main();
if (relayParts === "none") {
  // only the hook's figures
} else if (process.getuid?.() === 0) {
  await (await import("./relay.ts")).relayBench();
} else {
  console.log("\nthe relay's bench needs root (libvirtd, nginx, VMs): run `npm run bench` as root");
}
