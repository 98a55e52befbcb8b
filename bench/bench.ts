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
 * A benchmark, not a test: it asserts nothing. Builds what is missing first.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const ROOT = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const RUNS = Math.max(10, Number(process.env.BENCH_RUNS ?? 15));
const RSS_RUNS = 5;
const BIN = join(ROOT, "node_modules", ".bin");
const deno = join(BIN, "deno");
const bun = join(BIN, "bun");
const PYTHON = "/usr/bin/python3";
const ISO_URL = "https://isos.example.org/el9/boot.iso?sig=abc";

interface Route {
  name: string;
  hook: string[];
  empty: string[];
}

function build(): void {
  const binary = join(ROOT, "dist", "httpsisoboot");
  if (!existsSync(join(ROOT, "dist", "httpsisoboot.mjs"))) {
    spawnSync(deno, ["task", "--quiet", "bundle"], { cwd: ROOT, stdio: "inherit" });
  }
  if (!existsSync(binary)) {
    spawnSync("npm", ["run", "--silent", "binary"], { cwd: ROOT, stdio: "ignore" });
  }
  const empty = join(ROOT, "dist", "bench-empty");
  if (!existsSync(empty)) {
    spawnSync(bun, ["build", "--compile", "--bytecode", "--minify", "bench/empty.mjs", "--outfile", empty], { cwd: ROOT, stdio: "ignore" });
  }
}

const ROUTES: Route[] = [
  { name: "binary (bun --compile --bytecode)", hook: [join(ROOT, "dist", "httpsisoboot")], empty: [join(ROOT, "dist", "bench-empty")] },
  { name: "deno run -A bundle", hook: [deno, "run", "-A", join(ROOT, "dist", "httpsisoboot.mjs")], empty: [deno, "run", "-A", join(ROOT, "bench", "empty.mjs")] },
  { name: "node bundle", hook: [process.execPath, join(ROOT, "dist", "httpsisoboot.mjs")], empty: [process.execPath, join(ROOT, "bench", "empty.mjs")] },
  { name: "python reference (minidom)", hook: [PYTHON, join(ROOT, "bench", "python_reference.py")], empty: [PYTHON, join(ROOT, "bench", "empty.py")] },
];

/** The realistic domain, and the same domain grown to `count` devices with NICs that have boot orders. */
function domains(work: string): Array<[string, string]> {
  const q35 = readFileSync(join(ROOT, "test", "fixtures", "q35-vdsm.in.xml"), "utf8");
  const base = (q35.match(/<devices>[\s\S]*<\/devices>/)![0].match(/^ {8}<(?!\/)\S+/gm) ?? []).length;
  const out: Array<[string, string]> = [["VDSM q35", q35]];
  for (const count of [20, 200, 2000]) {
    const nics = Array.from({ length: Math.max(0, count - base) }, (_, i) =>
      `        <interface type="bridge">\n            <mac address="56:6f:0d:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}" />\n` +
      `            <model type="virtio" />\n            <source bridge="ovirtmgmt" />\n            <boot order="${i + 3}" />\n        </interface>\n`).join("");
    out.push([`${count} devices`, q35.replace('        <channel type="unix">', `${nics}        <channel type="unix">`)]);
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

/** Median wall time (ms) and peak RSS (MiB) of a command, run on a fresh copy of `domain` each time. */
function measure(command: string[], domain: string | undefined, work: string): { ms: number; mib: number } {
  const file = join(work, "domxml");
  const settings = join(work, "bench.conf");
  writeFileSync(settings, "preflight = no\n");
  const env = { PATH: process.env.PATH, _hook_domxml: file, httpsisoboot: ISO_URL, HTTPSISOBOOT_CONFIG: settings };
  const times: number[] = [];
  const run = (prefix: string[]) => {
    if (domain) copyFileSync(domain, file);
    const start = process.hrtime.bigint();
    const [program, ...args] = [...prefix, ...command];
    const result = spawnSync(program, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.status !== 0) throw new Error(`${command.join(" ")} exited ${result.status}: ${result.stderr}`);
    return ms;
  };
  run([]);
  for (let i = 0; i < RUNS; i++) times.push(run([]));
  const rss: number[] = [];
  const rssFile = join(work, "rss");
  for (let i = 0; i < RSS_RUNS; i++) {
    run(["/usr/bin/time", "-f", "%M", "-o", rssFile]);
    rss.push(Number(readFileSync(rssFile, "utf8").trim().split("\n").at(-1)) / 1024);
  }
  return { ms: median(times), mib: median(rss) };
}

function main(): void {
  build();
  const work = mkdtempSync(join(tmpdir(), "httpsisoboot-bench-"));
  try {
    const cases = domains(work);
    console.log(`httpsisoboot bench: medians of ${RUNS} runs (peak RSS: median of ${RSS_RUNS}), ${new Date().toISOString()}`);
    console.log(`machine: ${spawnSync("nproc").stdout.toString().trim()} cores; python: ${PYTHON}\n`);

    const results = new Map<string, Map<string, { ms: number; mib: number }>>();
    for (const route of ROUTES) {
      const row = new Map<string, { ms: number; mib: number }>();
      row.set("empty program", measure(route.empty, undefined, work));
      for (const [name, path] of cases) row.set(name, measure(route.hook, path, work));
      results.set(route.name, row);
    }

    const python = results.get(ROUTES.at(-1)!.name)!;
    const columns = ["empty program", ...cases.map(([name]) => name)];
    console.log(`| route | ${columns.map((c) => `${c} wall`).join(" | ")} | VDSM q35 RSS | VDSM q35 × python | VDSM q35 × floor | 2000 / 20 devices |`);
    console.log(`|---|${columns.map(() => "---:").join("|")}|---:|---:|---:|---:|`);
    for (const route of ROUTES) {
      const row = results.get(route.name)!;
      const q35 = row.get("VDSM q35")!;
      const cells = columns.map((c) => `${row.get(c)!.ms.toFixed(1)} ms`);
      console.log(`| ${route.name} | ${cells.join(" | ")} | ${q35.mib.toFixed(1)} MiB | ${(q35.ms / python.get("VDSM q35")!.ms).toFixed(2)}× | ` +
        `${(q35.ms / row.get("empty program")!.ms).toFixed(2)}× | ${(row.get("2000 devices")!.ms / row.get("20 devices")!.ms).toFixed(2)}× |`);
    }
    console.log("\nfloor: the bare start of an empty program on the same route.");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
